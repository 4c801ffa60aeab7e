/**
 * Tier 3: the installed .deb under a real systemd (bookworm, booted with
 * systemd-nspawn in a namespace this test owns), with AosCore-like UEFI test
 * disks booted through aos-unit's own QEMU command line.
 */

import assert from "node:assert/strict";
import type { Status } from "../../src/commands/status.ts";
import type { FailureRecord } from "../../src/vm/failures.ts";
import { buildGuests, ROOT } from "../lib/aos.ts";
import { Bed } from "../lib/bed.ts";
import { run, waitFor } from "../lib/proc.ts";
import { SerialConsole } from "../lib/serial.ts";
import { INTERNET_IP, Topology } from "../lib/topology.ts";

// Small guests for a fast test; editing the shipped conffile is also what the upgrade test needs.
const UNIT_CONFIG = `# edited by the system test
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
const MACHINE_ID = "a05b0e7e57bed0000000000000000042";
const BRIDGE = `aosbr${MACHINE_ID.slice(0, 6)}`;
const URL_ = `http://${INTERNET_IP}/`;

async function buildDeb(out: string, epoch: number): Promise<string> {
  const r = await run([
    "bash",
    `${ROOT}/packaging/build_package.sh`,
    "--out",
    out,
    "--compress",
    "gzip",
  ], {
    env: { ...Deno.env.toObject(), SOURCE_DATE_EPOCH: String(epoch) },
  });
  if (r.code !== 0) throw new Error(`build_package.sh failed: ${r.stderr}`);
  return r.stdout.trim().split("\n").at(-1)!;
}

