import assert from "node:assert/strict";
import { isOurs, type LinkInfo, ownerAlias, takenByOthers } from "./links.ts";

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

Deno.test("takenByOthers(): every route and address but those of the unit's own link", () => {
  const links = [
    { ifname: "eth0", ifindex: 2 },
    { ifname: "aosv123456", ifindex: 9, ifalias: "aos-unit@lab1 link" },
    { ifname: "aosv654321", ifindex: 10, ifalias: "aos-unit@lab2 link" },
  ] as LinkInfo[];
  const routes = [
    { dst: "default", dev: "eth0", gateway: "192.0.2.1" },
    { dst: "192.0.2.0/24", dev: "eth0" },
    { dst: "172.30.4.0/24", dev: "aosv123456" },
    { dst: "172.30.6.0/24", dev: "aosv654321" },
    { dst: "10.1.2.3", dev: "tailscale0" },
  ];
  const addresses = [
    { ifname: "eth0", addr_info: [{ family: "inet", local: "192.0.2.5", prefixlen: 24 }] },
    { ifname: "aosv123456", addr_info: [{ family: "inet", local: "172.30.5.1", prefixlen: 30 }] },
  ];
  assert.deepEqual(takenByOthers(routes, addresses, links, "aos-unit@lab1"), [
    "192.0.2.0/24",
    "172.30.6.0/24",
    "10.1.2.3/32",
    "192.0.2.5/32",
  ]);
});
