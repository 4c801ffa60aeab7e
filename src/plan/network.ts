/** The unit's network, derived from one CIDR and the machine-id. */

import type { RuntimeConfig } from "../config/types.ts";
import { bridgeMac, bridgeName } from "./identity.ts";
import { broadcastOf, formatCidr, formatIpv4, netmaskOf, type Subnet, subnetSize } from "./ipv4.ts";

export const DOMAIN = "aos-unit";

export interface Pool {
  start: number;
  end: number;
}

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
}

/** network + 1: the host's address on the bridge, the guests' router and DNS server. */
export function bridgeAddress(subnet: Subnet): number {
  return subnet.network + 1;
}

/**
 * The dynamic DHCP pool: from the middle of the subnet (network + size/2) to
 * broadcast - 1. A /24 gives .128-.254; a /30 gives just .2. Addresses below the
 * pool (network + 2 up to the middle - 1) are left for static reservations.
 */
export function dhcpPool(subnet: Subnet): Pool {
  const size = subnetSize(subnet.prefix);
  return {
    start: Math.max(subnet.network + size / 2, bridgeAddress(subnet) + 1),
    end: broadcastOf(subnet) - 1,
  };
}

export function planNetwork(runtime: RuntimeConfig, machineId: string): NetworkPlan {
  const { subnet } = runtime;
  const pool = dhcpPool(subnet);
  return {
    bridge: bridgeName(machineId),
    bridgeMac: bridgeMac(machineId),
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
  };
}