Deno.test({
  name: "the aos-unit package under a real systemd",
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  const work = await Deno.makeTempDir({ prefix: "aosu-sys-" });
  const topo = new Topology(`aoss${Deno.pid % 100000}`, work);
  const bed = new Bed(`aosu${Deno.pid % 100000}`);
  const consoles: SerialConsole[] = [];
  let deb = "";
  const epoch = Math.floor(Date.now() / 1000);

  const sh = async (script: string) => {
    const r = await bed.sh(script);
    if (r.code !== 0) throw new Error(`in bed: ${script} -> ${r.code}: ${r.stderr}${r.stdout}`);
    return r.stdout;
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
  const placeImages = async () => {
    for (const name of ["main", "secondary"]) {
      await bed.cpIn(
        `${work}/images/aos-vm-${name}-amd64-uefi.qcow2`,
        `/var/lib/aos-unit/aos-vm-${name}-qemux86-64.qcow2`,
      );
    }
    await sh("chown aos-unit:aos-unit /var/lib/aos-unit/*.qcow2");
    await bed.exec(["sh", "-c", "cat > /etc/aos-unit/unit_config.yaml"], { stdin: UNIT_CONFIG });
  };
  const startUnit = async () => {
    const started = performance.now();
    const r = await bed.exec(["systemctl", "start", "aos-unit"]);
    const ms = Math.round(performance.now() - started);
    if (r.code !== 0) {
      const j = await bed.exec(["journalctl", "-u", "aos-*", "-n", "80", "--no-pager"]);
      throw new Error(`systemctl start aos-unit failed (${r.code}): ${r.stderr}\n${j.stdout}`);
    }
    return ms;
  };
  const noLeftovers = async () => {
    const linksOut = (await bed.exec(["ip", "-br", "link"])).stdout;
    assert.doesNotMatch(linksOut, /aosbr|aostap/, linksOut);
    assert.notEqual(
      (await bed.exec(["nft", "list", "table", "inet", "aos_unit"])).code,
      0,
      "no nft table",
    );
    const units = (await bed.exec([
      "systemctl",
      "list-units",
      "--all",
      "--plain",
      "--no-legend",
      "aos-node-*",
      "aos-unit-dnsmasq*",
      "aos-unit-route-monitor*",
    ])).stdout.trim();
    assert.equal(units, "", `no transient units left: ${units}`);
  };

  try {
    const ok = await t.step("set-up: test bed, package and guest disks", async () => {
      await topo.create();
      await buildGuests(`${work}/images`, ["main", "secondary"]);
      deb = await buildDeb(`${work}/deb1`, epoch);
      await bed.up({ flavour: "base", netns: topo.host, machineId: MACHINE_ID });
    });
    if (!ok) throw new Error("set-up failed; the system tests cannot run");

    if (
      !await t.step(
        "apt-get install ./aos-unit_*.deb pulls its dependencies and starts no VM",
        async () => {
          await bed.cpIn(deb, "/tmp/");
          const started = performance.now();
          const r = await bed.exec([
            "apt-get",
            "install",
            "-y",
            "--no-install-recommends",
            `/tmp/${deb.split("/").pop()}`,
          ]);
          assert.equal(r.code, 0, r.stderr + r.stdout);
          console.log(
            `install: ${Math.round(performance.now() - started)} ms, package ${
              Math.round(Deno.statSync(deb).size / 1024 / 1024)
            } MiB`,
          );
          assert.match(
            r.stdout,
            /Setting up qemu-system-x86/,
            "dependencies came from the archive",
          );
          assert.match(await sh("id aos-unit"), /uid=\d+\(aos-unit\)/);
          assert.equal((await show("aos-unit.service", "ActiveState")).ActiveState, "inactive");
          assert.equal((await bed.exec(["aos-unit", "--version"])).stdout.trim().length > 0, true);
        },
      )
    ) throw new Error("cannot continue without this step");

    if (
      !await t.step(
        "systemctl start aos-unit returns only when both nodes are leased",
        async () => {
          await placeImages();
          const ms = await startUnit();
          console.log(`systemctl start aos-unit -> READY: ${ms} ms`);
          const { code, status: s } = await status();
          assert.equal(code, 0, JSON.stringify(s));
          assert.equal(s.nodes.find((n) => n.name === "main")?.address, "10.200.1.100");
          assert.match(
            s.nodes.find((n) => n.name === "secondary")?.address ?? "",
            /^10\.200\.1\.(1[3-9][0-9]|2[0-5][0-9]|12[89])$/,
          );
          assert.match(
            (await show("aos-unit.service", "StatusText")).StatusText!,
            /Running: main=10\.200\.1\.100 secondary=10\.200\.1\./,
          );
        },
      )
    ) throw new Error("cannot continue without this step");

    await t.step("units, slice and limits are as planned and enforced", async () => {
      const p = await show(
        "aos-node-main.service",
        "Slice",
        "MemoryMax",
        "CPUQuotaPerSecUSec",
        "Restart",
        "StartLimitBurst",
        "OnFailure",
        "DevicePolicy",
        "BindsTo",
        "User",
        "MainPID",
        "ControlGroup",
      );
      assert.equal(p.Slice, "aos-unit.slice");
      // 512 MiB + 256 MiB + 512/16 MiB + 256 MiB TCG translation cache
      assert.equal(p.MemoryMax, String((512 + 256 + 32 + 256) * 1024 * 1024));
      assert.equal(p.CPUQuotaPerSecUSec, "1s");
      assert.equal(p.Restart, "on-failure");
      assert.equal(p.StartLimitBurst, "3");
      assert.equal(p.OnFailure, "aos-unit-vm-failed@main.service");
      assert.equal(p.DevicePolicy, "closed");
      // StopPropagatedFrom= shows on the manager's side as PropagatesStopTo=.
      const manager = await show("aos-unit.service", "PropagatesStopTo");
      assert.match(manager.PropagatesStopTo ?? "", /aos-node-main\.service/);

      assert.equal(p.User, "aos-unit");
      assert.equal((await sh(`ps -o user= -p ${p.MainPID}`)).trim(), "aos-unit");
      const limit = (await sh(`cat /sys/fs/cgroup/memory${p.ControlGroup}/memory.limit_in_bytes`))
        .trim();
      assert.equal(limit, p.MemoryMax, "the kernel enforces MemoryMax");
      const quota = (await sh(`cat /sys/fs/cgroup/cpu${p.ControlGroup}/cpu.cfs_quota_us`)).trim();
      assert.equal(quota, "100000", "the kernel enforces CPUQuota=100%");
      const slice = await show("aos-unit.slice", "MemoryMax", "CPUQuotaPerSecUSec");
      assert.notEqual(slice.MemoryMax, "infinity", "the slice caps the total memory");
      assert.notEqual(
        slice.CPUQuotaPerSecUSec,
        "infinity",
        "and the total CPU (90% of the host's CPUs)",
      );
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
    });

    await t.step("getent hosts main.aos-unit works in the container through resolved", async () => {
      assert.match(await sh("getent hosts main.aos-unit"), /^10\.200\.1\.100\s+main\.aos-unit/);
      const sec = await leaseOf("secondary");
      assert.match(
        await sh("getent hosts secondary.aos-unit"),
        new RegExp(`^${sec!.replaceAll(".", "\\.")}\\s`),
      );
      assert.match(await sh("resolvectl status " + BRIDGE), /10\.200\.1\.1:5300/);
    });

    await t.step(
      "after systemd-resolved restarts (and forgets link DNS), names resolve again",
      async () => {
        await sh("systemctl restart systemd-resolved");
        await waitFor(
          "main.aos-unit resolves again",
          async () => {
            const r = await bed.exec(["getent", "hosts", "main.aos-unit"]);
            return r.code === 0 && r.stdout.startsWith("10.200.1.100") ? true : undefined;
          },
          10_000,
          200,
        );
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
      const leases = JSON.parse(await sh("cat /var/lib/aos-unit/leases.json")).leases;
      for (const n of s.nodes) assert.equal(leases[n.mac]?.ip, n.address);
    });

    await t.step(
      "a default-route change restarts nothing and guests reach the internet through the new uplink",
      async () => {
        const before = await show("aos-unit.service", "InvocationID");
        const pids = await Promise.all(
          ["main", "secondary"].map(async (n) =>
            (await show(`aos-node-${n}.service`, "MainPID")).MainPID
          ),
        );
        const c = await SerialConsole.connect(bed.path("/run/aos-unit/main.serial"));
        consoles.push(c);
        const http = async () =>
          (await c.probe(`aos-probe http ${URL_}`, /AOSTEST http url=\S+ (body=(\S+)|fail)/))[2];
        assert.equal(await http(), "uplink1");
        await topo.setDefault(1);
        await waitFor(
          "main's traffic through uplink2",
          async () => (await http()) === "uplink2" ? true : undefined,
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
        assert.deepEqual(
          await show("aos-unit.service", "InvocationID"),
          before,
          "aos-unit.service was not restarted",
        );
        const after = await Promise.all(
          ["main", "secondary"].map(async (n) =>
            (await show(`aos-node-${n}.service`, "MainPID")).MainPID
          ),
        );
        assert.deepEqual(after, pids, "no node rebooted");
        c.close();
        await topo.setDefault(0);
      },
    );

    await t.step(
      "killing a node's QEMU restarts that node alone and writes one forensic record",
      async () => {
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
        assert.equal(
          (await show("aos-node-main.service", "MainPID")).MainPID,
          mainPid,
          "main untouched",
        );
        const records = await waitFor("one forensic record", async () => {
          const r = await failures();
          return r.length >= 1 ? r : undefined;
        }, 10_000);
        assert.equal(records.length, 1);
        assert.equal(records[0]!.node, "secondary");
        assert.equal(records[0]!.result, "signal");
        assert.equal(records[0]!.exit_status, "KILL");
        assert.equal(records[0]!.final, false);
        assert.ok(records[0]!.journal.length > 0, "journal lines recorded");
        assert.ok(
          records[0]!.serial_tail.some((l) => l.includes("AOSTEST")),
          "serial tail recorded",
        );
      },
    );

    await t.step(
      "exceeding the start limit leaves that node failed and the others running",
      async () => {
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
        const { code } = await status();
        assert.equal(code, 1, "status reports the unit unhealthy");
      },
    );

    let overlays = "";
    await t.step(
      "systemctl restart keeps every node's address, overlay and UEFI variables",
      async () => {
        const secondary = await leaseOf("secondary");
        overlays = await sh(
          "stat -c '%n %i' /var/lib/aos-unit/nodes/*/overlay.qcow2 /var/lib/aos-unit/nodes/*/efivars.fd",
        );
        await sh("systemctl restart aos-unit");
        assert.equal(await leaseOf("secondary"), secondary);
        assert.equal(await leaseOf("main"), "10.200.1.100");
        assert.equal(
          await sh(
            "stat -c '%n %i' /var/lib/aos-unit/nodes/*/overlay.qcow2 /var/lib/aos-unit/nodes/*/efivars.fd",
          ),
          overlays,
        );
        assert.equal((await status()).code, 0);
      },
    );

    await t.step(
      "as the aos-unit user, polkit refuses units outside aos-unit's names",
      async () => {
        const denied = await bed.exec(["systemctl", "restart", "dbus.service"], {
          user: "aos-unit",
        });
        assert.notEqual(denied.code, 0);
        assert.match(
          denied.stderr,
          /Access denied|Interactive authentication required|not authorized/i,
        );
        const denied2 = await bed.exec(["systemctl", "stop", "systemd-journald.service"], {
          user: "aos-unit",
        });
        assert.notEqual(denied2.code, 0);
        const allowed = await bed.exec(["systemctl", "restart", "aos-unit-route-monitor.service"], {
          user: "aos-unit",
        });
        assert.equal(allowed.code, 0, allowed.stderr);
      },
    );

    await t.step(
      "systemctl stop aos-unit powers guests down gracefully and leaves nothing",
      async () => {
        const started = performance.now();
        await sh("systemctl stop aos-unit");
        console.log(`systemctl stop aos-unit: ${Math.round(performance.now() - started)} ms`);
        for (const n of ["main", "secondary"]) {
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
      "a bad config fails the service with exit 2, no restart loop, no leftovers",
      async () => {
        await bed.exec(["sh", "-c", "cat > /etc/aos-unit/unit_config.yaml"], {
          stdin: "unit:\n  node_configs:\n    - name: main\n      cpu: lots\n      mem: 1G\n",
        });
        const r = await bed.exec(["systemctl", "start", "aos-unit"]);
        assert.notEqual(r.code, 0);
        await new Promise((res) => setTimeout(res, 7000)); // longer than RestartSec=5s
        const u = await show("aos-unit.service", "ActiveState", "Result", "NRestarts");
        assert.equal(u.ActiveState, "failed");
        assert.equal(u.NRestarts, "0", "no restart loop");
        const journal = await sh("journalctl -u aos-unit.service -n 30 --no-pager");
        assert.match(
          journal,
          /unit_config\.yaml:4:\d+: cpu must be a positive integer, got "lots"/,
        );
        assert.match(journal, /status=2/);
        await noLeftovers();
        await sh("systemctl reset-failed aos-unit.service");
      },
    );

    await t.step(
      "an upgrade keeps edited conffiles, leases and overlays and restarts cleanly",
      async () => {
        await bed.exec(["sh", "-c", "cat > /etc/aos-unit/unit_config.yaml"], {
          stdin: UNIT_CONFIG,
        });
        await startUnit();
        const secondary = await leaseOf("secondary");
        const invocation = (await show("aos-unit.service", "InvocationID")).InvocationID;
        const deb2 = await buildDeb(`${work}/deb2`, epoch + 120);
        assert.notEqual(deb2.split("/").pop(), deb.split("/").pop());
        await bed.cpIn(deb2, "/tmp/");
        const r = await bed.exec(["apt-get", "install", "-y", `/tmp/${deb2.split("/").pop()}`]);
        assert.equal(r.code, 0, r.stderr + r.stdout);
        assert.equal(
          await sh("cat /etc/aos-unit/unit_config.yaml"),
          UNIT_CONFIG,
          "edited conffile kept",
        );
        const u = await show("aos-unit.service", "ActiveState", "InvocationID");
        assert.equal(u.ActiveState, "active");
        assert.notEqual(u.InvocationID, invocation, "restarted by the upgrade");
        assert.equal(await leaseOf("secondary"), secondary);
        assert.equal(
          await sh(
            "stat -c '%n %i' /var/lib/aos-unit/nodes/*/overlay.qcow2 /var/lib/aos-unit/nodes/*/efivars.fd",
          ),
          overlays,
        );
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
      assert.notEqual((await bed.exec(["systemctl", "cat", "aos-unit.service"])).code, 0);
    });

    await t.step(
      "powering off the container with the unit running completes promptly",
      async () => {
        await sh(`apt-get install -y /tmp/${deb.split("/").pop()} >/dev/null`);
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
});
