/**
 * Tier 2: the network half of aos-unit with real components, in namespaces
 * this test creates - bridge, nftables, dnsmasq, the route monitor and three
 * QEMU guests (TCG; two x86_64, one aarch64) booted from AosCore-like test
 * disks with the planner's own command line. Two uplink namespaces hold the same "internet" address,
 * so a guest's HTTP reply shows which path its traffic took.
 */

import { preparationOf } from "../../src/plan/preparation.ts";
import assert from "node:assert/strict";
import { createRunner } from "../../src/host/runner.ts";
import { readLeaseState } from "../../src/host/leases.ts";
import type { NodePlan, Plan } from "../../src/plan/types.ts";
import { checkDnsmasqConfig, linkDocumentedPaths } from "../../src/net/sidecar_files.ts";
import { logger } from "../../src/log.ts";
import { prepareFiles } from "../../src/vm/prepare.ts";
import { systemPowerdown } from "../../src/vm/qmp.ts";
import { buildGuests } from "../lib/aos.ts";
import { NetBed } from "../lib/netbed.ts";
import { type Background, run, waitFor } from "../lib/proc.ts";
import { SerialConsole } from "../lib/serial.ts";
import { aosTableRules, INTERNET_IP, linksIn } from "../lib/topology.ts";

const UNIT_CONFIG = `unit:
  node_configs:
    - name: main
      cpu: 1
      mem: 256M
      ip: 10.200.1.100
    - name: secondary
      cpu: 1
      mem: 256M
      uefi: false
      image: aos-vm-secondary-amd64.qcow2
    - name: arm
      cpu: 1
      mem: 512M
      arch: arm64
`;
const RUNTIME_CONF = `ENABLE_KVM="false"\nROUTE_DEBOUNCE_MS="150"\n`;
const URL_ = `http://${INTERNET_IP}/`;

async function links(ns: string): Promise<string[]> {
  return (await linksIn(ns)).map((l) => l.ifname);
}

async function tableExists(ns: string): Promise<boolean> {
  return (await aosTableRules(ns)) >= 0;
}

