/**
 * Tier 2: the stock-like test guests (tests/guest/README.md, "The stock variant") on
 * aos-unit's network in a namespace this test makes: main configures itself
 * statically at 10.0.0.100/24 with gateway and DNS 10.0.0.1 and never asks DHCP,
 * the secondary takes a lease and reaches main:8089 through its /etc/hosts, the
 * host reaches main by name and on 8089, both reach the internet through NAT.
 */

import assert from "node:assert/strict";
import { createRunner } from "../../src/host/runner.ts";
import { logger } from "../../src/log.ts";
import { checkDnsmasqConfig } from "../../src/net/sidecar_files.ts";
import type { Plan } from "../../src/plan/types.ts";
import { prepareFiles } from "../../src/vm/prepare.ts";
import { systemPowerdown } from "../../src/vm/qmp.ts";
import { buildGuests, ROOT } from "../lib/aos.ts";
import { NetBed } from "../lib/netbed.ts";
import { type Background, run } from "../lib/proc.ts";
import { SerialConsole } from "../lib/serial.ts";
import { INTERNET_IP } from "../lib/topology.ts";

// The shipped sample, smaller guests.
const UNIT_CONFIG = `unit:
  node_configs:
    - { name: main, cpu: 1, mem: 512M, ip: 10.0.0.100 }
    - { name: secondary, cpu: 1, mem: 512M }
`;
const RUNTIME_CONF = `DHCP_CIDR="10.0.0.0/24"\nENABLE_KVM="false"\n`;

Deno.test({
  name: "stock-like guests on aos-unit's network: a static main, a DHCP secondary",
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  const bed = await NetBed.open("stock", UNIT_CONFIG, RUNTIME_CONF);
  const { work, topo, unit } = bed;
  const consoles = new Map<string, SerialConsole>();
  const qemu = new Map<string, Background>();
  let plan: Plan | undefined;
  let dnsmasq: Background | undefined;
  const inHost = (argv: string[]) => run(topo.inNs(topo.host, argv));
  try {
    await t.step("the images are read: main's own network is in the plan", async () => {
      await buildGuests(`${work}/images`, ["main", "secondary"]);
      for (const name of ["main", "secondary"]) {
        await Deno.copyFile(
          `${work}/images/aos-vm-${name}-amd64-stock.qcow2`,
          `${unit.stateDir}/aos-vm-${name}-qemux86-64.qcow2`,
        );
      }
      assert.equal((await unit.cli("validate")).code, 0);
      const r = await unit.cli("startup", "--no-units");
      assert.equal(r.code, 0, r.stderr);
      plan = await unit.plan();
      const main = plan.nodes.find((n) => n.name === "main")!;
      assert.deepEqual(main.image.network?.address, { ip: "10.0.0.100", prefix: 24 });
      assert.equal(main.image.network?.gateway, "10.0.0.1");
      const secondary = plan.nodes.find((n) => n.name === "secondary")!;
      assert.equal(secondary.image.network?.dhcp, true);
      assert.deepEqual(secondary.image.network?.hosts, { main: "10.0.0.100" });
    });

    await t.step("main comes up static, the secondary leases and reaches main:8089", async () => {
      const runner = createRunner();
      await checkDnsmasqConfig(runner, plan!);
      await prepareFiles(runner, plan!, logger("test"));
      const argv = (plan!.dnsmasq.unit.properties.find(([n]) => n === "ExecStart")![2] as [
        string,
        string[],
        boolean,
      ][])[0]![1];
      dnsmasq = topo.procs.start(topo.inNs(topo.host, argv), `${work}/dnsmasq.log`);
      await Promise.all(plan!.nodes.map(async (node) => {
        Deno.mkdirSync(node.runDir, { recursive: true });
        qemu.set(
          node.name,
          topo.procs.start(topo.inNs(topo.host, node.qemu), `${work}/qemu-${node.name}.log`),
        );
        consoles.set(node.name, await SerialConsole.connect(node.serialSocket));
      }));
      const main = consoles.get("main")!;
      await main.expect(/^AOSTEST boot name=main count=1$/, 60_000, "main's boot");
      const m = await main.expect(
        /^AOSTEST static ip=(\S+) prefix=24 router=(\S+) dns=(\S+)$/,
        60_000,
      );
      assert.deepEqual([m[1], m[2], m[3]], ["10.0.0.100", "10.0.0.1", "10.0.0.1"]);
      const secondary = consoles.get("secondary")!;
      const lease = await secondary.expect(/^AOSTEST lease ip=(\S+) .*event=bound$/, 60_000);
      assert.match(lease[1]!, /^10\.0\.0\.(1[3-9][0-9]|2[0-5][0-9]|12[89])$/);
      await secondary.expect(
        /^AOSTEST main-reached ok ip=10\.0\.0\.100 body=aos-main_name=main$/,
        30_000,
        "the secondary reaching main:8089",
      );
    });

    await t.step("the host reaches main on 8089 and resolves main.aos-unit", async () => {
      const body = await inHost(["busybox", "wget", "-q", "-O", "-", "http://10.0.0.100:8089/"]);
      assert.equal(body.stdout.trim(), "aos-main name=main");
      const dns = await inHost([
        Deno.execPath(),
        "run",
        "--quiet",
        "--unstable-net",
        "-A",
        `${ROOT}/tests/lib/dns_probe.ts`,
        "10.0.0.1",
        "53",
        "main.aos-unit",
        "2000",
      ]);
      assert.equal(dns.stdout.trim(), "answer 10.0.0.100");
    });

    await t.step(
      "both reach the internet host through NAT, main from its static address",
      async () => {
        for (const name of ["main", "secondary"]) {
          const r = await consoles.get(name)!.probe(
            `aos-probe http http://${INTERNET_IP}/`,
            /AOSTEST http url=\S+ (body=(\S+)|fail)/,
          );
          assert.equal(r[2], "uplink1", `${name} reaches the internet host`);
        }
      },
    );

    await t.step("both power down on QMP system_powerdown; cleanup leaves nothing", async () => {
      await Promise.all(plan!.nodes.map(async (node) => {
        await systemPowerdown(node.qmpSocket);
        const status = await Promise.race([
          qemu.get(node.name)!.child.status,
          new Promise<undefined>((r) => setTimeout(() => r(undefined), 15_000)),
        ]);
        assert.ok(status, `${node.name} did not power off`);
      }));
      await topo.procs.stop(dnsmasq!);
      for (const node of plan!.nodes) Deno.removeSync(node.runDir, { recursive: true });
      const r = await unit.cli("cleanup");
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual([...Deno.readDirSync(unit.runtimeDir)].map((e) => e.name), []);
    });
  } finally {
    for (const c of consoles.values()) c.close();
    await bed.close();
  }
});
