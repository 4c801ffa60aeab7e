import assert from "node:assert/strict";
import {
  bridgeMac,
  bridgeName,
  DEFAULT_UNIT,
  failedInstanceOf,
  isUnitName,
  nodeMac,
  systemdEscape,
  tapName,
  unitIdentity,
  unitNames,
  unitOfTable,
} from "./unit_identity.ts";

const MACHINE_ID = "a05b0e7e57bed0000000000000000001";

Deno.test("the default unit keeps every name the README documents (pinned)", () => {
  const id = unitIdentity(undefined, MACHINE_ID);
  assert.deepEqual(
    {
      managerUnit: id.managerUnit,
      slice: id.slice,
      dnsmasqUnit: id.dnsmasqUnit,
      dnsmasqUser: id.dnsmasqUser,
      nftTable: id.nftTable,
      dnsDomain: id.dnsDomain,
      bridge: id.bridge,
      bridgeMac: id.bridgeMac,
    },
    {
      managerUnit: "aos-unit.service",
      slice: "aos-unit.slice",
      dnsmasqUnit: "aos-unit-dnsmasq.service",
      dnsmasqUser: "aos-unit-dnsmasq",
      nftTable: "aos_unit",
      dnsDomain: "aos-unit",
      bridge: "aosbra05b0e",
      bridgeMac: "02:a7:c2:da:40:e9",
    },
  );
  // A node's names, as the old tool made them (md5 of the node name) and running guests
  // hold (the values of the release before the record, b661517).
  assert.deepEqual(id.node("main"), {
    unit: "aos-node-main.service",
    process: "aos-node-main",
    user: "aos-node-main",
    failedUnit: "aos-unit-vm-failed@main.service",
    mac: "52:54:00:fa:d5:8d",
    tap: "aostapfad58d",
  });
  assert.equal(id.node("main").mac, nodeMac("main"));
  assert.equal(tapName(nodeMac("main")), "aostapfad58d");
  assert.equal(bridgeName(MACHINE_ID), "aosbra05b0e");
  assert.equal(bridgeMac(MACHINE_ID), id.bridgeMac);
  // Too long for a user name (31): a hash of the node name, as before.
  const long = "n".repeat(40);
  assert.match(id.node(long).user, /^aos-node-[0-9a-f]{16}$/);
  assert.equal(unitNames(undefined), DEFAULT_UNIT);
});

Deno.test("a named unit's names never collide with the default unit's or another's", () => {
  const lab1 = unitIdentity("lab1", MACHINE_ID);
  const def = unitIdentity(undefined, MACHINE_ID);
  assert.equal(lab1.managerUnit, "aos-unit@lab1.service");
  assert.equal(lab1.dnsDomain, "lab1.aos-unit");
  assert.equal(lab1.nftTable, "aos_unit_lab1");
  // Unit lab1's node "main" and a default-unit node "lab1-main" share nothing.
  const a = lab1.node("main");
  const b = def.node("lab1-main");
  for (const key of ["unit", "user", "failedUnit", "mac", "tap"] as const) {
    assert.notEqual(a[key], b[key], key);
  }
  // The same node name in two units: different taps and MACs.
  const lab2 = unitIdentity("lab2", MACHINE_ID);
  assert.notEqual(lab1.node("main").tap, lab2.node("main").tap);
  assert.notEqual(lab1.node("main").mac, def.node("main").mac);
  assert.notEqual(lab1.bridge, lab2.bridge);
  assert.notEqual(lab1.bridge, def.bridge);
  // Interface names stay within the kernel's 15 characters.
  for (const id of [def, lab1, unitIdentity("a".repeat(20), MACHINE_ID)]) {
    assert.ok(id.bridge.length <= 15, id.bridge);
    assert.ok(id.node("n".repeat(63)).tap.length <= 15);
    assert.ok(id.node("n".repeat(63)).user.length <= 31);
  }
  // Ownership: each unit's node units are its own.
  assert.ok(def.ownsNodeUnit("aos-node-lab1-main.service"));
  assert.ok(!def.ownsNodeUnit(a.unit));
  assert.ok(lab1.ownsNodeUnit(a.unit));
  assert.ok(!lab1.ownsNodeUnit(b.unit));
  assert.ok(!lab1.ownsNodeUnit(unitIdentity("lab1-x", MACHINE_ID).node("main").unit));
});

