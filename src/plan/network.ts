/** The unit's network, derived from one CIDR and the machine-id. */

import type { RuntimeConfig } from "../base/config_types.ts";
import type { UnitIdentity } from "../base/unit_identity.ts";
import {
  bridgeAddress,
  broadcastOf,
  dhcpPool,
  formatCidr,
  formatIpv4,
  netmaskOf,
} from "../base/ipv4.ts";

export { bridgeAddress, dhcpPool, type Pool } from "../base/ipv4.ts";

/** The guests' DNS domain, the same in every unit: inside one, a node is NODE.aos-unit. */
export const DOMAIN = "aos-unit";

export interface NetworkPlan {
  bridge: string;
  bridgeMac: string;
  /** e.g. 10.200.1.0/24 */
  cidr: string;
  prefix: number;
  netmask: string;
  network: string;
  broadcast: string;
  bridgeIp: string;
  poolStart: string;
  poolEnd: string;
  dnsPort: number;
  upstreamDns: string;
  domain: string;
  internetInterface: string | undefined;
  guestFence: "internet" | "strict";
}

/** The network of the unit with this record (its bridge) and runtime configuration. */
export function planNetwork(
  runtime: RuntimeConfig,
  unit: Pick<UnitIdentity, "bridge" | "bridgeMac">,
): NetworkPlan {
  const { subnet } = runtime;
  const pool = dhcpPool(subnet);
  return {
    bridge: unit.bridge,
    bridgeMac: unit.bridgeMac,
    cidr: formatCidr(subnet),
    prefix: subnet.prefix,
    netmask: netmaskOf(subnet.prefix),
    network: formatIpv4(subnet.network),
    broadcast: formatIpv4(broadcastOf(subnet)),
    bridgeIp: formatIpv4(bridgeAddress(subnet)),
    poolStart: formatIpv4(pool.start),
    poolEnd: formatIpv4(pool.end),
    dnsPort: runtime.dnsPort,
    upstreamDns: runtime.upstreamDns,
    domain: DOMAIN,
    internetInterface: runtime.internetInterface,
    guestFence: runtime.guestFence,
  };
}
