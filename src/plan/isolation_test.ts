import assert from "node:assert/strict";
import { parseCidr, type Subnet } from "../base/ipv4.ts";
import { unitIdentity } from "../base/unit_identity.ts";
import { chooseHostBlock, HOST_POOL, mappedAddress, planIsolation } from "./isolation.ts";

const MACHINE_ID = "5f2b8c9d0e1a4b3c8d7e6f5a4b3c2d1e";

function cidr(text: string): Subnet {
  const s = parseCidr(text);
  assert.ok(!("kind" in s), text);
  return s;
}

Deno.test("a named unit's record names its namespace and its link; the default unit has none", () => {
  const lab1 = unitIdentity("lab1", MACHINE_ID);
  assert.equal(lab1.namespace, "aos-unit-lab1");
  assert.match(lab1.hostLink!, /^aosv[0-9a-f]{6}$/);
  const long = unitIdentity("a".repeat(20), MACHINE_ID);
  assert.ok(long.hostLink!.length <= 15 && long.namespace!.length <= 29);
  assert.notEqual(unitIdentity("lab2", MACHINE_ID).hostLink, lab1.hostLink);
  const main = unitIdentity(undefined, MACHINE_ID);
  assert.equal(main.namespace, undefined);
  assert.equal(main.hostLink, undefined);
});

Deno.test("chooseHostBlock(): a slot of the pool from the unit's name, free on this host", () => {
  const inner = cidr("10.0.0.0/24");
  const first = chooseHostBlock("lab1", inner, [])!;
  assert.equal(first.prefix, 23);
  assert.ok(first.network >= cidr(HOST_POOL).network);
  assert.deepEqual(chooseHostBlock("lab1", inner, []), first, "the same name, the same block");
  // Taken (another unit's block, a host route): the next free slot, never an overlap.
  const next = chooseHostBlock("lab1", inner, [first])!;
  assert.notDeepEqual(next, first);
  const wide = chooseHostBlock("lab1", inner, [{ network: first.network, prefix: 22 }])!;
  assert.ok(wide.network >= first.network + 1024 || wide.network < first.network - 512);
  // Eight units with the same subnet get eight different blocks.
  const taken: Subnet[] = [];
  for (let i = 1; i <= 8; i++) taken.push(chooseHostBlock(`lab${i}`, inner, taken)!);
  assert.equal(new Set(taken.map((b) => b.network)).size, 8);
  // A subnet too wide for the pool, or a full pool: none.
  assert.equal(chooseHostBlock("lab1", cidr("10.0.0.0/15"), []), undefined);
  assert.equal(chooseHostBlock("lab1", inner, [cidr(HOST_POOL)]), undefined);
});

Deno.test("planIsolation(): MAPPED is the block's lower half, the link the upper half's first /30", () => {
  const iso = planIsolation(
    { namespace: "aos-unit-lab1", hostLink: "aosv123456" },
    cidr("10.0.0.0/24"),
    cidr("172.30.4.0/23"),
  );
  assert.deepEqual(iso, {
    namespace: "aos-unit-lab1",
    namespacePath: "/run/netns/aos-unit-lab1",
    hostLink: "aosv123456",
    unitLink: "uplink",
    block: "172.30.4.0/23",
    mapped: "172.30.4.0/24",
    inner: "10.0.0.0/24",
    transfer: "172.30.5.0/30",
    hostAddress: "172.30.5.1",
    unitAddress: "172.30.5.2",
    dnsAddress: "172.30.4.1",
  });
  assert.equal(mappedAddress(iso, "10.0.0.100"), "172.30.4.100");
  assert.throws(() => mappedAddress(iso, "10.0.1.5"), /not in the unit's subnet/);
});
