/** Tier-3 scenario "lifecycle": install, start, status, names, doctor, console, restart, stop, purge, poweroff. */

import assert from "node:assert/strict";
import { sharedBusyCpus } from "../../lib/load.ts";
import { ssh } from "../../lib/ssh.ts";
import { waitFor } from "../../lib/proc.ts";
import type { Status } from "../../../src/commands/status.ts";
import {
  BRIDGE,
  exposure,
  NODES,
  type Scenario,
  SECONDARY_MAC,
  type SystemBed,
  UNIT_CONFIG,
} from "../system_bed.ts";

/**
 * How many starts under load check that READY never runs ahead of `status`, and how many CPU
 * hogs make the load: one machine-wide load that the releases' loaded steps share when they
 * overlap. AOS_TEST_LOADED_STARTS and AOS_TEST_LOAD_CPUS raise them to hunt a race.
 */
const LOADED_STARTS = Number(Deno.env.get("AOS_TEST_LOADED_STARTS") ?? "2");
const LOAD_CPUS = Number(Deno.env.get("AOS_TEST_LOAD_CPUS") ?? "2");

/**
 * What `aos-unit status --json` says right after `systemctl start` returned, once, with no
 * retry: healthy, and the DHCP node at the address the raw facts hold (its record in
 * leases.json, the guest's own lease in its serial log, an answer to a TCP connect there).
 */
async function usableRightAfterStart(c: SystemBed): Promise<Status> {
  const { code, status: s } = await c.status();
  if (code !== 0 || !s.healthy) {
    const text = await c.bed.exec(["aos-unit", "status"]);
    throw new Error(`status exit ${code} right after start:\n${text.stdout}${text.stderr}
${await c.diagnosis()}`);
  }
  const leases = JSON.parse(await c.sh("cat /var/lib/aos-unit/dhcp/leases.json")).leases;
  const ip = s.nodes.find((n) => n.name === "secondary")?.address;
  assert.ok(ip, "status names the secondary's address");
  assert.equal(leases[SECONDARY_MAC]?.ip, ip, "the address is the recorded lease");
  const serialLog = await c.sh("cat /var/log/aos-unit/secondary-serial.log");
  const own = [...serialLog.matchAll(/AOSTEST lease ip=(\S+)/g)].at(-1)?.[1];
  assert.equal(own, ip, "the guest holds that lease");
  // The guest's SSH server accepts a connection at that address.
  const tcp = await c.bed.exec(["timeout", "3", "bash", "-c", `echo > /dev/tcp/${ip}/22`]);
  assert.equal(tcp.code, 0, `TCP to ${ip}:22: ${tcp.stderr}`);
  return s;
}

export const lifecycle: Scenario = {
  name: "lifecycle",
  summary: "install, start, status, names, doctor, console, restart, stop, purge, poweroff",
  start: "bed",
  async run(t, c) {
    const {
      suite,
      bed,
      deb,
      deb2,
      sh,
      show,
      status,
      leaseOf,
      boots,
      writeConfig,
      placeImages,
      doctorJson,
      startUnit,
      waitRunning,
      noLeftovers,
    } = c;
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
          const s = await usableRightAfterStart(c);
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

    await t.step(
      `right after each of ${LOADED_STARTS} starts with both CPUs busy, status is healthy at the recorded lease`,
      async () => {
        const load = await sharedBusyCpus(LOAD_CPUS);
        try {
          for (let i = 0; i < LOADED_STARTS; i++) {
            await sh("systemctl stop aos-unit");
            const ms = await startUnit();
            const s = await usableRightAfterStart(c);
            console.log(
              `${suite} loaded start ${i + 1}: READY in ${ms} ms, secondary at ${
                s.nodes.find((n) => n.name === "secondary")!.address
              }`,
            );
          }
        } finally {
          await load.stop();
        }
      },
    );

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
          `exposure (${suite}): ${Object.entries(scores).map(([u, s]) => `${u} ${s}`).join(", ")}`,
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
      "the Quick Start's last step: ssh root@main.aos-unit (OpenSSH, the password) runs a command",
      async () => {
        // Both nodes by name, as a user would: OpenSSH's client with the stock password.
        for (const node of NODES) {
          const r = await ssh(bed, `${node}.aos-unit`, "echo AOSSSH $(hostname) $((6*7))");
          assert.equal(r.code, 0, `ssh root@${node}.aos-unit: ${r.stderr}`);
          assert.match(r.stdout, new RegExp(`^AOSSSH ${node} 42$`, "m"));
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

    await t.step("systemctl restart keeps every guest running (a re-plan)", async () => {
      const before = await show("aos-unit.service", "InvocationID");
      const booted = await boots();
      const started = performance.now();
      await sh("systemctl restart aos-unit");
      console.log(`systemctl restart: ${Math.round(performance.now() - started)} ms`);
      assert.notDeepEqual(await show("aos-unit.service", "InvocationID"), before);
      await waitRunning();
      assert.deepEqual(await boots(), booted, "no guest booted");
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
        // Only root's empty nodes/ stays (the nodes' directories in it went with them).
        const runtime = await bed.exec(["find", "/run/aos-unit", "-mindepth", "1"]);
        assert.ok(
          runtime.code !== 0 || ["", "/run/aos-unit/nodes"].includes(runtime.stdout.trim()),
          `runtime files left: ${runtime.stdout}`,
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
  },
};
