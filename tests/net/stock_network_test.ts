/**
 * Tier 2: the stock-like test guests (tests/guest/README.md, "The stock variant") on
 * aos-unit's network in a namespace this test makes: main configures itself
 * statically at 10.0.0.100/24 with gateway and DNS 10.0.0.1 and never asks DHCP,
 * the secondary takes a lease and reaches main:8089 through its /etc/hosts, the
 * host reaches main by name and on 8089, both reach the internet through NAT.
 */

import { preparationOf } from "../../src/plan/preparation.ts";
import assert from "node:assert/strict";
import { createRunner } from "../../src/host/runner.ts";
import { logger } from "../../src/log.ts";
import { checkDnsmasqConfig } from "../../src/net/sidecar_files.ts";
import type { Plan } from "../../src/plan/types.ts";
import { prepareFiles } from "../../src/vm/prepare.ts";
import { systemPowerdown } from "../../src/vm/qmp.ts";
import { buildGuests, ROOT } from "../lib/aos.ts";
import { NetBed } from "../lib/netbed.ts";
import { type Background, run, waitFor } from "../lib/proc.ts";
import { SerialConsole } from "../lib/serial.ts";
import { snapshotSteps } from "../lib/snapshot_steps.ts";
import { runningStateSteps } from "../lib/running_state_steps.ts";
import { INTERNET_IP } from "../lib/topology.ts";

