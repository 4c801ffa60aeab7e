/**
 * Tier 2: startup refuses host conflicts with one clear message and the right
 * exit code, and leaves nothing half-made (no bridge, no tap, no table).
 */

import assert from "node:assert/strict";
import { NetBed } from "../lib/netbed.ts";
import { aosTableRules, linksIn } from "../lib/topology.ts";

const UNIT_CONFIG = `unit:
  node_configs:
    - { name: main, cpu: 1, mem: 256M, ip: 10.200.1.100 }
`;

async function ourLeftovers(ns: string): Promise<string[]> {
  const links = (await linksIn(ns)).filter((l) =>
    l.ifname.startsWith("aostap") ||
    (l.ifname.startsWith("aosbr") && (l.ifalias ?? "").startsWith("aos-unit"))
  ).map((l) => l.ifname);
  return (await aosTableRules(ns)) >= 0 ? [...links, "table inet aos_unit"] : links;
}

Deno.test({
  name: "startup refuses conflicts and leaves nothing half-made",
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  const bed = await NetBed.open("faults", UNIT_CONFIG, `ENABLE_KVM="false"\n`);
  const { topo, unit } = bed;
  try {
    const bridge = (await unit.plan()).network.bridge;

    await t.step("a CIDR that overlaps a host route: exit 2, names the route", async () => {
      await bed.ipQuiet("route", "add", "10.200.0.0/16", "via", topo.uplinks[0].gateway);
      const r = await unit.cli("startup", "--no-units");
      assert.equal(r.code, 2, r.stderr);
      assert.match(
        r.stderr,
        /runtime\.conf:1:1: DHCP_CIDR 10\.200\.1\.0\/24 overlaps the host's route 10\.200\.0\.0\/16 via uplink1; choose a free subnet/,
      );
      assert.deepEqual(await ourLeftovers(topo.host), []);
      await bed.ipQuiet("route", "del", "10.200.0.0/16");
    });

    await t.step(
      "a bridge name taken by a link aos-unit did not create: exit 2, the link is left alone",
      async () => {
        await bed.ipQuiet("link", "add", bridge, "type", "veth", "peer", "name", "foreign0");
        const r = await unit.cli("startup", "--no-units");
        assert.equal(r.code, 2, r.stderr);
        assert.match(
          r.stderr,
          new RegExp(
            `Cannot create bridge ${bridge}: a veth link with that name exists and was not created by aos-unit`,
          ),
        );
        assert.deepEqual(await ourLeftovers(topo.host), []);
        const still = await bed.ipQuiet("link", "show", bridge);
        assert.equal(still.code, 0, "the foreign link survives");
        const cleanup = await unit.cli("cleanup");
        assert.equal(cleanup.code, 0);
        assert.match(cleanup.stderr, new RegExp(`Leaving ${bridge} alone`));
        assert.equal(
          (await bed.ipQuiet("link", "show", bridge)).code,
          0,
          "cleanup leaves it too",
        );
        await bed.ipQuiet("link", "del", bridge);
      },
    );

    await t.step(
      "an occupied DNS port: exit 2, names the port and how to find the program",
      async () => {
        const stopListener = await bed.occupyUdp(5300);
        const r = await unit.cli("startup", "--no-units");
        assert.equal(r.code, 2, r.stderr);
        assert.match(r.stderr, /Cannot use DNS port 5300: another program already listens on it/);
        assert.match(r.stderr, /hint: .*DNS_ALT_PORT/);
        assert.deepEqual(await ourLeftovers(topo.host), []);
        await stopListener();
      },
    );

    await t.step("a broken configuration: exit 2 before anything is created", async () => {
      await Deno.writeTextFile(`${unit.configDir}/runtime.conf`, `DHCP_CIDR="10.200.1.7/24"\n`);
      const r = await unit.cli("startup", "--no-units");
      assert.equal(r.code, 2);
      assert.match(r.stderr, /runtime\.conf:1:11: DHCP_CIDR "10\.200\.1\.7\/24" has host bits set/);
      assert.deepEqual(await ourLeftovers(topo.host), []);
    });

    await t.step("after all that, a clean startup and cleanup still work", async () => {
      await Deno.writeTextFile(`${unit.configDir}/runtime.conf`, `ENABLE_KVM="false"\n`);
      assert.equal((await unit.cli("startup", "--no-units")).code, 0);
      assert.equal((await unit.cli("cleanup")).code, 0);
      assert.deepEqual(await ourLeftovers(topo.host), []);
    });
  } finally {
    await bed.close();
  }
});
