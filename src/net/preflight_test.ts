import assert from "node:assert/strict";
import { parseRuntimeConf } from "../config/runtime_conf.ts";
import { planNetwork } from "../plan/network.ts";
import { unitIdentity } from "../base/unit_identity.ts";
import { foreignDropPolicies, wildcardListeners } from "./preflight.ts";

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
