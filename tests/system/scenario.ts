/**
 * Tier 3: the installed .deb under a real systemd (booted with systemd-nspawn
 * in a namespace this test owns), with AosCore-like UEFI test disks booted
 * through aos-unit's own QEMU command line. The same scenario runs on each
 * supported Debian release (bookworm: systemd 252, trixie: systemd 257).
 *
 * Faults and attacks are asserted by what a user sees: guest boot counts from
 * the serial logs, addresses, records, STATUS, leftovers.
 */

import assert from "node:assert/strict";
import type { Status } from "../../src/commands/status.ts";
import type { CheckResult } from "../../src/commands/_doctor_checks.ts";
import type { FailureRecord } from "../../src/vm/failures.ts";
import { buildGuests, ROOT } from "../lib/aos.ts";
import { Bed } from "../lib/bed.ts";
import { run, waitFor } from "../lib/proc.ts";
import { SerialConsole } from "../lib/serial.ts";
import { INTERNET_IP, Topology } from "../lib/topology.ts";

export type Suite = "bookworm" | "trixie";

// Small guests for a fast test; editing the shipped conffile is also what the upgrade test needs.
export const UNIT_CONFIG = `# edited by the system test
unit:
  node_configs:
    - name: main
      cpu: 1
      mem: 512M
      ip: 10.200.1.100
    - name: secondary
      cpu: 1
      mem: 512M
`;
/** The DHCP test guests live on the built-in default subnet (the shipped sample is 10.0.0.0/24). */
export const RUNTIME_CONF = 'DHCP_CIDR="10.200.1.0/24"\n';
const MACHINE_ID = "a05b0e7e57bed0000000000000000042";
const BRIDGE = `aosbr${MACHINE_ID.slice(0, 6)}`;
const URL_ = `http://${INTERNET_IP}/`;
const NODES = ["main", "secondary"] as const;
const MAIN_MAC = "52:54:00:fa:d5:8d";
const SECONDARY_MAC = "52:54:00:1f:7b:a5";

async function buildDeb(out: string, epoch: number, tree = ROOT): Promise<string> {
  const r = await run(
    ["bash", `${tree}/packaging/build_package.sh`, "--out", out, "--compress", "gzip"],
    {
      env: {
        ...Deno.env.toObject(),
        SOURCE_DATE_EPOCH: String(epoch),
        AOS_UNIT_DENO_DIR: Deno.env.get("DENO_DIR") ?? "",
      },
    },
  );
  if (r.code !== 0) throw new Error(`build_package.sh failed: ${r.stderr}`);
  return r.stdout.trim().split("\n").at(-1)!;
}

/** The next release, as far as a running guest can tell: the same tree with a node sandbox
 * property changed (TasksMax), which must apply at the node's next start, not by a reboot. */
async function nextReleaseTree(dir: string): Promise<string> {
  const tree = `${dir}/tree`;
  await Deno.mkdir(tree, { recursive: true });
  const copy = await run([
    "sh",
    "-c",
    `tar -C "$1" --exclude=./build --exclude=./.toolchain -cf - . | tar -C "$2" -xf -`,
    "sh",
    ROOT,
    tree,
  ]);
  if (copy.code !== 0) throw new Error(`copying the tree failed: ${copy.stderr}`);
  const units = `${tree}/src/plan/units.ts`;
  const text = await Deno.readTextFile(units);
  if (!text.includes(`["TasksMax", "t", 512]`)) throw new Error("no TasksMax to change");
  await Deno.writeTextFile(units, text.replace(`["TasksMax", "t", 512]`, `["TasksMax", "t", 511]`));
  return tree;
}

/**
 * What every suite installs and boots: the two package builds and the test guests. Built
 * once, into `dir`: by tests/system/prebuild.ts before the suites run in parallel (each in
 * a process of its own), or by the first suite that asks.
 */
export async function buildArtifacts(dir: string): Promise<Artifacts> {
  const epoch = Math.floor(Date.now() / 1000);
  const [debs, guests, arm] = await Promise.all([
    (async () =>
      [
        await buildDeb(`${dir}/1`, epoch),
        await buildDeb(`${dir}/2`, epoch + 120, await nextReleaseTree(dir)),
      ] as [string, string])(),
    buildGuests(`${dir}/guests`, [...NODES]).then(() => `${dir}/guests`),
    buildGuests(`${dir}/guests-arm`, ["arm"], "arm64").then(() => `${dir}/guests-arm`),
  ]);
  return { debs, guests, arm };
}

export interface Artifacts {
  debs: [string, string];
  guests: string;
  arm: string;
}

/** The variable prebuild.ts sets: the artifacts as JSON. */
export const ARTIFACTS_ENV = "AOS_UNIT_TEST_ARTIFACTS";

let artifacts: Promise<Artifacts> | undefined;
function built(): Promise<Artifacts> {
  artifacts ??= (async () => {
    const given = Deno.env.get(ARTIFACTS_ENV);
    if (given) return JSON.parse(given) as Artifacts;
    const dir = await Deno.makeTempDir({ prefix: "aosu-artifacts-" });
    globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
    return await buildArtifacts(dir);
  })();
  return artifacts;
}

const packages = async () => (await built()).debs;
const guestImages = async () => (await built()).guests;
const armImages = async () => (await built()).arm;

/** `systemd-analyze security` overall exposure of a unit (lower is better). */
function exposure(text: string): number {
  const m = /Overall exposure level for \S+: ([\d.]+)/.exec(text);
  if (!m) throw new Error(`no exposure level in: ${text.slice(-300)}`);
  return Number(m[1]);
}