// The shipped sample, smaller guests.
const UNIT_CONFIG = `unit:
  node_configs:
    - { name: main, cpu: 1, mem: 512M, ip: 10.0.0.100, forward: [{ host: 18089, port: 8089 }] }
    - { name: secondary, cpu: 1, mem: 512M }
`;
// GUEST_FENCE=strict: the internet only (no uplink LAN, no host service but DHCP and DNS).
const RUNTIME_CONF = `DHCP_CIDR="10.0.0.0/24"\nENABLE_KVM="false"\nGUEST_FENCE="strict"\n`;

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
  let monitor: Background | undefined;
  const inHost = (argv: string[]) => run(topo.inNs(topo.host, argv));
  // QEMU for every node, as the node units run it, each with its serial console.
  const boot = async (extra: string[] = []) => {
    await Promise.all(plan!.nodes.map(async (node) => {
      Deno.mkdirSync(node.runDir, { recursive: true });
      qemu.set(
        node.name,
        topo.procs.start(
          topo.inNs(topo.host, [...node.qemu, ...extra]),
          `${work}/qemu-${node.name}.log`,
        ),
      );
      consoles.get(node.name)?.close();
      consoles.set(node.name, await SerialConsole.connect(node.serialSocket));
    }));
  };
  const powerOff = async () => {
    await Promise.all(plan!.nodes.map(async (node) => {
      await systemPowerdown(node.qmpSocket);
      const status = await Promise.race([
        qemu.get(node.name)!.child.status,
        new Promise<undefined>((r) => setTimeout(() => r(undefined), 15_000)),
      ]);
      assert.ok(status, `${node.name} did not power off`);
      await topo.procs.stop(qemu.get(node.name)!);
      Deno.removeSync(node.runDir, { recursive: true });
    }));
  };
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
      await prepareFiles(runner, preparationOf(plan!), logger("test"));
      const argv = (plan!.dnsmasq.unit.properties.find(([n]) => n === "ExecStart")![2] as [
        string,
        string[],
        boolean,
      ][])[0]![1];
      dnsmasq = topo.procs.start(topo.inNs(topo.host, argv), `${work}/dnsmasq.log`);
      // The route monitor keeps @uplinks (NAT and forwards) on the default route.
      monitor = topo.procs.start(unit.argv(["monitor"]), `${work}/monitor.log`);
      await boot();
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

    await t.step(
      "GUEST_FENCE=strict: no uplink LAN, no host service; the internet still",
      async () => {
        // A host service that answers (a 404 would read as "fail" and prove nothing).
        const www = `${work}/www-host`;
        Deno.mkdirSync(www, { recursive: true });
        Deno.writeTextFileSync(`${www}/index.html`, "host-service\n");
        const service = topo.procs.start(
          topo.inNs(topo.host, ["busybox", "httpd", "-f", "-p", "10.0.0.1:8080", "-h", www]),
          `${work}/host-httpd.log`,
        );
        try {
          await waitFor("the host service", async () => {
            const r = await inHost(["busybox", "wget", "-q", "-O", "-", "http://10.0.0.1:8080/"]);
            return r.stdout.trim() === "host-service" ? true : undefined;
          }, 10_000);
          for (const name of ["main", "secondary"]) {
            const c = consoles.get(name)!;
            const lan = await c.probe(
              `aos-probe ping ${topo.uplinks[0].gateway}`,
              /AOSTEST ping ip=\S+ (ok|fail)/,
            );
            assert.equal(lan[1], "fail", `${name} reached the uplink's LAN`);
            const host = await c.probe(
              "aos-probe http http://10.0.0.1:8080/",
              /AOSTEST http url=\S+ (body=(\S*)|fail)/,
            );
            assert.equal(host[1], "fail", `${name} reached a host service`);
            const out = await c.probe(
              `aos-probe http http://${INTERNET_IP}/`,
              /AOSTEST http url=\S+ (body=(\S+)|fail)/,
            );
            assert.equal(out[2], "uplink1");
          }
        } finally {
          await topo.procs.stop(service);
        }
      },
    );

    await t.step(
      "a forwarded host port reaches main:8089 from the uplink side; nothing else gets in",
      async () => {
        const up = topo.uplinks[0];
        const fromUplink = (url: string) =>
          run(topo.inNs(up.ns, ["timeout", "5", "busybox", "wget", "-q", "-O", "-", url]));
        const body = await fromUplink(`http://${up.hostIp}:18089/`);
        assert.equal(body.stdout.trim(), "aos-main name=main", body.stderr);
        // Not forwarded: another host port, and main's own address routed to directly.
        assert.notEqual((await fromUplink(`http://${up.hostIp}:18090/`)).code, 0);
        await run(["ip", "-n", up.ns, "route", "add", "10.0.0.0/24", "via", up.hostIp]);
        try {
          assert.notEqual((await fromUplink("http://10.0.0.100:8089/")).code, 0);
        } finally {
          await run(["ip", "-n", up.ns, "route", "del", "10.0.0.0/24"]);
        }
        // The forward follows the default route to the other uplink.
        await topo.setDefault(1);
        try {
          const other = topo.uplinks[1];
          await waitFor(
            "the forward on uplink 2",
            async () => {
              const r = await run(
                topo.inNs(other.ns, [
                  "timeout",
                  "5",
                  "busybox",
                  "wget",
                  "-q",
                  "-O",
                  "-",
                  `http://${other.hostIp}:18089/`,
                ]),
              );
              return r.stdout.trim() === "aos-main name=main" ? true : undefined;
            },
            20_000,
            500,
          );
        } finally {
          await topo.setDefault(0);
        }
      },
    );

    const kill = async () => {
      for (const q of qemu.values()) q.child.kill("SIGKILL");
      await Promise.all([...qemu.values()].map((q) => topo.procs.stop(q)));
    };
    await runningStateSteps(t, { unit, work, consoles, boot, kill, plan: () => plan! });
    await snapshotSteps(t, { unit, work, consoles, boot, powerOff, plan: () => plan! });

    await t.step("both power down on QMP system_powerdown; cleanup leaves nothing", async () => {
      await powerOff();
      await topo.procs.stop(dnsmasq!);
      await topo.procs.stop(monitor!);
      const r = await unit.cli("cleanup");
      assert.equal(r.code, 0, r.stderr);
      // Only root's nodes/ stays, where systemd makes the nodes' directories (see host/runtime_dir.ts).
      assert.deepEqual([...Deno.readDirSync(unit.runtimeDir)].map((e) => e.name), ["nodes"]);
    });
  } finally {
    for (const c of consoles.values()) c.close();
    await bed.close();
  }
});
