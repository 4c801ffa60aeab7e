import assert from "node:assert/strict";
import type { NodeConfig, RuntimeConfig } from "../base/config_types.ts";
import { parseCidr, type Subnet } from "../base/ipv4.ts";
import { nodeAddresses } from "./addresses.ts";

const at = { file: "u.yaml", line: 1, column: 1 };
const runtime = { subnet: parseCidr("10.0.0.0/24") as Subnet } as RuntimeConfig;
const node = (name: string, ip?: string): NodeConfig => ({
  name,
  cpu: 1,
  memMiB: 512,
  ip,
  arch: undefined,
  image: undefined,
  machineType: undefined,
  cpuType: undefined,
  uefi: undefined,
  at,
  imageAt: undefined,
  ipAt: undefined,
  forwards: [],
});
const macs = (...names: string[]) => new Map(names.map((n, i) => [n, `52:54:00:00:00:0${i}`]));

Deno.test("nodeAddresses() gives reservations as they are and each other node its own pool address", () => {
  const nodes = [node("main", "10.0.0.100"), node("secondary-1"), node("secondary-2")];
  const got = nodeAddresses(runtime, nodes, macs("main", "secondary-1", "secondary-2"));
  assert.equal(got.get("main"), "10.0.0.100");
  const pool = [got.get("secondary-1")!, got.get("secondary-2")!];
  for (const ip of pool) assert.ok(Number(ip.split(".")[3]) >= 128, `${ip} in the pool`);
  assert.notEqual(pool[0], pool[1]);
});

Deno.test("nodeAddresses() is stable: order, other nodes and a removed peer do not move a node", () => {
  const a = nodeAddresses(runtime, [node("s1"), node("s2"), node("s3")], macs("s1", "s2", "s3"));
  const b = nodeAddresses(runtime, [node("s3"), node("s1")], macs("s3", "s1"));
  assert.equal(b.get("s1"), a.get("s1"));
  assert.equal(b.get("s3"), a.get("s3"));
});

Deno.test("nodeAddresses() keeps the address a node holds in the pool, never one a peer holds", () => {
  const m = macs("s1", "s2");
  const held = { [m.get("s1")!]: "10.0.0.200", [m.get("s2")!]: "10.0.0.200" };
  const got = nodeAddresses(runtime, [node("s1"), node("s2")], m, held);
  assert.equal(got.get("s1"), "10.0.0.200");
  assert.notEqual(got.get("s2"), "10.0.0.200");
  // A lease outside the pool (an older subnet, a reservation now) is not kept.
  const out = nodeAddresses(runtime, [node("s1")], m, { [m.get("s1")!]: "10.0.0.20" });
  assert.ok(Number(out.get("s1")!.split(".")[3]) >= 128);
});

Deno.test("nodeAddresses() fills a pool of one", () => {
  const tiny = { subnet: parseCidr("192.168.77.4/30") as Subnet } as RuntimeConfig;
  assert.equal(nodeAddresses(tiny, [node("only")], macs("only")).get("only"), "192.168.77.6");
});
