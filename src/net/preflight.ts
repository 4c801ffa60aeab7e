/**
 * Checks made before anything is created, so a conflict leaves nothing half-made:
 * the subnet against the host's routes and addresses, the bridge name against
 * existing links, the DNS port against listeners.
 */

import { ConfigError, RuntimeError } from "../errors.ts";
import type { Diagnostic } from "../errors.ts";
import { overlaps, parseCidr, parseIpv4, type Subnet } from "../plan/ipv4.ts";
import type { NetworkPlan } from "../plan/network.ts";
import { type AddrInfo, isOurs, type LinkInfo, type RouteInfo } from "./links.ts";

export interface HostNetwork {
  links: LinkInfo[];
  addresses: AddrInfo[];
  routes: RouteInfo[];
}

/** Where DHCP_CIDR came from, for a message that points at it. */
export type CidrOrigin = Pick<Diagnostic, "file" | "line" | "column">;

export function checkSubnetFree(net: NetworkPlan, host: HostNetwork, origin: CidrOrigin): void {
  const ours = parseCidr(net.cidr) as Subnet;
  const conflicts: string[] = [];
  for (const route of host.routes) {
    if (route.dst === "default" || route.dev === net.bridge) continue;
    const dst = parseCidr(route.dst.includes("/") ? route.dst : `${route.dst}/32`);
    const subnet = "kind" in dst ? fallbackSubnet(route.dst) : dst;
    if (subnet && overlaps(ours, subnet)) {
      conflicts.push(`route ${route.dst} via ${route.dev ?? "?"}`);
    }
  }
  for (const link of host.addresses) {
    if (link.ifname === net.bridge) continue;
    for (const a of link.addr_info) {
      const ip = parseIpv4(a.local);
      if (ip !== undefined && overlaps(ours, { network: ip, prefix: 32 })) {
        conflicts.push(`address ${a.local}/${a.prefixlen} on ${link.ifname}`);
      }
    }
  }
  if (conflicts.length > 0) {
    throw new ConfigError([{
      severity: "error",
      ...origin,
      message: `DHCP_CIDR ${net.cidr} overlaps the host's ${
        [...new Set(conflicts)].join(", ")
      }; choose a free subnet in runtime.conf`,
    }]);
  }
}

/** Routes like 10.0.0.0/8 parse fine; host routes and odd prefixes need a looser parse. */
function fallbackSubnet(dst: string): Subnet | undefined {
  const [address, prefix] = dst.split("/");
  const ip = address === undefined ? undefined : parseIpv4(address);
  if (ip === undefined) return undefined;
  const p = prefix === undefined ? 32 : Number(prefix);
  const size = 2 ** (32 - p);
  return { network: ip - (ip % size), prefix: p };
}

export function checkBridgeName(net: NetworkPlan, host: HostNetwork): LinkInfo | undefined {
  const existing = host.links.find((l) => l.ifname === net.bridge);
  if (existing && !isOurs(existing)) {
    throw new ConfigError(
      [],
      `Cannot create bridge ${net.bridge}: a ${
        existing.linkinfo?.info_kind ?? "network"
      } link with that name exists and was not created by aos-unit (remove it: ip link delete ${net.bridge})`,
    );
  }
  return existing;
}

/**
 * Wildcard listeners on the port, from `ss -Hlnut` output. One on the bridge
 * address itself can only be our own dnsmasq, so it does not count.
 */
export function wildcardListeners(ssOutput: string, port: number): string[] {
  return ssOutput.split("\n").map((l) => l.trim().split(/\s+/)).filter((f) => {
    const local = f[4] ?? "";
    return /^(0\.0\.0\.0|\*|\[::\]|\[::ffff:0\.0\.0\.0\]):/.test(local) &&
      local.endsWith(`:${port}`);
  }).map((f) => `${f[0]} ${f[4]}`);
}

export function checkDnsPortFree(net: NetworkPlan, ssOutput: string): void {
  const busy = wildcardListeners(ssOutput, net.dnsPort);
  if (busy.length > 0) {
    throw new RuntimeError(
      `Cannot use DNS port ${net.dnsPort}: another program already listens on it (${
        busy.join(", ")
      })`,
      {
        hint:
          `find it with: ss -lunpt 'sport = :${net.dnsPort}'; or set DNS_ALT_PORT in runtime.conf`,
      },
    );
  }
}

interface NftChain {
  family: string;
  table: string;
  name: string;
  hook?: string;
  policy?: string;
}

/**
 * Other tables' input/forward chains that drop by default. An accept in
 * aos-unit's own table does not override a drop in another table (nftables
 * ends only the base chain it is in), so those rules need an exception there:
 * the commands to add one are part of the warning. Docker's iptables FORWARD
 * policy DROP shows up here too (as table ip filter).
 */
export function foreignDropPolicies(nftChainsJson: string, net: NetworkPlan): string[] {
  let chains: NftChain[] = [];
  try {
    chains = (JSON.parse(nftChainsJson) as { nftables: { chain?: NftChain }[] }).nftables
      .flatMap((o) => (o.chain ? [o.chain] : []));
  } catch {
    return [];
  }
  const br = net.bridge;
  return chains.filter((c) =>
    c.table !== "aos_unit" && c.policy === "drop" && (c.hook === "input" || c.hook === "forward")
  ).map((c) => {
    const where = `${c.family} ${c.table} ${c.name}`;
    const fix = c.hook === "input"
      ? `nft insert rule ${where} iifname "${br}" udp dport { 67, ${net.dnsPort} } accept; ` +
        `nft insert rule ${where} iifname "${br}" tcp dport ${net.dnsPort} accept`
      : c.table === "filter" && c.name === "FORWARD"
      ? `iptables -I DOCKER-USER -i ${br} -j ACCEPT; iptables -I DOCKER-USER -o ${br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT` +
        ` (or: iptables -I FORWARD -i ${br} -j ACCEPT; iptables -I FORWARD -o ${br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT)`
      : `nft insert rule ${where} iifname "${br}" accept; nft insert rule ${where} oifname "${br}" ct state established,related accept`;
    return `Chain ${where} drops ${
      c.hook === "input" ? "incoming" : "forwarded"
    } packets by default, ` +
      `which ${
        c.hook === "input" ? "blocks the guests' DHCP and DNS" : "cuts the guests off the internet"
      }; allow them with: ${fix}`;
  });
}
