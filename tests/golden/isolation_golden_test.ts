/**
 * An isolated unit's nft tables, both sides, compared with checked-in files (the unit's own
 * in its namespace, and the host's on its link). Regenerate on purpose only:
 * UPDATE_GOLDEN=1 deno task test:unit
 */

import { parseCidr, type Subnet } from "../../src/base/ipv4.ts";
import { unitIdentity } from "../../src/base/unit_identity.ts";
import { parseRuntimeConf } from "../../src/config/runtime_conf.ts";
import { mappedAddress, planIsolation } from "../../src/plan/isolation.ts";
import { planNetwork } from "../../src/plan/network.ts";
import { nftRuleset } from "../../src/plan/nft.ts";
import { linkRuleset } from "../../src/plan/nft_link.ts";
import { dnsmasqConf } from "../../src/plan/dnsmasq.ts";
import { assertGolden, assertNoUnusedGoldens } from "../lib/golden.ts";
const MACHINE_ID = "5f2b8c9d0e1a4b3c8d7e6f5a4b3c2d1e";

const DIR = new URL("./isolation", import.meta.url).pathname;

function cidr(text: string): Subnet {
  const s = parseCidr(text);
  if ("kind" in s) throw new Error(text);
  return s;
}

Deno.test("golden: an isolated unit's tables in its namespace and on the host, its dnsmasq", async (t) => {
  const used = new Set<string>();
  for (const fence of ["internet", "strict"] as const) {
    await t.step(`GUEST_FENCE=${fence}`, () => {
      const unit = unitIdentity("lab1", MACHINE_ID);
      const runtime = parseRuntimeConf(
        "/etc/aos-unit/units/lab1/runtime.conf",
        `DHCP_CIDR=10.0.0.0/24\nGUEST_FENCE=${fence}\n`,
      ).config;
      const network = planNetwork(runtime, unit);
      const iso = planIsolation(
        { namespace: unit.namespace!, hostLink: unit.hostLink! },
        cidr(network.cidr),
        cidr("172.30.4.0/23"),
      );
      const nodes = [
        { name: "main", mac: unit.node("main").mac, ip: "10.0.0.100", address: "10.0.0.100" },
        {
          name: "secondary",
          mac: unit.node("secondary").mac,
          ip: undefined,
          address: "10.0.0.129",
        },
      ];
      const guards = nodes.map((n) => ({ tap: unit.node(n.name).tap, mac: n.mac, ip: n.address }));
      assertGolden(
        `${DIR}/${fence}.unit.nft`,
        nftRuleset(unit.nftTable, network, guards, [iso.unitLink], [], {
          link: iso.unitLink,
          mapped: iso.mapped,
          inner: iso.inner,
          dnsAddress: iso.dnsAddress,
        }),
        used,
      );
      const forwards = [
        { node: "main", nodeIp: mappedAddress(iso, "10.0.0.100"), host: 18089, port: 8089 },
        { node: "main", nodeIp: mappedAddress(iso, "10.0.0.100"), host: 2201, port: 22 },
      ].map((f) => ({ ...f, proto: "tcp" as const }));
      assertGolden(
        `${DIR}/${fence}.link.nft`,
        linkRuleset({
          table: unit.nftTable,
          iso,
          uplinks: ["eth0"],
          forwards,
          guestFence: fence,
        }),
        used,
      );
      if (fence === "internet") {
        assertGolden(
          `${DIR}/internet.dnsmasq.conf`,
          dnsmasqConf({
            network,
            nodes: nodes.map((n) => ({ ...n, hostAddress: mappedAddress(iso, n.address) })),
            leaseFile: "/var/lib/aos-units/lab1/dhcp/dnsmasq.leases",
            user: unit.dnsmasqUser,
          }),
          used,
        );
      }
    });
  }
  await t.step("no unused golden files", () => assertNoUnusedGoldens(DIR, used));
});
