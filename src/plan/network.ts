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
  /** The unit's mark on its bridge (base/unit_identity.ts, owner): "aos-unit", "aos-unit@NAME". */
  owner: string;
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
  /** The guests' domain, the same in every unit (aos-unit). */
  domain: string;
  /**
   * The domain the host resolves the unit's nodes in (resolved routes it to the unit's
   * dnsmasq): the guests' own for the default unit, NAME.aos-unit for unit NAME.
   */
  hostDomain: string;
  internetInterface: string | undefined;
  guestFence: "internet" | "strict";
}

/** The network of the unit with this record (its bridge) and runtime configuration. */
export function planNetwork(
  runtime: RuntimeConfig,
  unit: Pick<UnitIdentity, "bridge" | "bridgeMac" | "dnsDomain" | "owner">,
): NetworkPlan {
  const { subnet } = runtime;
  const pool = dhcpPool(subnet);
  return {
    bridge: unit.bridge,
    bridgeMac: unit.bridgeMac,
    owner: unit.owner,
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
    hostDomain: unit.dnsDomain,
    internetInterface: runtime.internetInterface,
    guestFence: runtime.guestFence,
  };
}