Deno.test({
  name: "aos-unit networking with real guests, dnsmasq, nftables and the route monitor",
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  const bed = await NetBed.open("net", UNIT_CONFIG, RUNTIME_CONF);
  const { work, topo, unit } = bed;
  const consoles: SerialConsole[] = [];
  let plan: Plan | undefined;
  let dnsmasq: Background | undefined;
  let monitor: Background | undefined;
  const qemu = new Map<string, Background>();
  const serial = new Map<string, SerialConsole>();
  const ipOf = new Map<string, string>();

  const startDnsmasq = () => {
    const argv = (plan!.dnsmasq.unit.properties.find(([n]) =>
      n === "ExecStart"
    )![2] as [string, string[], boolean][])[0]![1];
    return topo.procs.start(topo.inNs(topo.host, argv), `${work}/dnsmasq.log`);
  };
  const probe = async (node: string, cmd: string, re: RegExp) =>
    await serial.get(node)!.probe(cmd, re);
  const http = async (node: string) =>
    (await probe(node, `aos-probe http ${URL_}`, /AOSTEST http url=\S+ (body=(\S+)|fail)/))[2];
  const monitorLog = () =>
    Deno.readTextFileSync(`${work}/monitor.log`);
  const dns = async (node: string, name: string) =>
    (await probe(node, `aos-probe dns ${name}`, /AOSTEST dns name=\S+ (ip=(\S+)|fail)/))[2];

  try {
    await t.step("test guests are built (or reused from the cache)", async () => {
      const images = `${work}/images`;
      await buildGuests(images, ["main", "secondary"]);
      await Deno.copyFile(
        `${images}/aos-vm-main-amd64-uefi.qcow2`,
        `${unit.stateDir}/aos-vm-main-amd64-uefi.qcow2`,
      );
      await Deno.copyFile(
        `${images}/aos-vm-secondary-amd64.qcow2`,
        `${unit.stateDir}/aos-vm-secondary-amd64.qcow2`,
      );
      // An aarch64 UEFI node (AAVMF, virt): the planner's aarch64 argv under TCG.
      await buildGuests(images, ["arm"], "arm64");
      await Deno.copyFile(
        `${images}/aos-vm-arm-arm64-uefi.qcow2`,
        `${unit.stateDir}/aos-vm-arm-arm64-uefi.qcow2`,
      );
    });

    await t.step(
      "startup on a clean namespace creates bridge, taps, table and network.conf",
      async () => {
        const r = await unit.cli("startup", "--no-units");
        assert.equal(r.code, 0, r.stderr);
        plan = await unit.plan();
        const names = await links(topo.host);
        assert.ok(names.includes(plan.network.bridge), `bridge in ${names}`);
        for (const n of plan.nodes) {
          assert.ok(names.includes(n.tap), `tap ${n.tap}`);
        }
        assert.ok(await tableExists(topo.host));
        assert.match(
          Deno.readTextFileSync(`${unit.runtimeDir}/network.conf`),
          new RegExp(`BRIDGE_NAME=${plan.network.bridge}`),
        );
        const addr = await bed.ipQuiet("-br", "addr", "show", plan.network.bridge);
        assert.match(addr.stdout, /10\.200\.1\.1\/24/);
        const mac = await bed.ipQuiet("-br", "link", "show", plan.network.bridge);
        assert.match(mac.stdout, new RegExp(plan.network.bridgeMac));
      },
    );

    await t.step("startup again, and after a crash left half the state, converges", async () => {
      const again = await unit.cli("startup", "--no-units");
      assert.equal(again.code, 0, again.stderr);
      await run(["ip", "netns", "exec", topo.host, "nft", "delete", "table", "inet", "aos_unit"]);
      await bed.ipQuiet("link", "delete", plan!.nodes[1]!.tap);
      await bed.ipQuiet("addr", "flush", "dev", plan!.network.bridge);
      await bed.ipQuiet("addr", "add", "10.99.0.1/24", "dev", plan!.network.bridge);
      const r = await unit.cli("startup", "--no-units");
      assert.equal(r.code, 0, r.stderr);
      assert.ok(await tableExists(topo.host));
      assert.ok((await links(topo.host)).includes(plan!.nodes[1]!.tap));
      const addr = await bed.ipQuiet("-br", "addr", "show", plan!.network.bridge);
      assert.match(addr.stdout, /10\.200\.1\.1\/24/);
      assert.doesNotMatch(addr.stdout, /10\.99\.0\.1/);
    });

    await t.step(
      "the sidecar config passes dnsmasq --test; disks are overlays on untouched bases",
      async () => {
        const runner = createRunner();
        // What the broker and the manager do before the units start (systemd makes the
        // nodes' runtime directories for their units; here the test does).
        await checkDnsmasqConfig(runner, plan!);
        const before = new Map(
          plan!.nodes.map((n) => [n.name, Deno.statSync(n.image.path).mtime?.getTime()]),
        );
        await prepareFiles(runner, preparationOf(plan!), logger("test"));
        for (const node of plan!.nodes) {
          Deno.mkdirSync(node.runDir, { recursive: true });
        }
        await linkDocumentedPaths(runner, plan!);
        for (const node of plan!.nodes) {
          const info = JSON.parse(
            (await run(["qemu-img", "info", "--output=json", node.overlay])).stdout,
          );
          assert.equal(info["backing-filename"], node.image.path);
          assert.equal(Deno.statSync(node.image.path).mtime?.getTime(), before.get(node.name));
        }
        assert.equal(Deno.readLinkSync(plan!.dnsmasq.leaseLink), plan!.dnsmasq.leaseFile);
        assert.equal(Deno.readLinkSync(plan!.nodes[0]!.serialLink), plan!.nodes[0]!.serialSocket);
      },
    );

    await t.step(
      "dnsmasq, the monitor and three guests (one aarch64) start concurrently; all get their addresses",
      async () => {
        dnsmasq = startDnsmasq();
        monitor = topo.procs.start(unit.argv(["monitor"]), `${work}/monitor.log`);
        await Promise.all(plan!.nodes.map(async (node: NodePlan) => {
          qemu.set(
            node.name,
            topo.procs.start(topo.inNs(topo.host, node.qemu), `${work}/qemu-${node.name}.log`),
          );
          const c = await SerialConsole.connect(node.serialSocket);
          consoles.push(c);
          serial.set(node.name, c);
        }));
        await Promise.all(plan!.nodes.map(async (node) => {
          const m = await serial.get(node.name)!.expect(
            /AOSTEST lease ip=(\S+) .* hostname=(\S*) event=bound/,
            60_000,
            `${node.name} lease`,
          );
          ipOf.set(node.name, m[1]!);
        }));
        assert.equal(ipOf.get("main"), "10.200.1.100", "the static node gets its reservation");
        const dyn = ipOf.get("secondary")!;
        const last = Number(dyn.split(".")[3]);
        assert.ok(
          dyn.startsWith("10.200.1.") && last >= 128 && last <= 254,
          `dynamic address ${dyn} is in the pool`,
        );
        const leases = await waitFor("lease-hook records", () => {
          const s = readLeaseState(plan!.leaseState).leases;
          return Object.keys(s).length === plan!.nodes.length ? s : undefined;
        }, 10_000);
        assert.equal(leases[plan!.nodes[0]!.mac]?.ip, "10.200.1.100");
        assert.equal(leases[plan!.nodes[1]!.mac]?.ip, dyn);
        assert.equal(leases[plan!.nodes[1]!.mac]?.hostname, "secondary");
      },
    );

    await t.step(
      "the aarch64 node resolves a peer by name and reaches the internet host through NAT",
      async () => {
        const arm = plan!.nodes.find((n) =>
          n.name === "arm"
        )!;
        assert.equal(arm.arch, "aarch64");
        assert.ok(arm.qemu.includes("virt") && arm.efiVars !== undefined, "virt with UEFI vars");
        assert.equal(await dns("arm", "main.aos-unit"), "10.200.1.100");
        assert.equal(await dns("arm", "secondary"), ipOf.get("secondary"));
        assert.equal(await http("arm"), "uplink1");
      },
    );

    await t.step(
      "guests resolve each other by name.aos-unit and by bare name through port 53",
      async () => {
        const sec = ipOf.get("secondary")!;
        assert.equal(
          await dns("main", "secondary.aos-unit"),
          sec,
        );
        assert.equal(
          await dns("main", "secondary"),
          sec,
        );
        assert.equal(
          await dns("secondary", "main.aos-unit"),
          "10.200.1.100",
        );
        assert.equal(
          await dns("secondary", "main"),
          "10.200.1.100",
        );
        // The queries went to port 53 and were redirected: the prerouting counters moved.
        const chain = await run([
          "ip",
          "netns",
          "exec",
          topo.host,
          "nft",
          "list",
          "chain",
          "inet",
          "aos_unit",
          "prerouting",
        ]);
        assert.match(chain.stdout, /udp dport 53 counter packets [1-9]/);
      },
    );

    await t.step(
      "the host resolves main.aos-unit through the sidecar (port 53 on the bridge address)",
      async () => {
        const r = await run([
          "ip",
          "netns",
          "exec",
          topo.host,
          "busybox",
          "nslookup",
          "main.aos-unit",
          plan!.network.bridgeIp,
        ]);
        assert.match(r.stdout, /Address:\s*10\.200\.1\.100/, r.stdout + r.stderr);
      },
    );

    await t.step("both guests reach the internet address through uplink 1", async () => {
      assert.equal(await http("main"), "uplink1");
      assert.equal(await http("secondary"), "uplink1");
    });

    await t.step(
      "the default route moves to uplink 2 and new flows go through uplink 2",
      async () => {
        const moved = performance.now();
        await topo.setDefault(1);
        const ms = await waitFor(
          "traffic through uplink2",
          async () =>
            (await http("main")) === "uplink2" ? Math.round(performance.now() - moved) : undefined,
          10_000,
          50,
        );
        console.log(`route change -> first reply through uplink2: ${ms} ms`);
        assert.equal(await http("secondary"), "uplink2");
        // Masquerading by source subnet needs no rule change: new flows move at once. The
        // monitor still records the handover (set of uplinks, stale NAT flows dropped).
        const logged = await waitFor(
          "the monitor's handover record",
          () => /Uplink handover: uplink1 -> uplink2 in (\d+) ms/.exec(monitorLog())?.[1],
          5000,
        );
        console.log(`monitor handover record: ${logged} ms after the first route event`);
      },
    );

    await t.step(
      "uplink 1's link goes down (no route event) and traffic continues over the backup",
      async () => {
        await topo.setDefault(0, 100);
        await bed.ipQuiet("route", "del", "default", "via", topo.uplinks[1].gateway);
        await bed.ipQuiet(
          "route",
          "add",
          "default",
          "via",
          topo.uplinks[1].gateway,
          "dev",
          "uplink2",
          "metric",
          "200",
        );
        await waitFor(
          "traffic back on uplink1",
          async () => (await http("main")) === "uplink1" ? true : undefined,
          10_000,
          100,
        );
        await waitFor(
          "the monitor to see both uplinks",
          () => /-> uplink1, uplink2 in \d+ ms/.test(monitorLog()) || undefined,
          5000,
        );
        await bed.ipQuiet("link", "set", "uplink1", "down");
        await waitFor(
          "traffic on uplink2 after uplink1 went down",
          async () => (await http("main")) === "uplink2" ? true : undefined,
          10_000,
          100,
        );
        assert.equal(await http("secondary"), "uplink2");
        // The link event (there is no route event) leads to a handover record.
        await waitFor(
          "the monitor's record of the link going down",
          () => /uplink1, uplink2 -> uplink2 in \d+ ms/.test(monitorLog()) || undefined,
          5000,
        );
      },
    );

    await t.step(
      "an IPv6 default route (a router advertisement) never opens the fence to its interface",
      async () => {
        const ns = ["ip", "-n", topo.host];
        await run([...ns, "link", "add", "ra0", "type", "veth", "peer", "name", "ra1"]);
        try {
          await run([...ns, "link", "set", "ra0", "up"]);
          await run([...ns, "link", "set", "ra1", "up"]);
          await run([...ns, "-6", "addr", "add", "2001:db8:6::2/64", "dev", "ra0", "nodad"]);
          const added = await run([
            ...ns,
            "-6",
            "route",
            "add",
            "default",
            "via",
            "2001:db8:6::1",
            "dev",
            "ra0",
          ]);
          assert.equal(added.code, 0, `the IPv6 default route: ${added.stderr}`);
          // Longer than the debounce and the immediate admit of an IPv4 default.
          await new Promise((r) => setTimeout(r, 1500));
          const set = await run([
            "ip",
            "netns",
            "exec",
            topo.host,
            "nft",
            "list",
            "set",
            "inet",
            "aos_unit",
            "uplinks",
          ]);
          assert.match(set.stdout, /uplink2/);
          assert.doesNotMatch(set.stdout, /ra0/, set.stdout);
        } finally {
          await run([...ns, "link", "del", "ra0"]);
        }
      },
    );

    await t.step(
      "the table deleted by someone else is restored, and DNS through port 53 works again",
      async () => {
        const want = await aosTableRules(topo.host);
        const deleted = performance.now();
        await run(["ip", "netns", "exec", topo.host, "nft", "delete", "table", "inet", "aos_unit"]);
        const ms = await waitFor(
          "table restored",
          async () =>
            (await aosTableRules(topo.host)) === want
              ? Math.round(performance.now() - deleted)
              : undefined,
          10_000,
          20,
        );
        console.log(`table deleted -> restored: ${ms} ms`);
        await waitFor(
          "the monitor's restore record",
          () => /was deleted by another program; restored/.test(monitorLog()) || undefined,
          5000,
        );

        assert.equal(
          await dns("main", "secondary.aos-unit"),
          ipOf.get("secondary"),
        );
      },
    );

    await t.step("a restart of dnsmasq keeps every address", async () => {
      await topo.procs.stop(dnsmasq!);
      dnsmasq = startDnsmasq();
      await bed.udpListener(plan!.network.dnsPort, "dnsmasq listening");
      for (const node of ["main", "secondary"]) {
        const c = serial.get(node)!;
        c.skip();
        await c.send("kill -USR1 $(pidof udhcpc)");
        const m = await c.expect(
          /AOSTEST lease ip=(\S+) .* event=(renew|bound)/,
          20_000,
          `${node} renewal`,
        );
        assert.equal(m[1], ipOf.get(node), `${node} keeps its address`);
      }
      const leases = readLeaseState(plan!.leaseState).leases;
      assert.equal(leases[plan!.nodes[1]!.mac]?.ip, ipOf.get("secondary"));
      assert.equal(
        await dns("main", "secondary"),
        ipOf.get("secondary"),
      );
    });

    await t.step("guests power down on QMP system_powerdown", async () => {
      await Promise.all(plan!.nodes.map(async (node) => {
        const started = performance.now();
        await systemPowerdown(node.qmpSocket);
        const status = await Promise.race([
          qemu.get(node.name)!.child.status,
          new Promise<undefined>((r) => setTimeout(() => r(undefined), 15_000)),
        ]);
        assert.ok(status, `${node.name} did not power off`);
        assert.equal(status.code, 0);
        console.log(
          `${node.name}: powerdown -> QEMU exit ${Math.round(performance.now() - started)} ms`,
        );
      }));
    });

    await t.step(
      "cleanup leaves no link, table, file or process; a second cleanup succeeds",
      async () => {
        const status = await topo.procs.stop(monitor!);
        assert.equal(status.code, 0, "the monitor exits 0 on SIGTERM");
        await topo.procs.stop(dnsmasq!);
        // systemd removes a node unit's runtime directory when it stops; here the test made them.
        for (const node of plan!.nodes) Deno.removeSync(node.runDir, { recursive: true });
        // Another unit's tap, on no bridge (as after a crash): the same prefix, not ours.
        const foreign = "aostapf0e1c2";
        const ip = (...args: string[]) => run(["ip", "-n", topo.host, ...args]);
        assert.equal((await ip("tuntap", "add", "dev", foreign, "mode", "tap")).code, 0);
        await ip("link", "set", foreign, "alias", "aos-unit@other tap");
        const r = await unit.cli("cleanup");
        assert.equal(r.code, 0, r.stderr);
        const left = (await links(topo.host)).filter((l) =>
          l.startsWith("aosbr") || l.startsWith("aostap")
        );
        assert.deepEqual(left, [foreign], "only another unit's tap is left");
        assert.equal((await ip("link", "delete", foreign)).code, 0);
        assert.equal(await tableExists(topo.host), false);
        // Only root's nodes/ stays, where systemd makes (and removes) the nodes' directories;
        // here the test made them, so it removes them as systemd would when a node stops.
        const files = [...Deno.readDirSync(unit.runtimeDir)].map((e) => e.name);
        assert.deepEqual(files, ["nodes"]);
        await Deno.remove(`${unit.runtimeDir}/nodes`, { recursive: true });
        // Zombies waiting for this machine's PID 1 to reap them hold nothing: skip them. A
        // lease-hook dnsmasq started just before it stopped may still be finishing: wait a bit.
        const live = async () =>
          (await run(["ip", "netns", "pids", topo.host])).stdout.split("\n").filter((pid) => {
            try {
              return pid !== "" &&
                !/^\d+ \(.*\) Z/.test(Deno.readTextFileSync(`/proc/${pid}/stat`));
            } catch {
              return false;
            }
          });
        const leftPids = await waitFor("no process in the host namespace", async () => {
          const pids = await live();
          return pids.length === 0 ? pids : undefined;
        }, 5000).catch(async () => await live());
        const what = leftPids.map((pid) => {
          try {
            return `${pid}: ${Deno.readTextFileSync(`/proc/${pid}/cmdline`).replaceAll("\0", " ")}`;
          } catch {
            return pid;
          }
        });
        assert.deepEqual(what, [], "no process left in the host namespace");

        const again = await unit.cli("cleanup");
        assert.equal(again.code, 0, again.stderr);
        assert.match(again.stderr, /Nothing to clean up/);
        // Persistent state stays: leases and overlays survive a stop.
        assert.ok(Deno.statSync(plan!.dnsmasq.leaseFile).isFile);
      },
    );
  } finally {
    for (const c of consoles) {
      c.close();
    }
    await bed.close();
  }
});
