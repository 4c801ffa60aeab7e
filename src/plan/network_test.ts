import assert from "node:assert/strict";
import { parseRuntimeConf } from "../config/runtime_conf.ts";
import { bridgeMac, bridgeName, nodeMac, tapName, unitIdentity } from "../base/unit_identity.ts";
import { formatIpv4, parseCidr, parseIpv4, type Subnet } from "../base/ipv4.ts";
import { dhcpPool, planNetwork } from "./network.ts";

const MACHINE_ID = "3d1219aa0000000000000000000000ff";

function subnet(text: string): Subnet {
  const s = parseCidr(text);
  assert.ok(!("kind" in s), `bad test CIDR ${text}`);
  return s;
}

Deno.test("parseIpv4() accepts dotted quads and rejects everything else", () => {
  assert.equal(parseIpv4("10.200.1.1"), 0x0ac80101);
  assert.equal(parseIpv4("255.255.255.255"), 2 ** 32 - 1);
  for (
    const bad of ["10.200.1", "10.200.1.256", "010.1.1.1", "1.2.3.4.5", "", "a.b.c.d", " 1.2.3.4"]
  ) {
    assert.equal(parseIpv4(bad), undefined, bad);
  }
});

Deno.test("parseCidr() explains why a CIDR is rejected", () => {
  assert.deepEqual(parseCidr("10.200.1.0/24"), { network: 0x0ac80100, prefix: 24 });
  assert.deepEqual(parseCidr("10.200.1.5/24"), { kind: "host-bits", network: "10.200.1.0/24" });
  assert.deepEqual(parseCidr("10.0.0.0/7"), { kind: "prefix", prefix: 7 });
  assert.deepEqual(parseCidr("10.0.0.0/31"), { kind: "prefix", prefix: 31 });
  assert.deepEqual(parseCidr("10.0.0.0"), { kind: "malformed" });
});

Deno.test("dhcpPool() runs from the middle of the subnet to broadcast - 1", async (t) => {
  const cases: [string, string, string][] = [
    ["10.200.1.0/24", "10.200.1.128", "10.200.1.254"],
    ["10.0.0.0/24", "10.0.0.128", "10.0.0.254"],
    ["172.20.0.0/16", "172.20.128.0", "172.20.255.254"],
    ["192.168.77.4/30", "192.168.77.6", "192.168.77.6"],
    ["192.168.1.0/29", "192.168.1.4", "192.168.1.6"],
    ["10.0.0.0/8", "10.128.0.0", "10.255.255.254"],
  ];
  for (const [cidr, start, end] of cases) {
    await t.step(cidr, () => {
      const pool = dhcpPool(subnet(cidr));
      assert.equal(formatIpv4(pool.start), start);
      assert.equal(formatIpv4(pool.end), end);
    });
  }
});

Deno.test("planNetwork() derives bridge name, address and netmask from one CIDR", () => {
  const { config } = parseRuntimeConf("runtime.conf", undefined);
  const net = planNetwork(config, unitIdentity(undefined, MACHINE_ID));
  assert.equal(net.bridge, "aosbr3d1219");
  assert.equal(net.bridgeIp, "10.200.1.1");
  assert.equal(net.netmask, "255.255.255.0");
  assert.equal(net.broadcast, "10.200.1.255");
  assert.equal(net.dnsPort, 5300);
  assert.equal(net.upstreamDns, "127.0.0.53");
});

Deno.test("nodeMac() is 52:54:00 + md5(name)[0:6] and tapName() its last 6 digits", () => {
  // md5("main") = fad58de7366495db4650cfefac2fcd61
  assert.equal(nodeMac("main"), "52:54:00:fa:d5:8d");
  assert.equal(tapName(nodeMac("main")), "aostapfad58d");
  assert.ok(tapName(nodeMac("a-very-long-node-name-indeed")).length <= 15, "fits IFNAMSIZ");
});

Deno.test("bridgeMac() is stable, locally administered and unicast", () => {
  const mac = bridgeMac(MACHINE_ID);
  assert.equal(mac, bridgeMac(MACHINE_ID));
  assert.match(mac, /^02(:[0-9a-f]{2}){5}$/);
  assert.notEqual(bridgeMac("ff".repeat(16)), mac);
  assert.equal(bridgeName(MACHINE_ID).length <= 15, true);
});
