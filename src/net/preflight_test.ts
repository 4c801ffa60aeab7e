import assert from "node:assert/strict";
import { parseRuntimeConf } from "../config/runtime_conf.ts";
import { planNetwork } from "../plan/network.ts";
import { unitIdentity, unitOfMark } from "../base/unit_identity.ts";
import { foreignDropPolicies, subnetConflicts, wildcardListeners } from "./preflight.ts";
import type { LinkInfo, RouteInfo } from "./links.ts";

const net = planNetwork(
  parseRuntimeConf("r", undefined).config,
  unitIdentity(undefined, "abcdef0123456789abcdef0123456789"),
);

Deno.test("foreignDropPolicies() names other tables' drop chains with the commands that fix them", () => {
  const json = JSON.stringify({
    nftables: [
      { metainfo: {} },
      {
        chain: {
          family: "inet",
          table: "aos_unit",
          name: "input",
          hook: "input",
          policy: "accept",
        },
      },
      { chain: { family: "inet", table: "filter", name: "input", hook: "input", policy: "drop" } },
      {
        chain: { family: "ip", table: "filter", name: "FORWARD", hook: "forward", policy: "drop" },
      },
      { chain: { family: "inet", table: "fw", name: "out", hook: "output", policy: "drop" } },
    ],
  });
  const w = foreignDropPolicies(json, net);
  assert.equal(w.length, 2);
  assert.equal(w[0]!.check, "firewall");
  assert.equal(
    w[0]!.message,
    "Chain inet filter input drops incoming packets by default, which blocks the guests' DHCP and DNS",
  );
  assert.match(
    w[0]!.fix,
    /^nft insert rule inet filter input iifname "aosbrabcdef" udp dport \{ 67, 5300 \} accept/,
  );
  assert.match(w[1]!.message, /^Chain ip filter FORWARD drops forwarded packets/);
  assert.match(w[1]!.fix, /iptables -I DOCKER-USER -i aosbrabcdef -j ACCEPT/);
  assert.deepEqual(foreignDropPolicies("not json", net), []);
});

Deno.test("wildcardListeners() reports only wildcard listeners on the port", () => {
  const ss = [
    "udp UNCONN 0 0 0.0.0.0:5300 0.0.0.0:*",
    "udp UNCONN 0 0 10.200.1.1:5300 0.0.0.0:*",
    "tcp LISTEN 0 32 [::]:5300 [::]:*",
    "udp UNCONN 0 0 0.0.0.0:53000 0.0.0.0:*",
  ].join("\n");
  assert.deepEqual(wildcardListeners(ss, 5300), ["udp 0.0.0.0:5300", "tcp [::]:5300"]);
});

Deno.test("subnetConflicts() names the unit whose bridge holds the subnet, and its file", () => {
  const host = {
    links: [
      {
        ifname: "aosbr123456",
        ifindex: 7,
        ifalias: "aos-unit@lab1 10.200.1.0/24",
        linkinfo: { info_kind: "bridge" },
      },
    ] as LinkInfo[],
    addresses: [],
    routes: [{ dst: "10.200.1.0/24", dev: "aosbr123456" }] as RouteInfo[],
  };
  const unitOf = (l: LinkInfo) =>
    l.ifalias?.startsWith("aos-unit@lab1 ")
      ? "unit lab1, /etc/aos-unit/units/lab1/runtime.conf"
      : undefined;
  assert.deepEqual(subnetConflicts(net, host, unitOf), [
    "route 10.200.1.0/24 via aosbr123456 (unit lab1, /etc/aos-unit/units/lab1/runtime.conf)",
  ]);
  assert.deepEqual(subnetConflicts(net, host), ["route 10.200.1.0/24 via aosbr123456"]);
});

Deno.test("unitOfMark() reads the owner's mark of a link", () => {
  assert.equal(unitOfMark("aos-unit 10.200.1.0/24"), undefined);
  assert.equal(unitOfMark("aos-unit@lab-1 10.200.2.0/24"), "lab-1");
  assert.equal(unitOfMark("aos-unit@lab1 tap"), "lab1");
  assert.equal(unitOfMark("docker bridge"), null);
  assert.equal(unitOfMark("aos-unit@Bad_Name x"), null);
});
