/**
 * Tier 2: two isolated units with identical subnets (10.0.0.0/24, main at 10.0.0.100, the
 * stock images' addressing) side by side, each in its own namespace with its link, tables
 * and dnsmasq, made by the product's own code (net/isolation.ts, plan/isolation.ts) in a
 * "host" namespace this test creates. A guest is a namespace on a veth named as the
 * node's tap, with the node's MAC. No traffic leaves the test's namespaces.
 */

import assert from "node:assert/strict";
import { parseCidr, type Subnet } from "../../src/base/ipv4.ts";
import { unitIdentity } from "../../src/base/unit_identity.ts";
import { parseRuntimeConf } from "../../src/config/runtime_conf.ts";
import { createRunner, type Runner } from "../../src/host/runner.ts";
import {
  ensureIsolatedNetwork,
  inHostMounts,
  namespaced,
  removeIsolatedNetwork,
} from "../../src/net/isolation.ts";
import { applyRuleset, deleteTable } from "../../src/net/nft.ts";
import { dnsmasqArgv, dnsmasqConf } from "../../src/plan/dnsmasq.ts";
import {
  chooseHostBlock,
  type Isolation,
  mappedAddress,
  planIsolation,
} from "../../src/plan/isolation.ts";
import { planNetwork } from "../../src/plan/network.ts";
import { nftRuleset } from "../../src/plan/nft.ts";
import { linkRuleset } from "../../src/plan/nft_link.ts";
import { type Background, must, run, waitFor } from "../lib/proc.ts";
import { INTERNET_IP, Topology } from "../lib/topology.ts";

const MACHINE_ID = "0123456789abcdef0123456789abcdef";
const PREFIX = `t2iso${Deno.pid % 1000}`;
const UNITS = [`${PREFIX}-a`, `${PREFIX}-b`];
const INNER = "10.0.0.0/24";
const MAIN = "10.0.0.100";

function cidr(text: string): Subnet {
  const s = parseCidr(text);
  if ("kind" in s) throw new Error(text);
  return s;
}

/**
 * Runs the product's commands in the test's host namespace (net only: /run/netns is
 * shared). What the product runs in PID 1's mount namespace (under systemd, where a
 * service has one of its own) runs here in this one: this machine's PID 1 is no systemd,
 * and the test already shares its mounts.
 */
function inHost(runner: Runner, hostNs: string): Runner {
  const hostMounts = inHostMounts([]);
  return {
    get history() {
      return runner.history;
    },
    run: (argv, options) => {
      const own = hostMounts.every((a, i) => argv[i] === a) ? argv.slice(hostMounts.length) : argv;
      return runner.run(["nsenter", `--net=/run/netns/${hostNs}`, ...own], options);
    },
  };
}

async function inNs(ns: string, argv: string[], timeoutS = 5) {
  return await run(["ip", "netns", "exec", ns, "timeout", String(timeoutS), ...argv]);
}

/** The body an HTTP server answers with, or "" when none answered. */
async function fetchFrom(ns: string, url: string, timeoutS = 5): Promise<string> {
  return (await inNs(ns, ["busybox", "wget", "-q", "-O", "-", url], timeoutS)).stdout.trim();
}

async function dnsAnswer(ns: string, server: string, name: string): Promise<string> {
  const probe = new URL("../lib/dns_probe.ts", import.meta.url).pathname;
  const r = await inNs(ns, [
    Deno.execPath(),
    "run",
    "-A",
    "--unstable-net",
    probe,
    server,
    "53",
    name,
    "2000",
  ]);
  return r.stdout.trim();
}

interface Unit {
  name: string;
  iso: Isolation;
  guest: string;
  table: string;
  dnsmasq: Background;
}