export function systemScenario(suite: Suite) {
  return async (t: Deno.TestContext) => {
    const work = await Deno.makeTempDir({ prefix: `aosu-sys-${suite}-` });
    const tag = `${suite.slice(0, 1)}${Deno.pid % 10000}`;
    const topo = new Topology(`aos${tag}`, work);
    const bed = new Bed(`aosu${tag}`, suite);
    const consoles: (SerialConsole & { node?: string })[] = [];
    let deb = "";
    let deb2 = "";

    /** The secondary's boot count right after the first snapshot restore. */
    let restoredSecondary = 0;
    const sh = async (script: string) => {
      const r = await bed.sh(script);
      if (r.code !== 0) throw new Error(`in bed: ${script} -> ${r.code}: ${r.stderr}${r.stdout}`);
      return r.stdout;
    };
    /** setpriv's arguments for exactly the credentials process `pid` runs with. */
    const credentialsOf = async (pid: string) => {
      const st = await sh(`cat /proc/${pid}/status`);
      const field = (name: string) => st.match(new RegExp(`^${name}:\\s*(.*)$`, "m"))![1]!;
      const groups = field("Groups").trim().split(/\s+/).filter(Boolean);
      return [
        `--reuid=${field("Uid").split(/\s+/)[0]}`,
        `--regid=${field("Gid").split(/\s+/)[0]}`,
        groups.length ? `--groups=${groups.join(",")}` : "--clear-groups",
      ];
    };
    const show = (unit: string, ...props: string[]) => bed.systemctlShow(unit, ...props);
    const status = async (): Promise<{ code: number; status: Status }> => {
      const r = await bed.exec(["aos-unit", "status", "--json"]);
      return { code: r.code, status: JSON.parse(r.stdout) as Status };
    };
    const leaseOf = async (name: string) =>
      (await status()).status.nodes.find((n) => n.name === name)?.address;
    const failures = async (): Promise<FailureRecord[]> =>
      (await bed.exec(["cat", "/var/log/aos-unit/vm-failures.log"])).stdout.split("\n").filter(
        Boolean,
      ).map((l) => JSON.parse(l));
    /** How often each guest booted (serial-log markers), or reboots since `before`. */
    const boots = async (): Promise<Record<string, number>> =>
      Object.fromEntries(
        await Promise.all(NODES.map(async (n) => {
          const r = await bed.exec([
            "grep",
            "-c",
            "AOSTEST boot",
            `/var/log/aos-unit/${n}-serial.log`,
          ]);
          return [n, Number(r.stdout.trim() || "0")] as const;
        })),
      );
    const writeConfig = (text: string) =>
      bed.exec(["sh", "-c", "cat > /etc/aos-unit/unit_config.yaml"], { stdin: text });
    const writeRuntime = (text: string) =>
      bed.exec(["sh", "-c", "cat > /etc/aos-unit/runtime.conf"], { stdin: text });
    const placeImages = async () => {
      const images = await guestImages();
      for (const name of NODES) {
        await bed.cpIn(
          `${images}/aos-vm-${name}-amd64-uefi.qcow2`,
          `/var/lib/aos-unit/aos-vm-${name}-qemux86-64.qcow2`,
        );
      }
      await sh("chown aos-unit:aos-unit /var/lib/aos-unit/*.qcow2");
      await writeConfig(UNIT_CONFIG);
      await writeRuntime(RUNTIME_CONF);
    };
    const doctorJson = async () => {
      const r = await bed.exec(["aos-unit", "doctor", "--json"]);
      return {
        code: r.code,
        ...JSON.parse(r.stdout) as { canStart: boolean; checks: CheckResult[] },
      };
    };
    const journal = async (lines = 80) =>
      (await bed.exec(["journalctl", "-u", "aos-*", "-n", String(lines), "--no-pager"])).stdout;
    const startUnit = async () => {
      const started = performance.now();
      const r = await bed.exec(["systemctl", "start", "aos-unit"]);
      const ms = Math.round(performance.now() - started);
      if (r.code !== 0) {
        throw new Error(
          `systemctl start aos-unit failed (${r.code}): ${r.stderr}\n${await journal()}`,
        );
      }
      return ms;
    };
    /** READY again: the manager active and every node running with an address. */
    const waitRunning = (timeoutMs = 60_000) =>
      waitFor(
        "aos-unit running with every node",
        async () => {
          const u = await show("aos-unit.service", "ActiveState", "SubState", "StatusText");
          return u.ActiveState === "active" && u.SubState === "running" &&
              /^Running: main=\S+ secondary=\S+$/.test(u.StatusText ?? "")
            ? u
            : undefined;
        },
        timeoutMs,
        100,
      );
    const serial = async (node: string) => {
      // QEMU serves one client at a time: a console a failed step left open goes first.
      for (let i = consoles.length - 1; i >= 0; i--) {
        if (consoles[i]!.node === node) consoles.splice(i, 1)[0]!.close();
      }
      const c = Object.assign(
        await SerialConsole.connect(bed.path(`/run/aos-unit/nodes/${node}/serial`)),
        { node },
      );
      consoles.push(c);
      return c;
    };
    const http = async (c: SerialConsole) =>
      (await c.probe(`aos-probe http ${URL_}`, /AOSTEST http url=\S+ (body=(\S+)|fail)/))[2];
    /** Runs a shell command in a guest; true when it exited 0. */
    const guestOk = async (c: SerialConsole, command: string, timeoutMs = 15_000) =>
      (await c.probe(
        `if ${command}; then echo AOSTEST cmd ok; else echo AOSTEST cmd fail; fi`,
        /AOSTEST cmd (ok|fail)/,
        timeoutMs,
      ))[1] === "ok";
    /** A DNS question from a namespace (the host's view: the bed shares its network). */
    const dnsFrom = async (
      ns: string,
      server: string,
      port: number,
      name: string,
      timeoutMs = 2000,
    ) =>
      (await run([
        "ip",
        "netns",
        "exec",
        ns,
        Deno.execPath(),
        "run",
        "--quiet",
        "--unstable-net",
        "-A",
        `${ROOT}/tests/lib/dns_probe.ts`,
        server,
        String(port),
        name,
        String(timeoutMs),
      ])).stdout.trim();
    const noLeftovers = async () => {
      const linksOut = (await bed.exec(["ip", "-br", "link"])).stdout;
      assert.doesNotMatch(linksOut, /aosbr|aostap/, linksOut);
      const tables = (await bed.exec(["nft", "list", "tables"])).stdout;
      assert.doesNotMatch(tables, /aos_unit/, `no nft table: ${tables}`);
      const units = (await bed.exec([
        "systemctl",
        "list-units",
        "--all",
        "--plain",
        "--no-legend",
        "aos-node-*",
        "aos-unit-dnsmasq*",
      ])).stdout.trim();
      assert.equal(units, "", `no transient units left: ${units}`);
      const qemu = await bed.exec(["pgrep", "-a", "qemu-system"]);
      assert.equal(qemu.stdout.trim(), "", "no QEMU left");
    };

    try {
      const ok = await t.step("set-up: test bed, package and guest disks", async () => {
        await topo.create();
        [deb, deb2] = await packages();
        await guestImages();
        await armImages();
        await bed.up({ flavour: "base", netns: topo.host, machineId: MACHINE_ID });
        const version = await sh("systemctl --version | head -n1");
        console.log(`${suite}: ${version.trim()}`);
      });
      if (!ok) throw new Error("set-up failed; the system tests cannot run");

      if (
        !await t.step(
          "apt-get install ./aos-unit_*.deb pulls its dependencies, no arm emulator, starts no VM",
          async () => {
            await bed.cpIn(deb, "/tmp/");
            await bed.cpIn(deb2, "/tmp/");
            const started = performance.now();
            const r = await bed.exec(["apt-get", "install", "-y", `/tmp/${deb.split("/").pop()}`]);
            assert.equal(r.code, 0, r.stderr + r.stdout);
            console.log(
              `install: ${Math.round(performance.now() - started)} ms, package ${
                Math.round(Deno.statSync(deb).size / 1024 / 1024)
              } MiB`,
            );
            assert.match(r.stdout, /Setting up qemu-system-x86/, "dependencies from the archive");
            assert.doesNotMatch(r.stdout, /Setting up (qemu-system-arm|qemu-efi-aarch64)/);
            const arm = await bed.exec(["dpkg-query", "-W", "-f", "${Status}", "qemu-system-arm"]);
            assert.doesNotMatch(arm.stdout, /install ok installed/, "no arm emulator installed");
            assert.match(
              await sh("id aos-unit"),
              /uid=\d+\(aos-unit\) gid=\d+\(aos-unit\) groups=\d+\(aos-unit\)$/m,
            );
            assert.equal((await show("aos-unit.service", "ActiveState")).ActiveState, "inactive");
          },
        )
      ) throw new Error("cannot continue without this step");

      if (
        !await t.step(
          "systemctl start aos-unit returns only when both nodes are usable",
          async () => {
            await placeImages();
            const ms = await startUnit();
            const firstQemu = await sh(
              "journalctl -o short-unix --no-pager -u aos-unit -u 'aos-node-*' | " +
                "awk '/Starting aos-unit.service/ { s = $1 } /Started aos-node-/ && s && !f { f = $1 } END { printf \"%d\", (f - s) * 1000 }'",
            );
            console.log(`systemctl start -> first QEMU: ${firstQemu} ms; -> READY: ${ms} ms`);
            let { code, status: s } = await status();
            // Known open race (the note on the hardening issue): right after start, status
            // has been seen unhealthy for a moment on trixie under CI load. What it saw is
            // printed; the assertion waits up to 5 s.
            for (let i = 0; code !== 0 && i < 10; i++) {
              console.log(
                `status right after start unhealthy (try ${i + 1}): service ${s.service}, ` +
                  s.nodes.map((n) => `${n.name} ${n.state} ${n.address ?? "-"}`).join(", "),
              );
              await new Promise((r) => setTimeout(r, 500));
              ({ code, status: s } = await status());
            }
            if (code !== 0) {
              const text = await bed.exec(["aos-unit", "status"]);
              throw new Error(`status exit ${code} right after start:\n${text.stdout}${text.stderr}
${await journal(30)}`);
            }
            assert.equal(s.nodes.find((n) => n.name === "main")?.address, "10.200.1.100");
            assert.match(
              s.nodes.find((n) => n.name === "secondary")?.address ?? "",
              /^10\.200\.1\.(1[3-9][0-9]|2[0-5][0-9]|12[89])$/,
            );
            assert.match(
              (await show("aos-unit.service", "StatusText")).StatusText!,
              /^Running: main=10\.200\.1\.100 secondary=10\.200\.1\.\d+$/,
            );
            assert.deepEqual(await boots(), { main: 1, secondary: 1 });
          },
        )
      ) throw new Error("cannot continue without this step");

      await t.step("units, sandboxes and limits are as planned and enforced", async () => {
        const p = await show(
          "aos-node-main.service",
          "Slice",
          "MemoryMax",
          "CPUQuotaPerSecUSec",
          "Restart",
          "RestartMode",
          "StartLimitBurst",
          "OnFailure",
          "DevicePolicy",
          "User",
          "MainPID",
          "ControlGroup",
          "ExecStop",
        );
        assert.equal(p.Slice, "aos-unit.slice");
        // 512 MiB + 256 MiB + 512/16 MiB + 256 MiB TCG translation cache
        assert.equal(p.MemoryMax, String((512 + 256 + 32 + 256) * 1024 * 1024));
        assert.equal(p.CPUQuotaPerSecUSec, "1s");
        assert.equal(p.Restart, "on-failure");
        if (suite === "trixie") assert.equal(p.RestartMode, "direct");
        assert.equal(p.StartLimitBurst, "3");
        assert.equal(p.OnFailure, "aos-unit-vm-failed@main.service");
        assert.equal(p.DevicePolicy, "closed");
        assert.match(p.ExecStop ?? "", /node-stop .*main --timeout/);
        // No unit is bound to the manager: its crash must not stop the guests.
        const manager = await show("aos-unit.service", "PropagatesStopTo", "BoundBy", "ConsistsOf");
        assert.equal(manager.PropagatesStopTo, "");
        assert.equal(manager.BoundBy, "");
        assert.equal(manager.ConsistsOf, "");

        // A uid of the node's own (DynamicUser=), in the service user's group.
        assert.equal(p.User, "aos-node-main");
        const ids = (await sh(`ps -o uid=,gid= -p ${p.MainPID}`)).trim().split(/\s+/);
        assert.notEqual(ids[0], (await sh("id -u aos-unit")).trim(), "not the service user's uid");
        assert.ok(Number(ids[0]) >= 61184 && Number(ids[0]) <= 65519, `a dynamic uid: ${ids[0]}`);
        assert.equal(ids[1], (await sh("id -g aos-unit")).trim(), "the service user's group");
        const caps = await sh(`grep CapEff /proc/${p.MainPID}/status`);
        assert.match(caps, /CapEff:\s+0+$/m, "QEMU holds no capability");
        const limit = (await sh(`cat /sys/fs/cgroup/memory${p.ControlGroup}/memory.limit_in_bytes`))
          .trim();
        assert.equal(limit, p.MemoryMax, "the kernel enforces MemoryMax");
        const quota = (await sh(`cat /sys/fs/cgroup/cpu${p.ControlGroup}/cpu.cfs_quota_us`)).trim();
        assert.equal(quota, "100000", "the kernel enforces CPUQuota=100%");
        const slice = await show("aos-unit.slice", "MemoryMax", "CPUQuotaPerSecUSec");
        assert.notEqual(slice.MemoryMax, "infinity", "the slice caps the total memory");
        assert.notEqual(slice.CPUQuotaPerSecUSec, "infinity", "and the total CPU");
        // QEMU cannot reach the bus (and through it polkit's grants to the aos-unit user).
        const qemuBus = await bed.exec([
          "nsenter",
          "-t",
          p.MainPID!,
          "-m",
          "test",
          "-e",
          "/run/dbus/system_bus_socket",
        ]);
        assert.notEqual(qemuBus.code, 0, "the bus socket is not visible to QEMU");
        const dnsmasqPid = (await show("aos-unit-dnsmasq.service", "MainPID")).MainPID!;
        const dnsmasqBus = await bed.exec([
          "nsenter",
          "-t",
          dnsmasqPid,
          "-m",
          "test",
          "-e",
          "/run/dbus/system_bus_socket",
        ]);
        assert.notEqual(dnsmasqBus.code, 0, "nor to dnsmasq");
      });

      await t.step(
        "systemd-analyze security: the manager <= 2.5, nodes and dnsmasq <= 3.5",
        async () => {
          const scores: Record<string, number> = {};
          for (
            const unit of [
              "aos-unit.service",
              "aos-node-main.service",
              "aos-node-secondary.service",
              "aos-unit-dnsmasq.service",
              "aos-unit-vm-failed@main.service",
              "aos-unit-stopped.service",
            ]
          ) {
            const r = await bed.exec(["systemd-analyze", "security", "--no-pager", unit]);
            scores[unit] = exposure(r.stdout + r.stderr);
          }
          console.log(
            `exposure (${suite}): ${
              Object.entries(scores).map(([u, s]) => `${u} ${s}`).join(", ")
            }`,
          );
          // The broker (ExecStartPre=+) runs as root outside the unit's sandbox; what bounds it
          // is the device cgroup and its own Deno permissions, printed here from the launcher.
          const broker = (await sh("grep -a '^startup)' /usr/bin/aos-unit || true")).trim();
          console.log(`broker (${suite}): root, no sandbox (the + prefix); ${broker}`);
          assert.ok(
            scores["aos-unit.service"]! <= 2.5,
            `aos-unit.service ${scores["aos-unit.service"]}`,
          );
          for (
            const unit of [
              "aos-node-main.service",
              "aos-node-secondary.service",
              "aos-unit-dnsmasq.service",
            ]
          ) {
            assert.ok(scores[unit]! <= 3.5, `${unit} ${scores[unit]}`);
          }
        },
      );

      await t.step(
        "getent hosts main.aos-unit works in the container through resolved",
        async () => {
          assert.match(await sh("getent hosts main.aos-unit"), /^10\.200\.1\.100\s+main\.aos-unit/);
          const sec = await leaseOf("secondary");
          assert.match(
            await sh("getent hosts secondary.aos-unit"),
            new RegExp(`^${sec!.replaceAll(".", "\\.")}\\s`),
          );
          assert.match(await sh("resolvectl status " + BRIDGE), /10\.200\.1\.1:5300/);
          await sh("systemctl restart systemd-resolved");
          await waitFor(
            "main.aos-unit resolves again after resolved restarted",
            async () => {
              const r = await bed.exec(["getent", "hosts", "main.aos-unit"]);
              return r.code === 0 && r.stdout.startsWith("10.200.1.100") ? true : undefined;
            },
            10_000,
            200,
          );
        },
      );

      await t.step("aos-unit doctor on the running unit: every check passes but KVM", async () => {
        const d = await doctorJson();
        assert.equal(d.code, 0, JSON.stringify(d.checks, null, 2));
        const notOk = d.checks.filter((c) => c.status !== "ok").map((c) => c.id);
        assert.deepEqual(notOk, ["kvm"], "only KVM (no /dev/kvm in a container) is not ok");
        assert.match(d.checks.find((c) => c.id === "kvm")!.detail, /TCG/);
      });

      await t.step(
        "doctor names a stopped systemd-resolved and a missing polkit rule, with fixes",
        async () => {
          await sh("systemctl stop systemd-resolved");
          try {
            const c = (await doctorJson()).checks.find((x) => x.id === "resolved")!;
            assert.equal(c.status, "warn");
            assert.match(c.fix!, /systemctl enable --now systemd-resolved/);
          } finally {
            await sh("systemctl start systemd-resolved");
          }
          const rules = "/usr/share/polkit-1/rules.d/50-aos-unit.rules";
          await sh(`mv ${rules} /root/rules.saved`);
          try {
            const d = await doctorJson();
            assert.equal(d.code, 1, "the unit cannot start without its polkit rule");
            const c = d.checks.find((x) => x.id === "polkit")!;
            assert.equal(c.status, "fail");
            assert.match(c.fix!, /apt-get install --reinstall aos-unit/);
          } finally {
            await sh(`mv /root/rules.saved ${rules}`);
          }
        },
      );

      await t.step("status --json matches reality", async () => {
        const { status: s } = await status();
        assert.equal(s.bridge.name, BRIDGE);
        assert.equal(s.dnsPort, 5300);
        assert.deepEqual(s.uplinks, ["uplink1"]);
        for (const n of s.nodes) {
          const u = await show(n.unit, "ActiveState", "SubState", "NRestarts");
          assert.equal(n.state, `${u.ActiveState}/${u.SubState}`);
          assert.equal(String(n.restarts), u.NRestarts);
        }
        const leases = JSON.parse(await sh("cat /var/lib/aos-unit/dhcp/leases.json")).leases;
        for (const n of s.nodes) assert.equal(leases[n.mac]?.ip, n.address);
        assert.equal(
          (await sh("readlink /run/aos-unit/dnsmasq.leases")).trim(),
          "/var/lib/aos-unit/dhcp/dnsmasq.leases",
        );
      });

      await t.step(
        "aos-unit console: a live shell on main's serial port, granted that one socket only; help",
        async () => {
          // Input first, then time for the answer; end of input detaches.
          const r = await bed.exec([
            "sh",
            "-c",
            "(sleep 1; echo 'echo AOSCON$((6*7))'; sleep 2) | aos-unit console main",
          ]);
          assert.equal(r.code, 0, r.stderr);
          assert.match(r.stdout, /AOSCON42/, "the guest's shell answered through the console");
          assert.match(r.stderr, /Input ended; detached from main\./);
          // A name that is not one gets no socket grant and a usage error.
          const bad = await bed.exec(["aos-unit", "console", "../dnsmasq --allow-all"]);
          assert.equal(bad.code, 2, bad.stderr);
          assert.match(bad.stderr, /is not a node name/);
          // Help through the launcher's fallback grants, in a plain environment (no NO_COLOR).
          const help = await bed.exec(["env", "-u", "NO_COLOR", "aos-unit", "--help"]);
          assert.equal(help.code, 0, help.stderr);
          const bare = await bed.exec(["env", "-u", "NO_COLOR", "aos-unit"]);
          assert.equal(bare.code, 2, bare.stderr);
          assert.match(bare.stderr, /Usage: aos-unit/);
        },
      );

      await t.step(
        "attack as the aos-unit user: no unit of its making runs, under any allowed name",
        async () => {
          for (const name of ["aos-node-evil", "aos-unit-dnsmasq", "aos-node-main", "evil"]) {
            const r = await bed.exec([
              "systemd-run",
              `--unit=${name}`,
              "--property=User=root",
              "touch",
              "/root/pwned",
            ], { user: "aos-unit" });
            assert.notEqual(r.code, 0, `${name}: ${r.stdout}`);
            assert.match(
              r.stderr,
              /Access denied|already (exists|loaded)|not authorized/i,
              r.stderr,
            );
          }
          const anonymous = await bed.exec(
            ["systemd-run", "--property=User=root", "touch", "/root/pwned"],
            { user: "aos-unit" },
          );
          assert.notEqual(anonymous.code, 0);
          assert.notEqual(
            (await bed.exec(["test", "-e", "/root/pwned"])).code,
            0,
            "no /root/pwned",
          );
          for (const verb of [["restart", "dbus.service"], ["stop", "systemd-journald.service"]]) {
            const r = await bed.exec(["systemctl", ...verb], { user: "aos-unit" });
            assert.notEqual(r.code, 0, verb.join(" "));
          }
          // What the manager needs stays allowed.
          const allowed = await bed.exec(["systemctl", "restart", "aos-unit-dnsmasq.service"], {
            user: "aos-unit",
          });
          assert.equal(allowed.code, 0, allowed.stderr);
          const startNode = await bed.exec(["systemctl", "start", "aos-node-main.service"], {
            user: "aos-unit",
          });
          assert.notEqual(startNode.code, 0, "start (= creation) is never granted");
        },
      );

      await t.step(
        "attack from a node's sandbox, with its QEMU's own credentials: nothing outside its own files, no signal or /proc/PID/root of another process",
        async () => {
          const pid = (await show("aos-node-main.service", "MainPID")).MainPID!;
          const mainCredentials = await credentialsOf(pid);
          console.log(`${suite}: main's QEMU runs as ${mainCredentials.join(" ")}`);
          assert.doesNotMatch(
            mainCredentials[0]!,
            new RegExp(`=${(await sh("id -u aos-unit")).trim()}$`),
          );
          const asQemu = (script: string) =>
            bed.exec([
              "nsenter",
              "-t",
              pid,
              "-m",
              "setpriv",
              ...mainCredentials,
              "sh",
              "-c",
              script,
            ]);
          for (
            const file of [
              "/run/aos-unit/dnsmasq.conf",
              "/run/aos-unit/network.conf",
              "/var/lib/aos-unit/dhcp/leases.json",
              "/var/lib/aos-unit/nodes/secondary/overlay.qcow2",
              "/var/log/aos-unit/secondary-serial.log",
              "/run/aos-unit/nodes/secondary/qmp",
            ]
          ) {
            const r = await asQemu(`echo x >> ${file}`);
            assert.notEqual(r.code, 0, `QEMU of main could write ${file}`);
          }
          // Nothing of the other nodes or of the unit's records is even there to read.
          for (
            const path of [
              "/var/lib/aos-unit/nodes/secondary",
              "/run/aos-unit/nodes/secondary",
              "/run/aos-unit/secondary.serial",
              "/var/log/aos-unit/secondary-serial.log",
              "/var/log/aos-unit/vm-failures.log",
              "/var/lib/aos-unit/dhcp/leases.json",
              "/var/lib/aos-unit/dhcp/dnsmasq.leases",
            ]
          ) {
            const r = await asQemu(`test -e ${path}`);
            assert.notEqual(r.code, 0, `QEMU of main sees ${path}`);
          }
          const own = await asQemu(
            "test -w /var/lib/aos-unit/nodes/main/overlay.qcow2 && test -S /run/aos-unit/nodes/main/qmp" +
              " && test -w /var/log/aos-unit/main-serial.log && test -w /var/lib/aos-unit/nodes/main/failures.spool",
          );
          assert.equal(own.code, 0, `its own files stay there and writable: ${own.stderr}`);
          // Its directory is not its own: no file made, renamed or linked there.
          for (
            const script of [
              "touch /var/lib/aos-unit/nodes/main/probe",
              "ln -s /etc/shadow /var/lib/aos-unit/nodes/main/link",
              "mv /var/lib/aos-unit/nodes/main/failures.spool /var/lib/aos-unit/nodes/main/x",
            ]
          ) {
            assert.notEqual((await asQemu(script)).code, 0, script);
          }
          // The unit's own view is unchanged: the hiding is in the node's mount namespace.
          assert.equal(
            (await bed.exec(["test", "-S", "/run/aos-unit/nodes/secondary/qmp"])).code,
            0,
          );
          // Signals and /proc: each QEMU and dnsmasq have a uid of their own (DynamicUser=),
          // on every systemd.
          const targets = {
            "secondary's QEMU": (await show("aos-node-secondary.service", "MainPID")).MainPID!,
            "the manager": (await show("aos-unit.service", "MainPID")).MainPID!,
            dnsmasq: (await show("aos-unit-dnsmasq.service", "MainPID")).MainPID!,
          };
          const fromUnit = async (unit: string, script: string) => {
            const of = (await show(unit, "MainPID")).MainPID!;
            const credentials = await credentialsOf(of);
            return await bed.exec([
              "nsenter",
              "-t",
              of,
              "-m",
              "-p",
              "setpriv",
              ...credentials,
              "sh",
              "-c",
              script,
            ]);
          };
          for (const unit of ["aos-node-main.service", "aos-unit-dnsmasq.service"]) {
            for (const [what, target] of Object.entries(targets)) {
              if (unit === "aos-unit-dnsmasq.service" && what === "dnsmasq") continue;
              const r = await fromUnit(unit, `kill -0 ${target}`);
              assert.notEqual(r.code, 0, `${unit} could signal ${what} (pid ${target})`);
            }
          }
          // The manager's /proc entry, from dnsmasq: another uid too.
          const manager = targets["the manager"];
          const fromDnsmasq = await fromUnit(
            "aos-unit-dnsmasq.service",
            `ls /proc/${manager}/root/var/lib/aos-unit/`,
          );
          assert.notEqual(
            fromDnsmasq.code,
            0,
            `dnsmasq reads the manager's root: ${fromDnsmasq.stdout}`,
          );
          // Another node's files through its /proc entry: another uid, refused everywhere.
          const peer = targets["secondary's QEMU"];
          for (
            const script of [
              `ls /proc/${peer}/root/var/lib/aos-unit/nodes/secondary/`,
              `cat /proc/${peer}/environ`,
            ]
          ) {
            const viaProc = await fromUnit("aos-node-main.service", script);
            assert.notEqual(viaProc.code, 0, `main's QEMU: ${script}: ${viaProc.stdout}`);
          }
          for (
            const path of [
              "/var/lib/aos-unit/nodes/main/overlay.qcow2",
              "/run/aos-unit/nodes/main/qmp",
              "/var/log/aos-unit/main-serial.log",
            ]
          ) {
            const r = await fromUnit("aos-unit-dnsmasq.service", `test -e ${path}`);
            assert.notEqual(r.code, 0, `dnsmasq sees ${path}`);
          }
        },
      );

      await t.step(
        "attack from a node's sandbox: main's sockets repointed at secondary's: a snapshot and the console refuse, secondary never pauses",
        async () => {
          const pid = (await show("aos-node-main.service", "MainPID")).MainPID!;
          const credentials = await credentialsOf(pid);
          const asMain = (script: string) =>
            bed.exec(["nsenter", "-t", pid, "-m", "setpriv", ...credentials, "sh", "-c", script]);
          // main owns its socket directory: it can put links there, to paths it cannot see
          // but the manager, root and the console can.
          const dir = "/run/aos-unit/nodes/main";
          const planted = await asMain(
            `cd ${dir} && mv qmp qmp.real && ln -s /run/aos-unit/nodes/secondary/qmp qmp && ` +
              "mv serial serial.real && ln -s /run/aos-unit/nodes/secondary/serial serial",
          );
          assert.equal(planted.code, 0, planted.stderr);
          const secondary = await serial("secondary");
          try {
            const save = await bed.exec(["aos-unit", "snapshot", "save", "evil"]);
            assert.equal(save.code, 1, save.stderr + save.stdout);
            assert.match(save.stderr, /Refusing \/run\/aos-unit\/nodes\/main\/qmp/);
            assert.equal((await sh("ls /var/lib/aos-unit/snapshots")).trim(), "", "nothing saved");
            const con = await bed.exec(["aos-unit", "console", "main"], { stdin: "" });
            assert.notEqual(con.code, 0);
            assert.match(con.stderr, /Refusing \/run\/aos-unit\/main\.serial: it leads to/);
            // secondary runs on: it answers on its own console.
            await secondary.probe("echo AOSTEST still-$((20+22))", /AOSTEST still-42/, 10_000);
          } finally {
            secondary.close();
            await asMain(
              `cd ${dir} && rm -f qmp serial && mv qmp.real qmp && mv serial.real serial`,
            );
          }
          const save = await bed.exec(["aos-unit", "snapshot", "save", "fine"]);
          assert.equal(save.code, 0, `main's own sockets work again: ${save.stderr}`);
          assert.equal((await bed.exec(["aos-unit", "snapshot", "delete", "fine"])).code, 0);
        },
      );

      await t.step(
        "attack as the aos-unit user: dangling links where root's Deno might cache create nothing",
        async () => {
          // Every place Deno writes under a HOME or DENO_DIR the service user owns, and the
          // code cache a compiled build would keep in /tmp, each a link to a file in /etc.
          const cache = "/var/lib/aos-unit/.cache/deno";
          const targets = [
            "dep_analysis_cache_v2",
            "dep_analysis_cache_v2-wal",
            "dep_analysis_cache_v2-shm",
            "node_analysis_cache_v2",
            "node_analysis_cache_v2-wal",
            "node_analysis_cache_v2-shm",
            "npm",
            "gen",
            "remote",
          ];
          const plant = [
            `mkdir -p ${cache}`,
            ...targets.map((n, i) => `ln -sfn /etc/aos-pwned-${i} ${cache}/${n}`),
            "ln -sfn /etc/aos-pwned-tmp /tmp/deno-compile-aos-unit.cache",
          ].join(" && ");
          const r = await bed.exec(["sh", "-c", plant], { user: "aos-unit" });
          assert.equal(r.code, 0, r.stderr);
          try {
            // Root runs aos-unit as the broker, by hand and from the package scripts.
            await sh("systemctl restart aos-unit");
            await waitRunning();
            await bed.exec(["aos-unit", "status"]);
            await bed.exec(["aos-unit", "doctor"]);
            await bed.exec(["aos-unit", "validate"]);
            const made = await bed.exec(["sh", "-c", "ls /etc/aos-pwned-* 2>/dev/null"]);
            assert.equal(made.stdout.trim(), "", `root created ${made.stdout}`);
          } finally {
            await sh(`rm -rf ${cache} /tmp/deno-compile-aos-unit.cache`);
          }
        },
      );

      await t.step(
        "attack as the aos-unit user: a dnsmasq configuration of its own and a sidecar restart serve nothing new",
        async () => {
          const evil = [
            "port=5300",
            `interface=${BRIDGE}`,
            "bind-interfaces",
            "host-record=evil.aos-unit,10.200.1.66",
            "dhcp-range=10.202.1.50,10.202.1.60,12h",
            "",
          ].join("\n");
          const w = await bed.exec(
            [
              "sh",
              "-c",
              "cat > /run/aos-unit/dnsmasq.conf && cp /run/aos-unit/dnsmasq.conf /run/aos-unit/aos-unit.conf",
            ],
            { user: "aos-unit", stdin: evil },
          );
          assert.equal(w.code, 0, w.stderr);
          const restart = await bed.exec(["systemctl", "restart", "aos-unit-dnsmasq.service"], {
            user: "aos-unit",
          });
          assert.equal(restart.code, 0, restart.stderr);
          try {
            await waitFor(
              "the sidecar answering again",
              async () =>
                (await dnsFrom(topo.host, "10.200.1.1", 5300, "main.aos-unit", 300)).startsWith(
                    "answer",
                  )
                  ? true
                  : undefined,
              10_000,
              100,
            );
            assert.equal(
              await dnsFrom(topo.host, "10.200.1.1", 5300, "evil.aos-unit"),
              "empty",
              "the planted record is not served",
            );
            const argv = (await show("aos-unit-dnsmasq.service", "ExecStart")).ExecStart ?? "";
            assert.match(argv, /--conf-file=\/dev\/null/, "no file is read");
          } finally {
            await sh("rm -f /run/aos-unit/dnsmasq.conf /run/aos-unit/aos-unit.conf");
          }
        },
      );

      await t.step(
        "attack from the uplink network: no guest port and no DNS answer; guests still reach out",
        async () => {
          const neighbour = topo.uplinks[0];
          await run([
            "ip",
            "-n",
            neighbour.ns,
            "route",
            "add",
            "10.200.1.0/24",
            "via",
            neighbour.hostIp,
          ]);
          try {
            const tcp = await run([
              "ip",
              "netns",
              "exec",
              neighbour.ns,
              "timeout",
              "3",
              "bash",
              "-c",
              "echo > /dev/tcp/10.200.1.100/22",
            ]);
            assert.equal(tcp.code, 124, `a neighbour reached main:22 (${tcp.stderr.trim()})`);
            for (const port of [53, 5300]) {
              assert.equal(
                await dnsFrom(neighbour.ns, "10.200.1.1", port, "main.aos-unit"),
                "timeout",
                `DNS on port ${port} answers the uplink side`,
              );
            }
            // Positive controls: the host itself still reaches both.
            const fromHost = await run([
              "ip",
              "netns",
              "exec",
              topo.host,
              "timeout",
              "3",
              "bash",
              "-c",
              "echo > /dev/tcp/10.200.1.100/22",
            ]);
            assert.match(fromHost.stderr, /Connection refused/, "the host reaches main's address");
            assert.equal(
              await dnsFrom(topo.host, "10.200.1.1", 5300, "main.aos-unit"),
              "answer 10.200.1.100",
            );
          } finally {
            await run(["ip", "-n", neighbour.ns, "route", "del", "10.200.1.0/24"]);
          }
          const main = await serial("main");
          assert.equal(await http(main), "uplink1", "main reaches the internet host");
          const secondary = await leaseOf("secondary");
          assert.ok(
            await guestOk(main, `ping -c 1 -W 2 ${secondary} >/dev/null`),
            "main pings secondary",
          );
          main.close();
        },
      );

      await t.step(
        "attack from a guest: another node's address or MAC gets nothing, its records stay",
        async () => {
          const before = JSON.parse(await sh("cat /var/lib/aos-unit/dhcp/leases.json")).leases;
          const c = await serial("secondary");
          // Each spoof is set up first (and checked), then used: a failing set-up proves nothing.
          assert.ok(await guestOk(c, "ip addr add 10.200.1.100/24 dev eth0"), "add main's address");
          assert.ok(
            !await guestOk(c, "ping -c 1 -W 2 -I 10.200.1.100 10.200.1.1 >/dev/null"),
            "secondary spoofing main's address reached the bridge",
          );
          assert.ok(await guestOk(c, "ip addr del 10.200.1.100/24 dev eth0"));
          assert.ok(
            await guestOk(
              c,
              `ip link set eth0 down && ip link set eth0 address ${MAIN_MAC} && ip link set eth0 up`,
            ),
            "take main's MAC",
          );
          assert.ok(
            !await guestOk(
              c,
              "udhcpc -n -q -i eth0 -t 2 -T 1 -s /bin/true >/dev/null 2>&1",
              20_000,
            ),
            "secondary with main's MAC got a DHCP lease",
          );
          assert.ok(
            await guestOk(
              c,
              `ip link set eth0 down && ip link set eth0 address ${SECONDARY_MAC} && ip link set eth0 up`,
            ),
          );
          c.skip();
          await c.send("kill -USR1 $(pidof udhcpc)");
          await c.expect(
            /AOSTEST lease ip=\S+ .*event=(renew|bound)/,
            10_000,
            "secondary's own lease",
          );
          const after = JSON.parse(await sh("cat /var/lib/aos-unit/dhcp/leases.json")).leases;
          assert.deepEqual(after[MAIN_MAC], before[MAIN_MAC], "main's lease record is untouched");
          assert.match(await sh("getent hosts main.aos-unit"), /^10\.200\.1\.100\s/);
          assert.ok(
            await guestOk(c, "ping -c 1 -W 2 10.200.1.1 >/dev/null"),
            "secondary works again",
          );
          const counters = await sh("nft list table bridge aos_unit");
          assert.match(
            counters,
            /counter packets [1-9]\d* bytes \d+ drop comment "not aostap1f7ba5's MAC"/,
          );
          // A gratuitous ARP for main's address from secondary: the host keeps main's MAC.
          await bed.exec(["timeout", "3", "bash", "-c", "echo > /dev/tcp/10.200.1.100/22"]);
          assert.ok(await guestOk(c, "ip addr add 10.200.1.100/24 dev eth0"));
          await guestOk(c, "arping -U -c 3 -w 3 -I eth0 10.200.1.100 >/dev/null 2>&1", 10_000);
          assert.ok(await guestOk(c, "ip addr del 10.200.1.100/24 dev eth0"));
          const neigh = await sh(`ip neigh show 10.200.1.100 dev ${BRIDGE}`);
          assert.doesNotMatch(neigh, new RegExp(SECONDARY_MAC), `the host's neighbour: ${neigh}`);
          // 60 client-ids: one lease for the MAC, at the node's own address.
          const own = (await leaseOf("secondary"))!;
          assert.ok(
            await guestOk(
              c,
              "i=0; while [ $i -lt 60 ]; do i=$((i + 1)); udhcpc -n -q -t 1 -T 1 -i eth0 " +
                "-x 0x3d:01$(printf %012x $i) -s /bin/true >/dev/null 2>&1; done; true",
              120_000,
            ),
          );
          const leaseLines = (await sh("cat /run/aos-unit/dnsmasq.leases")).trim().split("\n");
          const secondaryLeases = leaseLines.filter((l) => l.includes(SECONDARY_MAC));
          assert.equal(secondaryLeases.length, 1, leaseLines.join("\n"));
          assert.match(secondaryLeases[0]!, new RegExp(` ${own.replaceAll(".", "\\.")} `));
          assert.ok(leaseLines.length <= NODES.length, `no other lease: ${leaseLines.join("; ")}`);
          c.close();
        },
      );

      await t.step(
        "a default-route change restarts nothing and guests reach the internet through the new uplink",
        async () => {
          const before = await show("aos-unit.service", "InvocationID");
          const c = await serial("main");
          assert.equal(await http(c), "uplink1");
          await topo.setDefault(1);
          await waitFor(
            "main's traffic through uplink2",
            async () => (await http(c)) === "uplink2" ? true : undefined,
            15_000,
            200,
          );
          await waitFor(
            "the monitor's handover",
            async () =>
              (await bed.exec(["cat", "/run/aos-unit/uplinks"])).stdout.trim() === "uplink2"
                ? true
                : undefined,
            5000,
          );
          assert.deepEqual(await show("aos-unit.service", "InvocationID"), before);
          assert.deepEqual(await boots(), { main: 1, secondary: 1 }, "no guest rebooted");
          c.close();
          await topo.setDefault(0);
        },
      );

      await t.step(
        "dnsmasq SIGKILLed: restarted in place, no guest reboot, DHCP and DNS answer within 2 s",
        async () => {
          const manager = await show("aos-unit.service", "NRestarts", "InvocationID");
          const addresses = [await leaseOf("main"), await leaseOf("secondary")];
          const c = await serial("secondary");
          const killed = performance.now();
          await sh("systemctl kill -s KILL aos-unit-dnsmasq.service");
          // DNS from the host, and a one-shot DHCP client in the guest, both tried until
          // the restarted dnsmasq answers.
          const [answered, dhcp] = await Promise.all([
            waitFor(
              "DNS from dnsmasq again",
              async () => {
                const a = await dnsFrom(topo.host, "10.200.1.1", 5300, "secondary.aos-unit", 200);
                return a.startsWith("answer") ? performance.now() - killed : undefined;
              },
              10_000,
              50,
            ),
            waitFor(
              "a DHCP answer again",
              async () => {
                const ok = await guestOk(
                  c,
                  "udhcpc -n -q -t 1 -T 1 -i eth0 -s /bin/true >/dev/null 2>&1",
                );
                return ok ? performance.now() - killed : undefined;
              },
              10_000,
              0,
            ),
          ]);
          console.log(
            `dnsmasq kill -> DNS ${Math.round(answered)} ms, DHCP ${Math.round(dhcp)} ms`,
          );
          assert.ok(answered < 2000, `DNS back after ${answered} ms`);
          assert.ok(dhcp < 2000, `DHCP back after ${dhcp} ms`);
          assert.deepEqual(await show("aos-unit.service", "NRestarts", "InvocationID"), manager);
          assert.deepEqual([await leaseOf("main"), await leaseOf("secondary")], addresses);
          assert.deepEqual(await boots(), { main: 1, secondary: 1 });
          assert.equal(
            (await show("aos-unit-dnsmasq.service", "ActiveState")).ActiveState,
            "active",
          );
          c.close();
        },
      );

      await t.step(
        "the manager SIGKILLed: guests keep running and answering, READY again, adopted",
        async () => {
          const c = await serial("main");
          const pids = await Promise.all(
            NODES.map(async (n) => (await show(`aos-node-${n}.service`, "MainPID")).MainPID),
          );
          const killed = performance.now();
          await sh("systemctl kill -s KILL --kill-whom=main aos-unit.service");
          // While the manager is gone, the guests' network keeps working.
          assert.equal(await http(c), "uplink1");
          await waitFor(
            "the manager restarting",
            async () => {
              const u = await show("aos-unit.service", "NRestarts");
              return u.NRestarts !== "0" ? true : undefined;
            },
            10_000,
            100,
          );
          await waitRunning();
          console.log(
            `manager SIGKILL -> READY again: ${Math.round(performance.now() - killed)} ms`,
          );
          assert.deepEqual(
            await Promise.all(
              NODES.map(async (n) => (await show(`aos-node-${n}.service`, "MainPID")).MainPID),
            ),
            pids,
            "the same QEMU processes",
          );
          assert.deepEqual(await boots(), { main: 1, secondary: 1 });
          assert.match(await journal(40), /main adopted, secondary adopted/);
          assert.equal(await http(c), "uplink1");
          c.close();
        },
      );

      await t.step("systemctl restart keeps every guest running (a re-plan)", async () => {
        const before = await show("aos-unit.service", "InvocationID");
        const started = performance.now();
        await sh("systemctl restart aos-unit");
        console.log(`systemctl restart: ${Math.round(performance.now() - started)} ms`);
        assert.notDeepEqual(await show("aos-unit.service", "InvocationID"), before);
        await waitRunning();
        assert.deepEqual(await boots(), { main: 1, secondary: 1 });
      });

      await t.step(
        "systemctl stop aos-node-secondary by hand: the guest gets the ACPI power button first",
        async () => {
          const since = (await sh("date +%s.%N")).trim();
          await sh("systemctl stop aos-node-secondary.service");
          assert.match(
            await sh("tail -n 5 /var/log/aos-unit/secondary-serial.log"),
            /AOSTEST poweroff/,
            "an ACPI powerdown, not a signal",
          );
          assert.doesNotMatch(
            await sh(`journalctl -u aos-node-secondary --no-pager --since @${since}`),
            /terminating on signal/,
          );
          await waitFor("STATUS names the stopped node", async () => {
            const text = (await show("aos-unit.service", "StatusText")).StatusText ?? "";
            return /^Degraded: main=10\.200\.1\.100; secondary stopped$/.test(text)
              ? true
              : undefined;
          }, 10_000);
          await sh("systemctl restart aos-unit");
          await waitRunning();
        },
      );

      await t.step(
        "a changed node and a new node on restart: only those start, the rest keeps running",
        async () => {
          const before = await boots();
          await writeConfig(
            UNIT_CONFIG.replace(/(name: secondary\n\s+cpu: 1\n\s+mem: )512M/, "$1640M"),
          );
          const since = (await sh("date +%s.%N")).trim();
          await sh("systemctl restart aos-unit");
          await waitRunning();
          const after = await boots();
          assert.equal(after.main, before.main, "main kept running");
          assert.equal(
            after.secondary,
            before.secondary! + 1,
            "secondary restarted with its new plan",
          );
          assert.equal(
            (await show("aos-node-secondary.service", "MemoryMax")).MemoryMax,
            String((640 + 256 + 40 + 256) * 1024 * 1024),
          );
          assert.match(
            await sh(`journalctl -u aos-unit --no-pager --since @${since}`),
            /aos-node-secondary\.service runs from another plan/,
          );
          await writeConfig(UNIT_CONFIG);
          await sh("systemctl restart aos-unit");
          await waitRunning();
          assert.equal((await boots()).main, before.main, "main still the same boot");
        },
      );

      await t.step(
        "killing a node's QEMU restarts that node alone and writes exactly one record",
        async () => {
          await sh(": > /var/log/aos-unit/vm-failures.log");
          const mainPid = (await show("aos-node-main.service", "MainPID")).MainPID;
          const killed = performance.now();
          await sh("systemctl kill --signal=SIGKILL aos-node-secondary.service");
          await waitFor(
            "secondary restarted",
            async () => {
              const u = await show("aos-node-secondary.service", "ActiveState", "NRestarts");
              return u.ActiveState === "active" && u.NRestarts === "1" ? true : undefined;
            },
            20_000,
            100,
          );
          console.log(`SIGKILL -> node active again: ${Math.round(performance.now() - killed)} ms`);
          assert.equal((await show("aos-node-main.service", "MainPID")).MainPID, mainPid);
          await new Promise((r) => setTimeout(r, 2000)); // a second record would come now
          const records = await failures();
          assert.equal(records.length, 1, JSON.stringify(records));
          assert.equal(records[0]!.node, "secondary");
          assert.equal(records[0]!.result, "signal");
          assert.equal(records[0]!.exit_status, "KILL");
          assert.equal(records[0]!.final, false);
          assert.ok(records[0]!.serial_tail.some((l) => l.includes("AOSTEST")), "serial tail");
          const { status: s } = await status();
          assert.equal(s.nodes.find((n) => n.name === "secondary")?.lastFailure?.final, false);
          await waitRunning();
        },
      );

      await t.step(
        "a node over its start limit: one final record, that node failed, STATUS degraded",
        async () => {
          await sh(": > /var/log/aos-unit/vm-failures.log");
          for (let i = 0; i < 6; i++) {
            const u = await show("aos-node-secondary.service", "ActiveState");
            if (u.ActiveState === "failed") break;
            await bed.exec(["systemctl", "kill", "--signal=SIGKILL", "aos-node-secondary.service"]);
            await waitFor(
              "secondary restarted or failed",
              async () => {
                const s = await show("aos-node-secondary.service", "ActiveState", "SubState");
                return s.ActiveState === "failed" ||
                    (s.ActiveState === "active" && s.SubState === "running")
                  ? true
                  : undefined;
              },
              20_000,
              200,
            ).catch(() => undefined);
          }
          assert.equal(
            (await show("aos-node-secondary.service", "ActiveState")).ActiveState,
            "failed",
          );
          assert.equal((await show("aos-node-main.service", "ActiveState")).ActiveState, "active");
          assert.equal((await show("aos-unit.service", "ActiveState")).ActiveState, "active");
          const final = await waitFor(
            "the final record",
            async () => (await failures()).find((r) => r.final),
            10_000,
          );
          assert.equal(final.node, "secondary");
          await new Promise((r) => setTimeout(r, 1500));
          const records = await failures();
          assert.equal(records.filter((r) => r.final).length, 1, "exactly one final record");
          assert.ok(records.filter((r) => !r.final).every((r) => r.result === "signal"));
          assert.ok(final.journal.length > 0, "the final record has the journal");
          await waitFor("STATUS degraded", async () => {
            const text = (await show("aos-unit.service", "StatusText")).StatusText ?? "";
            return /^Degraded: main=10\.200\.1\.100; secondary gave-up$/.test(text)
              ? text
              : undefined;
          }, 10_000);
          const { code, status: s } = await status();
          assert.equal(code, 1, "status reports the unit unhealthy");
          assert.equal(s.nodes.find((n) => n.name === "secondary")?.lastFailure?.final, true);
        },
      );

      await t.step(
        "attack as the aos-unit user: a journal linked behind a serial log leaks nothing into the final record",
        async () => {
          const log = "/var/log/aos-unit/secondary-serial.log";
          const journal = (await sh(
            "ls /run/log/journal/*/system.journal /var/log/journal/*/system.journal 2>/dev/null | head -n 1",
          )).trim();
          assert.notEqual(journal, "", "a journal file to point at");
          const plant = await bed.exec([
            "sh",
            "-c",
            `mv ${log} ${log}.saved && ln -s ${journal} ${log}`,
          ], {
            user: "aos-unit",
          });
          assert.equal(plant.code, 0, plant.stderr);
          try {
            // The forensic handler, as systemd runs it when it gives up on a node (with the
            // systemd-journal group).
            const before = (await failures()).length;
            await sh("systemctl start aos-unit-vm-failed@secondary.service");
            const records = await failures();
            assert.equal(records.length, before + 1, "a final record was written");
            const last = records.at(-1)!;
            assert.equal(last.final, true);
            assert.deepEqual(last.serial_tail, [], "nothing read through the link");
            assert.doesNotMatch(JSON.stringify(last.serial_tail), /LPKSHHRH/);
          } finally {
            await bed.exec(["sh", "-c", `rm -f ${log} && mv ${log}.saved ${log}`], {
              user: "aos-unit",
            });
          }
        },
      );

      await t.step(
        "systemctl restart brings the failed node back, main keeps running",
        async () => {
          await sh("systemctl restart aos-unit");
          await waitRunning();
          const b = await boots();
          assert.equal(b.main, 1, "main did not reboot");
          assert.equal(
            (await show("aos-node-secondary.service", "ActiveState")).ActiveState,
            "active",
          );
        },
      );

      let overlays = "";
      await t.step(
        "installing a newer package that changes a node sandbox property: no guest reboot, the new version runs, conffiles kept",
        async () => {
          const tasks = await show("aos-node-main.service", "TasksMax", "InvocationID");
          assert.equal(tasks.TasksMax, "512");
          overlays = await sh(
            "stat -c '%n %i' /var/lib/aos-unit/nodes/*/overlay.qcow2 /var/lib/aos-unit/nodes/*/efivars.fd",
          );
          const before = await boots();
          const version = (await sh("aos-unit --version")).trim();
          const invocation = (await show("aos-unit.service", "InvocationID")).InvocationID;
          const started = performance.now();
          const r = await bed.exec(["apt-get", "install", "-y", `/tmp/${deb2.split("/").pop()}`]);
          assert.equal(r.code, 0, r.stderr + r.stdout);
          await waitRunning();
          console.log(
            `apt-get install of a new build -> READY: ${
              Math.round(performance.now() - started)
            } ms`,
          );
          assert.notEqual((await sh("aos-unit --version")).trim(), version, "the new version");
          assert.notEqual(
            (await show("aos-unit.service", "InvocationID")).InvocationID,
            invocation,
          );
          assert.equal(
            await sh("cat /etc/aos-unit/unit_config.yaml"),
            UNIT_CONFIG,
            "conffile kept",
          );
          assert.deepEqual(await boots(), before, "no guest rebooted");
          // TasksMax=511 in the new release applies at the node's next start, not now.
          assert.deepEqual(
            await show("aos-node-main.service", "TasksMax", "InvocationID"),
            tasks,
            "the node unit adopted as it runs",
          );
          assert.equal(
            await sh(
              "stat -c '%n %i' /var/lib/aos-unit/nodes/*/overlay.qcow2 /var/lib/aos-unit/nodes/*/efivars.fd",
            ),
            overlays,
          );
        },
      );

      // The full minute on one release; the other shows the same mechanism in less time.
      const floodSec = suite === "bookworm" ? 60 : 15;
      await t.step(
        `a guest writing its console flat out for ${floodSec} s leaves logs under the cap`,
        async () => {
          const capKb = 256;
          await writeRuntime(`${RUNTIME_CONF}SERIAL_LOG_MAX_KB="${capKb}"\n`);
          await sh("systemctl restart aos-unit");
          await waitRunning();
          const since = (await sh("date +%s.%N")).trim();
          const c = await serial("secondary");
          await c.send(
            `timeout ${floodSec} sh -c 'while :; do echo flood-0123456789-abcdefghijklmnopqrstuvwxyz-0123456789; done'; echo AOSTEST flood done`,
          );
          let largest = 0;
          const sizes = async () => {
            const out = await sh(
              "stat -c %s /var/log/aos-unit/secondary-serial.log /var/log/aos-unit/secondary-serial.log.1 2>/dev/null || true",
            );
            return out.split("\n").filter(Boolean).map(Number);
          };
          const sampler = setInterval(async () => {
            for (const size of await sizes().catch(() => [])) largest = Math.max(largest, size);
          }, 500);
          try {
            await c.expect(/^AOSTEST flood done/, (floodSec + 60) * 1000, "the flood's end");
          } finally {
            clearInterval(sampler);
          }
          for (const size of await sizes()) largest = Math.max(largest, size);
          const rotations = (await sh(`journalctl -u aos-unit --no-pager --since @${since}`))
            .split("\n").filter((l) => l.includes("Rotated /var/log/aos-unit/secondary-serial.log"))
            .length;
          console.log(
            `console flood ${floodSec} s: ${rotations} rotation(s), largest file ${
              Math.round(largest / 1024)
            } KiB, cap ${capKb} KiB`,
          );
          assert.ok(rotations > 0, "the flood was big enough to need rotation");
          assert.ok(largest <= capKb * 1024, `a log grew to ${largest} bytes`);
          c.close();
          await writeRuntime(RUNTIME_CONF);
          await sh("systemctl restart aos-unit");
          await waitRunning();
        },
      );

      await t.step(
        "systemctl restart dbus: the manager reconnects, follows nodes, and its stop activates nothing",
        async () => {
          const since = (await sh("date +%s.%N")).trim();
          const pid = (await show("aos-unit.service", "MainPID")).MainPID;
          await sh("systemctl restart dbus");
          await waitFor(
            "the manager back on the bus",
            async () =>
              /Reconnected to the system bus/.test(
                  await sh(`journalctl -u aos-unit --no-pager --since @${since}`),
                )
                ? true
                : undefined,
            15_000,
          );
          // Signals flow again: a node stopped by hand shows in STATUS.
          await sh("systemctl stop aos-node-secondary.service");
          await waitFor("STATUS names the stopped node", async () => {
            const text = (await show("aos-unit.service", "StatusText")).StatusText ?? "";
            return /secondary stopped$/.test(text) ? true : undefined;
          }, 10_000);
          const stopSince = (await sh("date +%s.%N")).trim();
          await sh("systemctl stop aos-unit");
          // Activating a service from the stop path is queued behind that very stop (a stall).
          const bus = await sh(`journalctl -u dbus --no-pager --since @${stopSince}`);
          assert.doesNotMatch(bus, new RegExp(`Activating via systemd: .*pid=${pid} `), bus);
          await noLeftovers();
          // resolved (252 and 257) does not rejoin a restarted bus; startup says so, then it is fixed.
          await startUnit();
          assert.match(
            await sh(`journalctl -u aos-unit --no-pager --since @${stopSince}`),
            /systemd-resolved runs but is not on the system bus/,
          );
          await sh("systemctl restart systemd-resolved aos-unit");
          await waitRunning();
          assert.match(await sh("getent hosts main.aos-unit"), /^10\.200\.1\.100\s/);
        },
      );

      await t.step(
        "systemctl restart dbus, then systemctl restart aos-unit: no guest boots, the same bridge",
        async () => {
          const before = await boots();
          const bridge = (await sh(`cat /sys/class/net/${BRIDGE}/ifindex`)).trim();
          const pids = await Promise.all(
            NODES.map(async (n) => (await show(`aos-node-${n}.service`, "MainPID")).MainPID),
          );
          // The manager learns of the restart while its bus is still away: it waits and asks.
          await sh("systemctl restart dbus && systemctl restart aos-unit");
          await waitRunning();
          assert.deepEqual(await boots(), before, "no guest booted");
          assert.equal((await sh(`cat /sys/class/net/${BRIDGE}/ifindex`)).trim(), bridge);
          assert.deepEqual(
            await Promise.all(
              NODES.map(async (n) => (await show(`aos-node-${n}.service`, "MainPID")).MainPID),
            ),
            pids,
            "the same QEMU processes",
          );
          // logind and resolved stay off the restarted bus; bring them back for what follows.
          await sh("systemctl restart systemd-resolved systemd-logind");
        },
      );

      await t.step(
        "a stop landing while a restart runs its ExecStopPost: nothing is left running",
        async () => {
          // A last ExecStopPost= that takes its time holds the restart in that window.
          const dropIn = "/run/systemd/system/aos-unit.service.d/slow-stop-post.conf";
          await sh(
            `mkdir -p ${dropIn.replace(/\/[^/]+$/, "")} && printf '%s\\n' '[Service]' ` +
              `'ExecStopPost=/bin/sleep 3' > ${dropIn} && systemctl daemon-reload`,
          );
          try {
            await sh("systemctl restart --no-block aos-unit");
            await waitFor(
              "the restart in its ExecStopPost",
              async () =>
                (await bed.exec(["pgrep", "-f", "^/bin/sleep 3$"])).code === 0 || undefined,
              20_000,
              50,
            );
            await sh("systemctl stop aos-unit");
            // aos-unit-stopped.service takes the unit down once it is inactive.
            await waitFor(
              "nothing left",
              async () => {
                try {
                  await noLeftovers();
                  return true;
                } catch {
                  return undefined;
                }
              },
              60_000,
              500,
            );
            assert.equal((await show("aos-unit.service", "ActiveState")).ActiveState, "inactive");
          } finally {
            await sh(
              `rm -f ${dropIn} && systemctl daemon-reload && systemctl reset-failed aos-unit`,
            )
              .catch(() => {});
          }
          await startUnit();
        },
      );

      await t.step(
        "systemctl stop aos-unit powers guests down gracefully and leaves nothing",
        async () => {
          const started = performance.now();
          await sh("systemctl stop aos-unit");
          console.log(
            `systemctl stop aos-unit (2 nodes): ${Math.round(performance.now() - started)} ms`,
          );
          for (const n of NODES) {
            const log = await sh(`tail -n 20 /var/log/aos-unit/${n}-serial.log`);
            assert.match(log, /AOSTEST poweroff/, `${n} powered down through ACPI`);
          }
          await noLeftovers();
          const runtime = await bed.exec(["ls", "-A", "/run/aos-unit"]);
          assert.ok(
            runtime.code !== 0 || runtime.stdout.trim() === "",
            `runtime files left: ${runtime.stdout}`,
          );
        },
      );

      await t.step(
        "a serial log left to root: exit 2 naming the file and the fix, no node started",
        async () => {
          await sh(
            "chown root:root /var/log/aos-unit/main-serial.log && chmod 644 /var/log/aos-unit/main-serial.log",
          );
          let j = "";
          let c: CheckResult;
          let code = 0;
          try {
            const since = (await sh("date +%s.%N")).trim();
            code = (await bed.exec(["systemctl", "start", "aos-unit"])).code;
            j = await sh(`journalctl --no-pager --since @${since}`);
            c = (await doctorJson()).checks.find((x) => x.id === "node-files")!;
          } finally {
            // Put back whatever failed: the steps after this one need the log.
            await sh(
              "chown aos-unit:aos-unit /var/log/aos-unit/main-serial.log; systemctl reset-failed aos-unit",
            );
          }
          assert.notEqual(code, 0);
          assert.match(
            j,
            /QEMU \(user aos-node-NAME, group aos-unit\) cannot write the serial log \/var\/log\/aos-unit\/main-serial\.log .*fix: chown aos-unit:aos-unit \/var\/log\/aos-unit\/main-serial\.log/,
          );
          assert.match(j, /status=2/);
          assert.doesNotMatch(j, /Started aos-node-/, "no node unit started");
          assert.equal(c.status, "fail");
          assert.match(c.fix!, /chown aos-unit:aos-unit \/var\/log\/aos-unit\/main-serial\.log/);
          await noLeftovers();
        },
      );

      await t.step(
        "a root-owned 0600 base image (a plain sudo cp): exit 2 with the chown, no restart",
        async () => {
          const image = "/var/lib/aos-unit/aos-vm-main-qemux86-64.qcow2";
          await sh(`chown root:root ${image} && chmod 600 ${image}`);
          try {
            const restarts = (await show("aos-unit.service", "NRestarts")).NRestarts;
            const since = (await sh("date +%s.%N")).trim();
            const r = await bed.exec(["systemctl", "start", "aos-unit"]);
            assert.notEqual(r.code, 0);
            await new Promise((res) => setTimeout(res, 3000)); // longer than RestartSec=2s
            const u = await show("aos-unit.service", "ActiveState", "NRestarts");
            assert.equal(u.ActiveState, "failed");
            assert.equal(u.NRestarts, restarts, "no restart loop");
            const j = await sh(`journalctl -u aos-unit --no-pager --since @${since}`);
            assert.match(
              j,
              new RegExp(
                `QEMU \\(user aos-unit\\) cannot read the base image ${image}.*fix: chown aos-unit:aos-unit ${image}`,
              ),
            );
            assert.match(j, /status=2/);
            assert.doesNotMatch(j, /Started aos-node-/, "no node unit started");
            await noLeftovers();
          } finally {
            await sh(
              `chown aos-unit:aos-unit ${image} && chmod 640 ${image}; systemctl reset-failed aos-unit`,
            );
          }
        },
      );

      await t.step(
        "an aarch64 node without the arm emulator: exit 2 naming the package to install",
        async () => {
          await sh(
            "cp /var/lib/aos-unit/aos-vm-secondary-qemux86-64.qcow2 /var/lib/aos-unit/aos-vm-arm-arm64.qcow2",
          );
          await writeConfig(UNIT_CONFIG + "    - { name: arm, cpu: 1, mem: 512M, arch: arm64 }\n");
          const since = (await sh("date +%s.%N")).trim();
          const r = await bed.exec(["systemctl", "start", "aos-unit"]);
          assert.notEqual(r.code, 0);
          const j = await sh(`journalctl --no-pager --since @${since}`);
          assert.match(
            j,
            /No QEMU for aarch64 guests on this host: install qemu-system-arm \(node "arm"\)/,
          );
          assert.match(j, /install qemu-efi-aarch64/);
          assert.match(j, /status=2/);
          const c = (await doctorJson()).checks.find((x) => x.id === "emulator")!;
          assert.equal(c.status, "fail");
          assert.equal(c.fix, "apt-get install qemu-system-arm");
          await sh("systemctl reset-failed aos-unit; rm /var/lib/aos-unit/aos-vm-arm-arm64.qcow2");
          await writeConfig(UNIT_CONFIG);
          await noLeftovers();
        },
      );

      await t.step(
        "a mixed unit: an x86_64 main and an aarch64 secondary, once the arm emulator is installed",
        async () => {
          const r = await bed.exec([
            "apt-get",
            "install",
            "-y",
            "qemu-system-arm",
            "qemu-efi-aarch64",
          ]);
          assert.equal(r.code, 0, r.stderr);
          await bed.cpIn(`${await armImages()}/aos-vm-arm-arm64-uefi.qcow2`, "/var/lib/aos-unit/");
          await sh("chown aos-unit:aos-unit /var/lib/aos-unit/*.qcow2");
          await writeConfig(`unit:
  node_configs:
    - { name: main, cpu: 1, mem: 512M, ip: 10.200.1.100 }
    - { name: arm, cpu: 1, mem: 512M, arch: arm64 }
`);
          const ms = await startUnit();
          console.log(`mixed unit (x86_64 + aarch64) start -> READY: ${ms} ms`);
          const { code, status: s } = await status();
          assert.equal(code, 0, JSON.stringify(s));
          const arm = s.nodes.find((n) => n.name === "arm")!;
          assert.match(arm.address ?? "", /^10\.200\.1\.\d+$/);
          assert.match(
            (await show("aos-node-arm.service", "ExecStart")).ExecStart ?? "",
            /qemu-system-aarch64 .*-machine virt/,
          );
          assert.match(
            await sh("getent hosts arm.aos-unit"),
            new RegExp(`^${arm.address!.replaceAll(".", "\\.")}\\s`),
          );
          const c = await serial("arm");
          assert.equal(await http(c), "uplink1", "the aarch64 guest reaches the internet host");
          c.close();
          await sh("systemctl stop aos-unit");
          assert.match(await sh("tail -n 5 /var/log/aos-unit/arm-serial.log"), /AOSTEST poweroff/);
          await noLeftovers();
          await writeConfig(UNIT_CONFIG);
        },
      );

      await t.step("SIGTERM during start-up stops quickly and leaves nothing", async () => {
        await sh("systemctl start --no-block aos-unit");
        await waitFor(
          "a node starting",
          async () => {
            const u = await show("aos-node-main.service", "ActiveState");
            return u.ActiveState === "active" ? true : undefined;
          },
          10_000,
          50,
        );
        const started = performance.now();
        await sh("systemctl stop aos-unit");
        const ms = Math.round(performance.now() - started);
        console.log(`stop during start-up: ${ms} ms`);
        assert.ok(ms < 8000, `stop took ${ms} ms:\n${await journal(60)}`);
        await noLeftovers();
      });

      await t.step(
        "a stop after the broker finished but before the manager began takes everything down",
        async () => {
          // A second ExecStartPre= that exits 0 on SIGTERM holds the unit in that window: the
          // stop then ends with SERVICE_RESULT=success and no manager ever ran.
          const dropIn = "/run/systemd/system/aos-unit.service.d/window.conf";
          await sh(
            `mkdir -p ${dropIn.replace(/\/[^/]+$/, "")} && printf '%s\\n' '[Service]' ` +
              `'ExecStartPre=+/bin/sh -c "trap \\"exit 0\\" TERM; sleep 60 & wait"' > ${dropIn} ` +
              "&& systemctl daemon-reload",
          );
          try {
            await sh("systemctl start --no-block aos-unit");
            await waitFor(
              "the broker done, the manager not started",
              async () => (await bed.exec(["pgrep", "-f", "^sleep 60$"])).code === 0 || undefined,
              30_000,
              100,
            );
            assert.equal(
              (await show("aos-node-main.service", "ActiveState")).ActiveState,
              "active",
            );
            await sh("systemctl stop aos-unit");
            await noLeftovers();
          } finally {
            await sh(
              `rm -f ${dropIn} && systemctl daemon-reload && systemctl reset-failed aos-unit`,
            )
              .catch(() => {});
          }
        },
      );

      await t.step(
        "a node failing at start: READY without it, STATUS names it, the rest works",
        async () => {
          await writeConfig(
            UNIT_CONFIG.replace(
              /(name: secondary\n\s+cpu: 1\n\s+mem: 512M)/,
              "$1\n      machine_type: no-such-machine",
            ),
          );
          await startUnit();
          const text = (await show("aos-unit.service", "StatusText")).StatusText ?? "";
          assert.match(text, /^Degraded: main=10\.200\.1\.100; secondary gave-up$/);
          assert.equal((await show("aos-unit.service", "ActiveState")).ActiveState, "active");
          assert.equal((await status()).code, 1, "status: not healthy");
          await sh("systemctl stop aos-unit");
          await noLeftovers();
          await writeConfig(UNIT_CONFIG);
        },
      );

      await t.step(
        "every node failing at start: systemctl start fails naming each node; nothing left",
        async () => {
          await writeConfig(
            UNIT_CONFIG.replace(/mem: 512M/g, "mem: 512M\n      machine_type: no-such-machine"),
          );
          const r = await bed.exec(["systemctl", "start", "aos-unit"]);
          assert.notEqual(r.code, 0, "systemctl start failed");
          // The whole attempt: systemd restarts the manager meanwhile, with lines of its own.
          const j = await journal(600);
          assert.match(
            j,
            /No node could start: main: exit-code \(exited 1\)[^;]*; secondary: exit-code \(exited 1\)/,
          );
          await sh("systemctl stop aos-unit; systemctl reset-failed");
          await noLeftovers();
          await writeConfig(UNIT_CONFIG);
        },
      );

      await t.step(
        "a bad config fails the service with exit 2, no restart loop, no leftovers",
        async () => {
          await writeConfig(
            "unit:\n  node_configs:\n    - name: main\n      cpu: lots\n      mem: 1G\n",
          );
          const restarts = (await show("aos-unit.service", "NRestarts")).NRestarts;
          const r = await bed.exec(["systemctl", "start", "aos-unit"]);
          assert.notEqual(r.code, 0);
          await new Promise((res) => setTimeout(res, 3000)); // longer than RestartSec=2s
          const u = await show("aos-unit.service", "ActiveState", "Result", "NRestarts");
          assert.equal(u.ActiveState, "failed");
          assert.equal(u.NRestarts, restarts, "no restart loop");
          const j = await sh("journalctl -u aos-unit.service -n 30 --no-pager");
          assert.match(j, /unit_config\.yaml:4:\d+: cpu must be a positive integer, got "lots"/);
          assert.match(j, /status=2/);
          await noLeftovers();
          await sh("systemctl reset-failed aos-unit.service");
          await writeConfig(UNIT_CONFIG);
        },
      );

      // The images users run: main static at 10.0.0.100/24, the secondary on DHCP finding main
      // through /etc/hosts, the shipped configuration left untouched (tests/guest/README.md).
      const useStock = async () => {
        await sh(
          "systemctl stop aos-unit; rm -rf /var/lib/aos-unit/nodes/* /var/lib/aos-unit/dhcp/*",
        );
        const images = await guestImages();
        for (const name of NODES) {
          await bed.cpIn(
            `${images}/aos-vm-${name}-amd64-stock.qcow2`,
            `/var/lib/aos-unit/aos-vm-${name}-qemux86-64.qcow2`,
          );
        }
        await sh(
          "chown aos-unit:aos-unit /var/lib/aos-unit/*.qcow2 && " +
            "cp /usr/share/aos-unit/examples/unit_config.yaml /usr/share/aos-unit/examples/runtime.conf /etc/aos-unit/",
        );
      };
      /** GET / on HOST:PORT from the bed (the host), with bash's /dev/tcp: the body's last line. */
      const fetchFromHost = async (host: string, port: number) =>
        (await bed.exec([
          "timeout",
          "5",
          "bash",
          "-c",
          `exec 3<>/dev/tcp/${host}/${port} && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && tail -n 1 <&3`,
        ])).stdout.trim();
      const stockRunning = (timeoutMs = 120_000) =>
        waitFor(
          "the stock unit running with every node",
          async () => {
            const u = await show("aos-unit.service", "ActiveState", "StatusText");
            return u.ActiveState === "active" &&
                /^Running: main=10\.0\.0\.100 secondary=10\.0\.0\.\d+$/.test(u.StatusText ?? "")
              ? u
              : undefined;
          },
          timeoutMs,
          200,
        );

      await t.step(
        "the Quick Start with stock-like images and the shipped configuration: READY, 8089 from the host, main from the secondary, the internet from both",
        async () => {
          await useStock();
          const before = await boots();
          const ms = await startUnit();
          console.log(`stock images, shipped configuration: systemctl start -> READY ${ms} ms`);
          const { code, status: s } = await status();
          assert.equal(code, 0, JSON.stringify(s));
          assert.equal(s.nodes.find((n) => n.name === "main")?.reserved, "10.0.0.100");
          assert.match(
            s.nodes.find((n) => n.name === "secondary")?.address ?? "",
            /^10\.0\.0\.(1[3-9][0-9]|2[0-5][0-9]|12[89])$/,
          );
          assert.match(await sh("getent hosts main.aos-unit"), /^10\.0\.0\.100\s+main\.aos-unit/);
          assert.equal(await fetchFromHost("main.aos-unit", 8089), "aos-main name=main");
          await waitFor(
            "the secondary reaching main:8089",
            async () =>
              (await bed.exec([
                  "grep",
                  "-c",
                  "AOSTEST main-reached ok ip=10.0.0.100",
                  "/var/log/aos-unit/secondary-serial.log",
                ]))
                  .stdout.trim() !== "0"
                ? true
                : undefined,
            30_000,
            500,
          );
          for (const name of NODES) {
            const c = await serial(name);
            assert.equal(await http(c), "uplink1", `${name} reaches the internet host`);
            c.close();
          }
          const after = await boots();
          assert.deepEqual(
            NODES.map((n) => after[n]! - before[n]!),
            [1, 1],
            "each guest booted once",
          );
        },
      );

      await t.step(
        "a stock guest rebooting itself (an update) is no crash: no record, no restart, the same unit",
        async () => {
          await sh(": > /var/log/aos-unit/vm-failures.log");
          const before = await show(
            "aos-node-secondary.service",
            "NRestarts",
            "InvocationID",
            "MainPID",
          );
          const c = await serial("secondary");
          await c.send("aos-probe reboot");
          await c.expect(/^AOSTEST boot name=secondary count=2$/, 60_000, "the second boot");
          await c.expect(/^AOSTEST main-reached ok /, 60_000, "main reached again");
          c.close();
          assert.deepEqual(
            await show("aos-node-secondary.service", "NRestarts", "InvocationID", "MainPID"),
            before,
            "the same QEMU, no restart",
          );
          assert.deepEqual(await failures(), [], "no failure record");
          await stockRunning();
        },
      );

      await t.step(
        "snapshot save on the running unit (a pause), the guests move on, restore: counters, UEFI and addresses as saved",
        async () => {
          /** The count the guest printed at its last boot (from its disk). */
          const lastCount = async (node: string) => {
            const log = await sh(`cat /var/log/aos-unit/${node}-serial.log`);
            const all = [
              ...log.matchAll(new RegExp(`AOSTEST boot name=${node} count=(\\d+)`, "g")),
            ];
            return Number(all.at(-1)![1]);
          };
          const main = await serial("main");
          assert.equal(
            (await main.probe("aos-probe efivar snap-1", /^AOSTEST efivar value=(\S+)$/))[1],
            "snap-1",
          );
          const saved = { main: await lastCount("main"), secondary: await lastCount("secondary") };
          const address = await leaseOf("secondary");
          for (const bad of ["../x", ".partial", "a/b", "-x", "x".repeat(64)]) {
            const r = await bed.exec(["aos-unit", "snapshot", "save", "--", bad]);
            assert.equal(r.code, 2, `${bad}: ${r.stderr}`);
          }
          // Nothing made (the lock file of earlier saves is no snapshot).
          assert.equal(
            (await sh("ls /var/lib/aos-unit/snapshots 2>/dev/null || true")).trim(),
            "",
          );
          // Both guests write a sequence number to their disk every 100 ms: a save at one
          // instant restores the same difference between them (within one write).
          const consolesOf = { main, secondary: await serial("secondary") };
          for (const c of Object.values(consolesOf)) {
            await c.probe("aos-probe seq-start", /AOSTEST seq started/);
          }
          await new Promise((r) => setTimeout(r, 1500));
          const seqNow = () =>
            Promise.all(
              Object.values(consolesOf).map(async (c) =>
                Number(
                  (await c.probe(
                    `echo "AOSTEST seq now=$(aos-probe seq-read)"`,
                    /AOSTEST seq now=(\d+)/,
                  ))[1],
                )
              ),
            );
          const [m0, s0] = await seqNow();
          const save = await bed.exec(["aos-unit", "snapshot", "save", "provisioned"]);
          assert.equal(save.code, 0, save.stderr);
          console.log(`snapshot save (${suite}): ${save.stdout.trim()}`);
          const [m1, s1] = await seqNow();
          const list = JSON.parse(await sh("aos-unit snapshot list --json"))[0];
          assert.equal(list.nodes, 2);
          // The guests go on: a new UEFI value, a reboot each.
          await main.probe("aos-probe efivar later", /^AOSTEST efivar value=later$/);
          for (const n of NODES) {
            const c = consolesOf[n];
            await c.probe("aos-probe reboot", new RegExp(`^AOSTEST boot name=${n} count=`), 90_000);
            c.close();
          }
          await stockRunning();
          // Refused, and nothing stops: an unknown name, a missing file.
          const invocation = await show("aos-node-main.service", "InvocationID");
          assert.equal((await bed.exec(["aos-unit", "snapshot", "restore", "nothing"])).code, 2);
          await sh("mv /var/lib/aos-unit/snapshots/provisioned/secondary.qcow2 /root/");
          const broken = await bed.exec(["aos-unit", "snapshot", "restore", "provisioned"]);
          await sh("mv /root/secondary.qcow2 /var/lib/aos-unit/snapshots/provisioned/");
          assert.equal(broken.code, 1, broken.stderr);
          assert.deepEqual(await show("aos-node-main.service", "InvocationID"), invocation);
          const started = performance.now();
          const r = await bed.exec(["aos-unit", "snapshot", "restore", "provisioned"]);
          assert.equal(r.code, 0, r.stderr + r.stdout);
          console.log(
            `snapshot restore (${suite}): ${Math.round(performance.now() - started)} ms to READY`,
          );
          await stockRunning();
          for (const n of NODES) {
            assert.equal(await lastCount(n), saved[n as "main" | "secondary"] + 1, `${n} as saved`);
          }
          const log = (await sh("cat /var/log/aos-unit/main-serial.log")).replaceAll("\r", "");
          const lastBoot = log.slice(log.lastIndexOf("AOSTEST boot name=main"));
          assert.match(lastBoot, /^AOSTEST efivar value=snap-1$/m, "main's UEFI variable as saved");
          const restoredSeq = async (n: string) => {
            const text = await sh(`cat /var/log/aos-unit/${n}-serial.log`);
            return Number([...text.matchAll(/AOSTEST seq value=(\d+)/g)].at(-1)![1]);
          };
          const restored = (await restoredSeq("main")) - (await restoredSeq("secondary"));
          console.log(
            `seq main-secondary (${suite}): before save ${m0! - s0!}, after ${
              m1! - s1!
            }, restored ${restored}`,
          );
          assert.ok(
            Math.abs(restored - (m0! - s0!)) <= 1 || Math.abs(restored - (m1! - s1!)) <= 1,
            "one instant for both guests",
          );
          assert.equal(await leaseOf("secondary"), address, "the secondary's address as saved");
          assert.equal(await fetchFromHost("main.aos-unit", 8089), "aos-main name=main");
          restoredSecondary = await lastCount("secondary");
          // Kept for the next step: it must survive a restart, a package change and a reboot.
        },
      );

      await t.step(
        "a UEFI variable and a snapshot survive systemctl restart, a package change and a host reboot; a reset node comes back from the snapshot",
        async () => {
          const c = await serial("main");
          assert.equal(
            (await c.probe(
              "aos-probe efivar boot-ab-17",
              /^AOSTEST efivar (value=(\S+)|fail|none)$/,
            ))[2],
            "boot-ab-17",
          );
          c.close();
          const mainBoots = (await boots()).main!;
          await sh("systemctl restart aos-unit");
          await stockRunning();
          // Another build of the package (the older one: dpkg runs the same upgrade scripts).
          const r = await bed.exec([
            "apt-get",
            "install",
            "-y",
            "--allow-downgrades",
            `/tmp/${deb.split("/").pop()}`,
          ]);
          assert.equal(r.code, 0, r.stderr + r.stdout);
          await stockRunning();
          assert.equal((await boots()).main, mainBoots, "neither rebooted main");
          await sh("systemctl enable aos-unit");
          for (const c of consoles) c.close();
          const rebooted = performance.now();
          await bed.reboot();
          // The container's /tmp is a fresh tmpfs after the reboot: the packages go back in.
          await bed.cpIn(deb, "/tmp/");
          await bed.cpIn(deb2, "/tmp/");
          await stockRunning(180_000);
          console.log(
            `host reboot -> stock unit READY again: ${Math.round(performance.now() - rebooted)} ms`,
          );
          const log = (await sh("cat /var/log/aos-unit/main-serial.log")).replaceAll("\r", "");
          const lastBoot = log.slice(log.lastIndexOf("AOSTEST boot name=main"));
          assert.match(
            lastBoot,
            /^AOSTEST efivar value=boot-ab-17$/m,
            "read back after the reboot",
          );
          assert.equal(
            (await boots()).main,
            mainBoots + 1,
            "main booted once more, from the host reboot",
          );
          await sh("systemctl disable aos-unit");
          // The snapshot outlived all of that, and a reset of the node it holds.
          assert.deepEqual(
            JSON.parse(await sh("aos-unit snapshot list --json")).map((l: { name: string }) =>
              l.name
            ),
            ["provisioned"],
          );
          await sh("systemctl stop aos-unit");
          assert.match(
            await sh("aos-unit reset secondary"),
            /Snapshots keep their own copy of secondary \(provisioned\)/,
          );
          const r2 = await bed.exec(["aos-unit", "snapshot", "restore", "provisioned"]);
          assert.equal(r2.code, 0, r2.stderr + r2.stdout);
          await stockRunning();
          const log2 = await sh("cat /var/log/aos-unit/secondary-serial.log");
          const counts = [...log2.matchAll(/AOSTEST boot name=secondary count=(\d+)/g)];
          assert.equal(
            Number(counts.at(-1)![1]),
            restoredSecondary,
            "the reset secondary back as saved",
          );
          assert.equal((await bed.exec(["aos-unit", "snapshot", "delete", "provisioned"])).code, 0);
          assert.equal((await sh("ls /var/lib/aos-unit/snapshots")).trim(), "");
        },
      );

      await t.step(
        "a node silent on port 22, READY_TIMEOUT_SEC=60: READY degraded, main boots once in 120 s",
        async () => {
          await sh("systemctl stop aos-unit");
          // 60 s: main alone is ready in about 30 s under TCG, more with the other release's
          // bed booting beside it.
          await writeRuntime('DHCP_CIDR="10.0.0.0/24"\nREADY_TIMEOUT_SEC="60"\n');
          // The host's probes to the secondary (a pool address) go unanswered: no RST, nothing.
          await sh(
            "nft add table inet aostest && nft add chain inet aostest out '{ type filter hook output priority 0; }' && " +
              "nft add rule inet aostest out ip daddr 10.0.0.128/25 tcp dport 22 drop",
          );
          try {
            const before = await boots();
            const started = performance.now();
            await startUnit();
            const readyMs = Math.round(performance.now() - started);
            console.log(`one node silent: READY after ${readyMs} ms (READY_TIMEOUT_SEC=60)`);
            const u = await show("aos-unit.service", "ActiveState", "StatusText", "NRestarts");
            assert.equal(u.ActiveState, "active");
            assert.match(
              u.StatusText!,
              /^Degraded: main=10\.0\.0\.100; secondary silent at 10\.0\.0\.\d+$/,
            );
            await new Promise((r) =>
              setTimeout(r, Math.max(0, 120_000 - (performance.now() - started)))
            );
            const after = await boots();
            assert.equal(after.main! - before.main!, 1, "main booted exactly once in 120 s");
            assert.equal(after.secondary! - before.secondary!, 1, "and so did the secondary");
            const later = await show("aos-unit.service", "ActiveState", "NRestarts", "StatusText");
            assert.equal(later.ActiveState, "active");
            assert.equal(later.NRestarts, u.NRestarts, "the manager never restarted");
            assert.match(later.StatusText!, /secondary silent/);
          } finally {
            await sh("nft delete table inet aostest");
          }
          await stockRunning(30_000);
          await sh("cp /usr/share/aos-unit/examples/runtime.conf /etc/aos-unit/");
        },
      );

      await t.step(
        "10.0.0.0/24 already taken on the host: exit 2 naming the route and the change, nothing left; validate names the line",
        async () => {
          await sh("systemctl stop aos-unit");
          await sh("ip route add 10.0.0.0/16 dev uplink1");
          try {
            const since = (await sh("date +%s.%N")).trim();
            const r = await bed.exec(["systemctl", "start", "aos-unit"]);
            assert.notEqual(r.code, 0);
            const j = await sh(`journalctl -u aos-unit --no-pager --since @${since}`);
            assert.match(
              j,
              /runtime\.conf:9:11: DHCP_CIDR 10\.0\.0\.0\/24 overlaps the host's route 10\.0\.0\.0\/16 via uplink1; main's image configures itself as 10\.0\.0\.100\/24: free 10\.0\.0\.0\/24 on the host/,
            );
            assert.match(j, /status=2/);
            await noLeftovers();
          } finally {
            await sh("ip route del 10.0.0.0/16 dev uplink1; systemctl reset-failed aos-unit");
          }
          // The old sample's addressing against the stock images (a packaged aos-unit reads
          // /etc/aos-unit only).
          await sh(
            "printf 'DHCP_CIDR=\"10.200.1.0/24\"\\n' > /etc/aos-unit/runtime.conf && " +
              "sed -i 's/ip: 10.0.0.100/ip: 10.200.1.100/' /etc/aos-unit/unit_config.yaml",
          );
          const v = await bed.exec(["aos-unit", "validate"]);
          assert.equal(v.code, 2, v.stderr);
          assert.match(
            v.stderr,
            /\/etc\/aos-unit\/unit_config\.yaml:12:11: Node "main": its image aos-vm-main-qemux86-64\.qcow2 configures itself as 10\.0\.0\.100\/24 via 10\.0\.0\.1 .*set DHCP_CIDR="10\.0\.0\.0\/24" in \/etc\/aos-unit\/runtime\.conf and ip: 10\.0\.0\.100/,
          );
          await sh(
            "cp /usr/share/aos-unit/examples/unit_config.yaml /usr/share/aos-unit/examples/runtime.conf /etc/aos-unit/",
          );
          assert.equal(
            (await bed.exec(["aos-unit", "validate"])).code,
            0,
            "the shipped one agrees",
          );
          // Back to the DHCP test guests for the steps that follow.
          await sh("rm -rf /var/lib/aos-unit/nodes/* /var/lib/aos-unit/dhcp/*");
          await placeImages();
        },
      );

      await t.step("apt-get purge leaves no unit, user, link, table or file behind", async () => {
        const r = await bed.exec(["apt-get", "purge", "-y", "aos-unit"]);
        assert.equal(r.code, 0, r.stderr);
        await noLeftovers();
        assert.notEqual((await bed.exec(["id", "aos-unit"])).code, 0, "user removed");
        for (
          const path of [
            "/etc/aos-unit",
            "/var/lib/aos-unit",
            "/var/log/aos-unit",
            "/run/aos-unit",
            "/usr/lib/systemd/system/aos-unit.service",
            "/usr/bin/aos-unit",
          ]
        ) {
          assert.notEqual((await bed.exec(["test", "-e", path])).code, 0, `${path} removed`);
        }
      });

      await t.step(
        "powering off the container with the unit running completes promptly",
        async () => {
          const r0 = await bed.exec(["apt-get", "install", "-y", `/tmp/${deb.split("/").pop()}`]);
          assert.equal(r0.code, 0, r0.stderr);
          await placeImages();
          await startUnit();
          const started = performance.now();
          const r = await bed.down();
          const ms = Math.round(performance.now() - started);
          console.log(`container poweroff with 2 nodes running: ${ms} ms (${r.stdout.trim()})`);
          assert.match(r.stdout + r.stderr, /poweroff took/);
          assert.doesNotMatch(r.stdout + r.stderr, /killed/);
        },
      );
    } finally {
      for (const c of consoles) c.close();
      await bed.down();
      await topo.destroy();
      await Deno.remove(work, { recursive: true }).catch(() => {});
    }
  };
}
