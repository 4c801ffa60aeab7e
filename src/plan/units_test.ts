import assert from "node:assert/strict";
import { caseFacts, planCase } from "../../tests/golden/plan_golden_test.ts";
import { loadConfig } from "../config/mod.ts";
import { FHS_PATHS } from "../host/paths.ts";
import { makePlan } from "./mod.ts";
import { INCOMING_ENV, PLAN_HASH_ENV, planHash, withIncoming } from "./units.ts";

Deno.test("planHash() is stable and sees every property", () => {
  const props = [["Type", "s", "exec"], ["MemoryMax", "t", 1024]] as [string, string, unknown][];
  assert.equal(planHash(props), planHash(structuredClone(props)));
  assert.notEqual(planHash(props), planHash([["Type", "s", "exec"], ["MemoryMax", "t", 2048]]));
  assert.notEqual(planHash(props, "aosbr1 10.200.1.0/24"), planHash(props, "aosbr1 10.0.0.0/24"));
});

Deno.test("a unit carries its fingerprint in its environment", () => {
  const { plan } = planCase("default");
  for (const unit of [...plan.nodes.map((n) => n.unit), plan.dnsmasq.unit]) {
    const env = unit.properties.find(([k]) => k === "Environment")![2] as string[];
    assert.ok(env.includes(`${PLAN_HASH_ENV}=${unit.hash}`), unit.name);
  }
});

function planOf(yaml: string, runtime = "") {
  const { config } = loadConfig(
    runtime === ""
      ? { path: "runtime.conf", missing: true }
      : { path: "runtime.conf", text: runtime },
    { path: "unit_config.yaml", text: yaml },
  );
  return makePlan(config, caseFacts("default"), FHS_PATHS);
}

const TWO = `unit:
  node_configs:
    - { name: main, cpu: 1, mem: 1G, ip: 10.200.1.10 }
    - { name: secondary, cpu: 1, mem: 1G }
`;

Deno.test("a new subnet changes every fingerprint; a new or changed node changes only its own", () => {
  const base = planOf(TWO);
  const subnet = planOf(TWO.replaceAll("10.200.1.10", "10.0.0.10"), 'DHCP_CIDR="10.0.0.0/24"');
  assert.notEqual(base.nodes[1]!.unit.hash, subnet.nodes[1]!.unit.hash);
  assert.notEqual(base.dnsmasq.unit.hash, subnet.dnsmasq.unit.hash);

  const more = planOf(TWO + "    - { name: third, cpu: 1, mem: 1G }\n");
  assert.equal(more.nodes[0]!.unit.hash, base.nodes[0]!.unit.hash, "main adopted as it is");
  assert.equal(more.nodes[1]!.unit.hash, base.nodes[1]!.unit.hash, "secondary too");
  assert.notEqual(more.dnsmasq.unit.hash, base.dnsmasq.unit.hash, "dnsmasq learns the new node");

  const bigger = planOf(TWO.replace("{ name: secondary, cpu: 1", "{ name: secondary, cpu: 2"));
  assert.equal(bigger.nodes[0]!.unit.hash, base.nodes[0]!.unit.hash);
  assert.notEqual(bigger.nodes[1]!.unit.hash, base.nodes[1]!.unit.hash);
});

Deno.test("RestartMode=direct only where systemd has it (>= 254)", () => {
  const has = (name: string) =>
    planCase(name).plan.nodes[0]!.unit.properties.some(([k]) => k === "RestartMode");
  assert.equal(has("default"), false, "systemd 252");
  assert.equal(has("trixie"), true, "systemd 257");
});

Deno.test("a node made to load a saved state waits for it, and keeps the plain unit's fingerprint", () => {
  const { plan } = planCase("default");
  const plain = plan.nodes[0]!.unit;
  const incoming = withIncoming(plain, "live");
  const prop = (u: typeof plain, key: string) => u.properties.find(([k]) => k === key)![2];
  const argv = (u: typeof plain) => (prop(u, "ExecStart") as [string, string[], boolean][])[0]![1];
  assert.deepEqual(argv(incoming), [...argv(plain), "-S", "-incoming", "defer"]);
  assert.equal(incoming.hash, plain.hash, "adopted by a later start: never booted again");
  const env = prop(incoming, "Environment") as string[];
  assert.ok(env.includes(`${INCOMING_ENV}=live`));
  assert.ok(env.includes(`${PLAN_HASH_ENV}=${plain.hash}`));
  // Nothing else changes, and the plan's own unit is left as it was.
  const others = (u: typeof plain) =>
    u.properties.filter(([k]) => k !== "ExecStart" && k !== "Environment");
  assert.deepEqual(others(incoming), others(plain));
  assert.ok(!argv(plain).includes("-incoming"));
});