async function makeUnit(host: Runner, topo: Topology, name: string, taken: Subnet[], work: string) {
  const unit = unitIdentity(name, MACHINE_ID);
  const runtime = parseRuntimeConf("runtime.conf", `DHCP_CIDR=${INNER}\n`).config;
  const network = planNetwork(runtime, unit);
  const block = chooseHostBlock(name, cidr(INNER), taken)!;
  taken.push(block);
  const iso = planIsolation(
    { namespace: unit.namespace!, hostLink: unit.hostLink! },
    cidr(INNER),
    block,
  );
  await ensureIsolatedNetwork(host, iso, unit.owner);
  const inside = namespaced(host, iso.namespace);
  // The unit's bridge, and a guest on a veth named as main's tap, with main's MAC.
  const br = network.bridge;
  const node = unit.node("main");
  const guest = `${name}-guest`;
  await inside.run(["ip", "link", "add", br, "type", "bridge"]);
  await inside.run(["ip", "addr", "add", `${network.bridgeIp}/24`, "dev", br]);
  await inside.run(["ip", "link", "set", br, "up"]);
  await must(["ip", "netns", "add", guest]);
  await inside.run([
    "ip",
    "link",
    "add",
    node.tap,
    "type",
    "veth",
    "peer",
    "name",
    "eth0",
    "netns",
    guest,
  ]);
  await inside.run(["ip", "link", "set", node.tap, "master", br, "up"]);
  await must(["ip", "-n", guest, "link", "set", "eth0", "address", node.mac]);
  await must(["ip", "-n", guest, "addr", "add", `${MAIN}/24`, "dev", "eth0"]);
  await must(["ip", "-n", guest, "link", "set", "eth0", "up"]);
  await must(["ip", "-n", guest, "link", "set", "lo", "up"]);
  await must(["ip", "-n", guest, "route", "add", "default", "via", network.bridgeIp]);
  const www = `${work}/www-${name}`;
  await Deno.mkdir(www, { recursive: true });
  await Deno.writeTextFile(`${www}/index.html`, `${name} main\n`);
  topo.procs.start(
    topo.inNs(guest, ["busybox", "httpd", "-f", "-p", `${MAIN}:8089`, "-h", www]),
    `${work}/httpd-${name}.log`,
  );
  // Its tables on both sides, and its dnsmasq in its namespace.
  const guards = [{ tap: node.tap, mac: node.mac, ip: MAIN }];
  await applyRuleset(
    inside,
    nftRuleset(unit.nftTable, network, guards, [iso.unitLink], [], {
      link: iso.unitLink,
      mapped: iso.mapped,
      inner: iso.inner,
      dnsAddress: iso.dnsAddress,
    }),
  );
  const host18089 = name === UNITS[0] ? 18089 : 28089;
  await applyRuleset(
    host,
    linkRuleset({
      table: unit.nftTable,
      iso,
      uplinks: topo.uplinks.map((u) => u.ifname),
      forwards: [{
        node: "main",
        nodeIp: mappedAddress(iso, MAIN),
        host: host18089,
        port: 8089,
        proto: "tcp",
      }],
      guestFence: "internet",
    }),
  );
  const conf = dnsmasqConf({
    network,
    nodes: [{
      name: "main",
      mac: node.mac,
      ip: MAIN,
      address: MAIN,
      hostAddress: mappedAddress(iso, MAIN),
    }],
    leaseFile: `${work}/${name}.leases`,
    user: "root",
  });
  const dnsmasq = topo.procs.start(
    topo.inNs(iso.namespace, dnsmasqArgv(conf)),
    `${work}/dnsmasq-${name}.log`,
  );
  return { name, iso, guest, table: unit.nftTable, dnsmasq } satisfies Unit;
}

async function cleanUp(units: readonly string[]) {
  for (const name of units) {
    const unit = unitIdentity(name, MACHINE_ID);
    for (const ns of [unit.namespace!, `${name}-guest`]) {
      const pids = (await run(["ip", "netns", "pids", ns])).stdout.split("\n").filter(Boolean);
      if (pids.length > 0) await run(["kill", "-9", ...pids]);
      await run(["ip", "netns", "del", ns]);
    }
  }
}

