/** The unit's network, derived from one CIDR and the machine-id. */

import type { RuntimeConfig } from "../base/config_types.ts";
import { bridgeMac, bridgeName, DEFAULT_UNIT } from "../base/unit_identity.ts";
import {
  bridgeAddress,
  broadcastOf,
  dhcpPool,
  formatCidr,
  formatIpv4,
  netmaskOf,
} from "../base/ipv4.ts";

export { bridgeAddress, dhcpPool, type Pool } from "../base/ipv4.ts";

export const DOMAIN = DEFAULT_UNIT.dnsDomain;

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
    guestFence: runtime.guestFence,
  };
}
