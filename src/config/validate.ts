/** Checks that need both files: node addresses against the subnet, MAC collisions, pool size. */

import type { Diagnostic } from "../base/errors.ts";
import { duplicateForwards } from "./forwards.ts";
import { nodeMac } from "../base/unit_identity.ts";
import {
  bridgeAddress,
  broadcastOf,
  contains,
  dhcpPool,
  formatCidr,
  formatIpv4,
  parseIpv4,
} from "../base/ipv4.ts";
import type {
  NodeConfig,
  RuntimeConfig,
  SourceLocation,
  UnitConfig,
} from "../base/config_types.ts";

export function crossCheck(
  runtime: RuntimeConfig,
  unit: UnitConfig,
  ipAt: Map<NodeConfig, SourceLocation>,
  subnetValid: boolean,
): Diagnostic[] {
  const out: Diagnostic[] = [];
  const { subnet } = runtime;
  const cidr = formatCidr(subnet);
  const pool = dhcpPool(subnet);
  const reserved = new Map<number, NodeConfig>();

  for (const node of unit.nodes) {
    const where = ipAt.get(node) ?? node.at;
    const err = (message: string) => out.push({ severity: "error", ...where, message });
    if (node.ip !== undefined && subnetValid) {
      const ip = parseIpv4(node.ip)!;
      if (!contains(subnet, ip)) {
        err(
          `ip ${node.ip} of node "${node.name}" is outside the unit's subnet ${cidr}; change the ip or DHCP_CIDR in ${runtime.file}`,
        );
      } else if (ip === subnet.network) {
        err(`ip ${node.ip} of node "${node.name}" is the network address of ${cidr}`);
      } else if (ip === broadcastOf(subnet)) {
        err(`ip ${node.ip} of node "${node.name}" is the broadcast address of ${cidr}`);
      } else if (ip === bridgeAddress(subnet)) {
        err(
          `ip ${node.ip} of node "${node.name}" is the bridge's own address (the guests' gateway)`,
        );
      } else if (reserved.has(ip)) {
        err(`ip ${node.ip} is reserved twice: for "${reserved.get(ip)!.name}" and "${node.name}"`);
      } else {
        reserved.set(ip, node);
        if (ip >= pool.start && ip <= pool.end) {
          out.push({
            severity: "warning",
            ...where,
            message: `ip ${node.ip} of node "${node.name}" is inside the dynamic pool ${
              formatIpv4(pool.start)
            }-${formatIpv4(pool.end)}; addresses below ${
              formatIpv4(pool.start)
            } never collide with dynamic leases`,
          });
        }
      }
    }
    if (node.arch === "aarch64" && node.uefi === false) {
      out.push({
        severity: "error",
        ...node.at,
        message:
          `Node "${node.name}" is aarch64 with uefi: false; aarch64 "virt" guests boot only through UEFI (AAVMF)`,
      });
    }
  }

  const macs = new Map<string, NodeConfig>();
  for (const node of unit.nodes) {
    const mac = nodeMac(node.name);
    const other = macs.get(mac);
    if (other && other.name.toLowerCase() !== node.name.toLowerCase()) {
      out.push({
        severity: "error",
        ...node.at,
        message:
          `Nodes "${other.name}" and "${node.name}" hash to the same MAC ${mac}; rename one of them`,
      });
    }
    macs.set(mac, node);
  }

  out.push(...duplicateForwards(unit.nodes));

  const dynamic = unit.nodes.filter((n) => n.ip === undefined);
  const poolSize = pool.end - pool.start + 1;
  if (subnetValid && dynamic.length > poolSize) {
    const first = dynamic[poolSize]!;
    out.push({
      severity: "error",
      ...first.at,
      message:
        `${dynamic.length} nodes need a dynamic address but the pool of ${cidr} holds only ${poolSize}; use a larger DHCP_CIDR or give nodes an ip`,
    });
  }
  return out;
}