Deno.test("slices nest by dash: lab-1's slice is escaped, not under lab's", () => {
  assert.equal(unitNames("lab").slice, "aos-unit-lab.slice");
  assert.equal(unitNames("lab-1").slice, "aos-unit-lab\\x2d1.slice");
  assert.equal(systemdEscape("a-b.c_d"), "a\\x2db.c_d");
  assert.notEqual(unitNames("lab-1").nftTable, unitNames("lab").nftTable);
});

Deno.test("a unit name is a DNS label of at most 20 characters", () => {
  for (const ok of ["lab1", "a", "lab-1", "a".repeat(20)]) assert.ok(isUnitName(ok), ok);
  for (const bad of ["", "-lab", "lab-", "Lab", "lab_1", "a".repeat(21), "lab.1"]) {
    assert.ok(!isUnitName(bad), bad);
    assert.throws(() => unitNames(bad), /not a DNS label/);
  }
});

Deno.test("a node unit names its node only to the unit that owns it", () => {
  const def = unitNames(undefined);
  const lab1 = unitNames("lab1");
  assert.equal(def.nodeOfUnit("aos-node-lab1-main.service"), "lab1-main");
  assert.equal(def.nodeOfUnit("aos-node-lab1_main.service"), undefined);
  assert.equal(lab1.nodeOfUnit("aos-node-lab1_main.service"), "main");
  assert.equal(lab1.nodeOfUnit("aos-node-lab1-main.service"), undefined);
  assert.equal(def.nodeOfUnit("aos-unit-dnsmasq.service"), undefined);
  assert.notEqual(def.tapAlias, lab1.tapAlias);
});

Deno.test("no two units share a dynamic user, an owner's mark or a sidecar", () => {
  const units = [undefined, "lab", "lab-1", "lab1", "a".repeat(20)].map((u) => unitNames(u));
  const users = units.flatMap((u) => [u.dnsmasqUser, u.node("main").user, u.node("x").user]);
  assert.equal(new Set(users).size, users.length, users.join(" "));
  for (const user of users) assert.ok(user.length <= 31, user);
  for (const key of ["owner", "tapAlias", "dnsmasqUnit", "nftTable", "dnsDomain"] as const) {
    const values = units.map((u) => u[key]);
    assert.equal(new Set(values).size, values.length, key);
  }
  // The default unit keeps its marks; a named unit's never starts with another's and a space.
  assert.equal(DEFAULT_UNIT.owner, "aos-unit");
  assert.equal(unitNames("lab1").owner, "aos-unit@lab1");
  assert.ok(!unitNames("lab-1").owner.startsWith(`${unitNames("lab").owner} `));
});

Deno.test("failedInstanceOf() reads NODE and UNIT_NODE (node().failedUnit's instance)", () => {
  assert.deepEqual(failedInstanceOf("main"), { unit: undefined, node: "main" });
  assert.deepEqual(failedInstanceOf("lab-1_main"), { unit: "lab-1", node: "main" });
  const instance = /@(.*)\.service$/.exec(unitNames("lab-1").node("sec-2").failedUnit)![1]!;
  assert.deepEqual(failedInstanceOf(instance), { unit: "lab-1", node: "sec-2" });
});

Deno.test("unitOfTable() gives back the unit of each unit's table", () => {
  for (const name of [undefined, "lab1", "lab-1", "a-b-c"]) {
    assert.equal(unitOfTable(unitNames(name).nftTable), name);
  }
});
