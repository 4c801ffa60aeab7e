/**
 * Tier 2: `aos-unit doctor` in a namespace this test makes, each host problem
 * created for real, and seen with its line and its fix. (The checks that need
 * a real systemd - resolved, polkit, KVM, the emulator - are in tier 3.)
 */

import assert from "node:assert/strict";
import type { CheckResult } from "../../src/commands/_doctor_checks.ts";
import { NetBed } from "../lib/netbed.ts";
import { MAIN } from "../lib/aos.ts";
import { run } from "../lib/proc.ts";

const UNIT_CONFIG = `unit:
  node_configs:
    - { name: main, cpu: 1, mem: 256M, ip: 10.200.1.100, uefi: false }
`;

Deno.test({
  name: "aos-unit doctor names each host problem with its fix",
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  const bed = await NetBed.open("doctor", UNIT_CONFIG, `ENABLE_KVM="false"\n`);
  const { work, topo, unit } = bed;
  let stopListener = () => Promise.resolve();
  try {
    const bridge = (await unit.plan()).network.bridge;
    // The service user QEMU would run as (the tests run everything else as root).
    const doctor = async (user = "nobody", wrap: string[] = []) => {
      // Not through the dev wrapper: it pins AOS_UNIT_SERVICE_USER to root.
      const r = await run(
        [
          ...wrap,
          "ip",
          "netns",
          "exec",
          topo.host,
          Deno.execPath(),
          "run",
          "--quiet",
          "--cached-only",
          "-A",
          "--unstable-net",
          MAIN,
          "doctor",
          "--json",
        ],
        { env: { ...unit.env(), AOS_UNIT_SERVICE_USER: user } },
      );
      const parsed = JSON.parse(r.stdout) as { canStart: boolean; checks: CheckResult[] };
      const check = (id: string) => {
        const c = parsed.checks.find((x) => x.id === id);
        assert.ok(c, `no check ${id} in ${r.stdout}`);
        return c;
      };
      return { code: r.code, ...parsed, check };
    };

    await t.step("images missing: fail, with the copy and chown to do", async () => {
      const d = await doctor();
      assert.equal(d.code, 1);
      assert.equal(d.canStart, false);
      const c = d.check("images");
      assert.equal(c.status, "fail");
      assert.match(c.detail, /No image for node "main"/);
      assert.match(c.fix!, /^cp IMAGE\.qcow2 .*\/state\/ && chown aos-unit:aos-unit /);
    });

    await t.step(
      "a file QEMU opens, left to root: fail, naming the file and the chown",
      async () => {
        await Deno.writeFile(`${unit.stateDir}/aos-vm-main-amd64.qcow2`, new Uint8Array(512));
        await Deno.chmod(`${unit.stateDir}/aos-vm-main-amd64.qcow2`, 0o644);
        await Deno.writeTextFile(`${unit.logsDir}/main-serial.log`, "");
        await Deno.chmod(`${unit.logsDir}/main-serial.log`, 0o600);
        // nobody must be able to reach the directories themselves.
        for (const dir of [unit.dir, work, unit.stateDir, unit.logsDir]) {
          await Deno.chmod(dir, 0o755);
        }
        const c = (await doctor()).check("node-files");
        assert.equal(c.status, "fail");
        assert.match(
          c.detail,
          /QEMU \(user aos-node-NAME, group nobody\) cannot write the serial log .*main-serial\.log/,
        );
        assert.match(c.fix!, /chown nobody:nobody .*main-serial\.log/);
        await Deno.chmod(`${unit.logsDir}/main-serial.log`, 0o666);
        assert.equal((await doctor()).check("node-files").status, "ok");
        assert.equal((await doctor()).check("images").status, "ok");
      },
    );

    await t.step("IPv4 forwarding off (a fresh namespace): warn, with the sysctl", async () => {
      await run(["ip", "netns", "exec", topo.host, "sysctl", "-qw", "net.ipv4.ip_forward=0"]);
      const c = (await doctor()).check("ip_forward");
      assert.equal(c.status, "warn");
      assert.match(c.fix!, /sysctl --system/);
      await run(["ip", "netns", "exec", topo.host, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
      assert.equal((await doctor()).check("ip_forward").status, "ok");
    });

    await t.step("a subnet that overlaps a host route: fail, pointing at DHCP_CIDR", async () => {
      await bed.ipQuiet("route", "add", "10.200.0.0/16", "via", topo.uplinks[0].gateway);
      const c = (await doctor()).check("subnet");
      assert.equal(c.status, "fail");
      assert.match(c.detail, /overlaps the host's route 10\.200\.0\.0\/16 via uplink1/);
      assert.match(c.fix!, /DHCP_CIDR=/);
      await bed.ipQuiet("route", "del", "10.200.0.0/16");
      assert.equal((await doctor()).check("subnet").status, "ok");
    });

    await t.step(
      "the bridge name taken by a foreign link: fail, with the ip link delete",
      async () => {
        await bed.ipQuiet("link", "add", bridge, "type", "veth", "peer", "name", "x0");
        const c = (await doctor()).check("bridge");
        assert.equal(c.status, "fail");
        assert.match(c.detail, /not created by aos-unit/);
        assert.equal(c.fix, `ip link delete ${bridge}`);
        await bed.ipQuiet("link", "delete", bridge);
        assert.equal((await doctor()).check("bridge").status, "ok");
      },
    );

    await t.step("the DNS port taken: fail, with how to find the program", async () => {
      stopListener = await bed.occupyUdp(5300);
      const c = (await doctor()).check("dns-port");
      assert.equal(c.status, "fail");
      assert.match(c.detail, /Cannot use DNS port 5300/);
      assert.match(c.fix!, /ss -lunpt 'sport = :5300'/);
      await stopListener();
      assert.equal((await doctor()).check("dns-port").status, "ok");
    });

    await t.step(
      "another table dropping forwarded packets (Docker-like): warn, with the rules",
      async () => {
        await run([
          "ip",
          "netns",
          "exec",
          topo.host,
          "nft",
          "add table ip filter; add chain ip filter FORWARD { type filter hook forward priority 0; policy drop; }",
        ]);
        const c = (await doctor()).checks.find((x) => x.id === "firewall" && x.status === "warn");
        assert.ok(c, "a firewall warning");
        assert.match(c.detail, /Chain ip filter FORWARD drops forwarded packets by default/);
        assert.match(c.fix!, /iptables -I DOCKER-USER -i aosbr/);
        await run(["ip", "netns", "exec", topo.host, "nft", "delete", "table", "ip", "filter"]);
        assert.equal((await doctor()).check("firewall").status, "ok");
      },
    );

    await t.step("no system bus, no resolved, no polkit rule here: each named", async () => {
      const d = await doctor();
      assert.equal(d.check("bus").status, "fail");
      assert.equal(d.check("resolved").status, "warn");
      assert.match(d.check("resolved").fix!, /systemctl enable --now systemd-resolved/);
      assert.equal(d.check("cgroups").status, "ok", "this kernel has cpu and memory");
    });

    await t.step(
      "the memory controller disabled (as cgroup_disable=memory does): warn",
      async () => {
        // The kernel's own view, replaced in a private mount namespace that ends with doctor.
        const fake = `${work}/cgroups`;
        await Deno.writeTextFile(
          fake,
          "#subsys_name\thierarchy\tnum_cgroups\tenabled\n" +
            "cpuset\t0\t1\t1\ncpu\t0\t1\t1\nio\t0\t1\t1\nmemory\t0\t1\t0\npids\t0\t1\t1\n",
        );
        const c = (await doctor("nobody", [
          "unshare",
          "-m",
          "--propagation",
          "private",
          "sh",
          "-c",
          'mount --bind "$0" /proc/cgroups && exec "$@"',
          fake,
        ])).check("cgroups");
        assert.equal(c.status, "warn");
        assert.match(
          c.detail,
          /cgroup controllers missing: memory \(CPUQuota=\/MemoryMax= are not enforced\)/,
        );
        assert.match(c.fix!, /cgroup_enable=memory/);
        assert.equal(
          (await doctor()).check("cgroups").status,
          "ok",
          "the host's view is untouched",
        );
      },
    );
  } finally {
    await stopListener();
    await bed.close();
  }
});