Deno.test({
  name:
    "two isolated units with identical subnets: each reached by its mapped address, name and forward, neither reaches the other",
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  const work = await Deno.makeTempDir({ prefix: "aos-unit-iso-" });
  const topo = new Topology(PREFIX, work);
  await cleanUp(UNITS);
  const host = inHost(createRunner(), topo.host);
  try {
    await topo.create();
    await must(["ip", "netns", "exec", topo.host, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
    const taken = [cidr("10.202.0.0/16")];
    const units: Unit[] = [];
    for (const name of UNITS) units.push(await makeUnit(host, topo, name, taken, work));
    const [a, b] = units as [Unit, Unit];

    await t.step("the two units got different host blocks; the same inner addresses", () => {
      assert.notEqual(a.iso.block, b.iso.block);
      assert.equal(a.iso.inner, b.iso.inner);
    });

    await t.step(
      "the host reaches each unit's main at its mapped address, and by name",
      async () => {
        for (const u of units) {
          const url = `http://${mappedAddress(u.iso, MAIN)}:8089/`;
          await waitFor(
            `${u.name} main over its link`,
            async () => (await fetchFrom(topo.host, url)) || undefined,
            10_000,
          );
          assert.equal(await fetchFrom(topo.host, url), `${u.name} main`);
          const answer = await waitFor(
            `${u.name}'s dnsmasq`,
            async () => {
              const r = await dnsAnswer(topo.host, u.iso.dnsAddress, `main.${u.name}.aos-unit`);
              return r.startsWith("answer") ? r : undefined;
            },
            10_000,
          );
          assert.equal(answer, `answer ${mappedAddress(u.iso, MAIN)}`);
        }
      },
    );

    await t.step("each unit's forward leads to its own main, from the LAN", async () => {
      const lan = topo.uplinks[0];
      assert.equal(await fetchFrom(lan.ns, `http://${lan.hostIp}:18089/`), `${a.name} main`);
      assert.equal(await fetchFrom(lan.ns, `http://${lan.hostIp}:28089/`), `${b.name} main`);
    });

    await t.step("each guest reaches the internet through the host's uplink", async () => {
      for (const u of units) {
        assert.equal(await fetchFrom(u.guest, `http://${INTERNET_IP}/`), "uplink1");
      }
    });

    await t.step(
      "a guest of one unit reaches nothing of the other: its main, its link, its DNS",
      async () => {
        const [main, dns, ping, back] = await Promise.all([
          fetchFrom(a.guest, `http://${mappedAddress(b.iso, MAIN)}:8089/`, 2),
          dnsAnswer(a.guest, b.iso.dnsAddress, `main.${b.name}.aos-unit`),
          inNs(a.guest, ["ping", "-c", "1", "-W", "1", b.iso.hostAddress]),
          // Nor the other way round.
          fetchFrom(b.guest, `http://${mappedAddress(a.iso, MAIN)}:8089/`, 2),
        ]);
        assert.equal(main, "");
        assert.equal(dns, "timeout");
        assert.notEqual(ping.code, 0, "the other unit's end of its link");
        assert.equal(back, "");
      },
    );

    await t.step(
      "removed: the namespace takes the link, its route and its tables with it",
      async () => {
        for (const u of units) {
          // What holds the namespace goes first (the unit's services, stopped by then).
          await topo.procs.stop(u.dnsmasq);
          await deleteTable(host, u.table);
          assert.equal(await removeIsolatedNetwork(host, u.iso), true);
          assert.equal(await removeIsolatedNetwork(host, u.iso), false);
          const link = await run(["ip", "-n", topo.host, "link", "show", "dev", u.iso.hostLink]);
          assert.notEqual(link.code, 0, `${u.iso.hostLink} is gone`);
          const routes = await must(["ip", "-n", topo.host, "route", "show", u.iso.mapped]);
          assert.equal(routes.stdout.trim(), "");
        }
      },
    );
  } finally {
    await topo.destroy();
    await cleanUp(UNITS);
    await Deno.remove(work, { recursive: true });
  }
});
