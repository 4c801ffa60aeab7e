import assert from "node:assert/strict";
import { isOurs, type LinkInfo, ownerAlias } from "./links.ts";

const bridge = (ifalias?: string): LinkInfo =>
  ({ ifname: "aosbr000001", ifindex: 9, linkinfo: { info_kind: "bridge" }, ifalias }) as LinkInfo;

Deno.test("isOurs(): a bridge is a unit's only with that unit's mark", () => {
  assert.equal(ownerAlias("aos-unit", "10.200.1.0/24"), "aos-unit 10.200.1.0/24");
  assert.ok(isOurs(bridge("aos-unit 10.200.1.0/24"), "aos-unit"));
  assert.ok(isOurs(bridge(ownerAlias("aos-unit@lab1", "10.200.2.0/24")), "aos-unit@lab1"));
  // Another unit's bridge is nobody else's: not the default unit's, not a prefix's.
  assert.ok(!isOurs(bridge("aos-unit@lab1 10.200.2.0/24"), "aos-unit"));
  assert.ok(!isOurs(bridge("aos-unit@lab-1 10.200.2.0/24"), "aos-unit@lab"));
  assert.ok(!isOurs(bridge(), "aos-unit"));
  const tap = { ...bridge("aos-unit 10.200.1.0/24"), linkinfo: { info_kind: "tun" } } as LinkInfo;
  assert.ok(!isOurs(tap, "aos-unit"));
});
