/**
 * Where each node lives on the unit's subnet (pure): its reservation, or a stable
 * place in the DHCP pool. A dynamic node keeps the address it holds (a lease from
 * before, within the pool and not claimed by another node); otherwise it gets the
 * first free pool address from a slot derived from its name. Every node then has
 * exactly one address, which dnsmasq hands out (dhcp-host) and the layer-2 guard
 * lets it use: no guest roams the pool, takes a peer's address or exhausts it.
 */

import { md5Hex } from "../base/hash.ts";
import type { NodeConfig, RuntimeConfig } from "../base/config_types.ts";
import { dhcpPool, formatIpv4, parseIpv4 } from "../base/ipv4.ts";

function slot(name: string, size: number): number {
  return parseInt(md5Hex(`aos-unit pool ${name}`).slice(0, 8), 16) %
    size;
}

/**
 * @param leases the address each MAC holds now (lease records), by MAC
 * @param macs each node's MAC, by node name
 * @returns each node's address, by node name (pool addresses only for nodes without ip)
 */
export function nodeAddresses(
  runtime: RuntimeConfig,
  nodes: readonly NodeConfig[],
  macs: ReadonlyMap<string, string>,
  leases: Readonly<Record<string, string>> = {},
): Map<string, string> {
  const pool = dhcpPool(runtime.subnet);
  const size = pool.end - pool.start + 1;
  const taken = new Set(nodes.flatMap((n) => (n.ip ? [parseIpv4(n.ip)!] : [])));
  const out = new Map<string, string>();
  for (const n of nodes) if (n.ip) out.set(n.name, n.ip);
  for (const n of nodes) {
    if (n.ip) continue;
    const held = parseIpv4(leases[macs.get(n.name) ?? ""] ?? "");
    let chosen = held !== undefined && held >= pool.start && held <= pool.end && !taken.has(held)
      ? held
      : undefined;
    for (let i = 0; chosen === undefined && i < size; i++) {
      const candidate = pool.start + (slot(n.name, size) + i) % size;
      if (!taken.has(candidate)) chosen = candidate;
    }
    // Validation guarantees the pool holds every dynamic node.
    if (chosen === undefined) throw new Error(`no pool address left for ${n.name}`);
    taken.add(chosen);
    out.set(n.name, formatIpv4(chosen));
  }
  return out;
}
