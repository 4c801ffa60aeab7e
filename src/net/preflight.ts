/**
 * Checks made before anything is created, so a conflict leaves nothing half-made:
 * the subnet against the host's routes and addresses, the bridge name against
 * existing links, the DNS port against listeners, other tables' drop policies.
 * Each returns a structured Problem (check, message, fix): the broker raises it,
 * `aos-unit doctor` renders it, and neither re-parses the other's text.
 */

import { ConfigError, type Problem, RuntimeError, UsageError } from "../base/errors.ts";
import type { Diagnostic } from "../base/errors.ts";
import { overlaps, parseCidr, parseIpv4, type Subnet } from "../base/ipv4.ts";
import type { NetworkPlan } from "../plan/network.ts";
import { isUnitTable } from "../base/unit_identity.ts";
import { type AddrInfo, isOurs, type LinkInfo, type RouteInfo } from "./links.ts";

export interface HostNetwork {
  links: LinkInfo[];
  addresses: AddrInfo[];
  routes: RouteInfo[];
}

/**
 * What the host says of another unit's bridge: the unit and its runtime.conf (where its
 * DHCP_CIDR is), from the owner's mark on the bridge; undefined for any other link.
 */
export type UnitOfLink = (link: LinkInfo) => string | undefined;

/** Where DHCP_CIDR came from, for a message that points at it. */
export type CidrOrigin = Pick<Diagnostic, "file" | "line" | "column">;

/** The host's routes and addresses that overlap the unit's subnet. */
export function subnetConflicts(
  net: NetworkPlan,
  host: HostNetwork,
  unitOf: UnitOfLink = () => undefined,
): string[] {
  const ours = parseCidr(net.cidr) as Subnet;
  const conflicts: string[] = [];
  // Another unit's bridge: name that unit and its configuration, not only the link.
  const owner = (dev: string | undefined) => {
    const link = host.links.find((l) => l.ifname === dev);
    const unit = link ? unitOf(link) : undefined;
    return unit ? ` (${unit})` : "";
  };
  for (const route of host.routes) {
    if (route.dst === "default" || route.dev === net.bridge) continue;
    const dst = parseCidr(route.dst.includes("/") ? route.dst : `${route.dst}/32`);
    const subnet = "kind" in dst ? fallbackSubnet(route.dst) : dst;
    if (subnet && overlaps(ours, subnet)) {
      conflicts.push(`route ${route.dst} via ${route.dev ?? "?"}${owner(route.dev)}`);
    }
  }
  for (const link of host.addresses) {
    if (link.ifname === net.bridge) continue;
    for (const a of link.addr_info) {
      const ip = parseIpv4(a.local);
      if (ip !== undefined && overlaps(ours, { network: ip, prefix: 32 })) {
        conflicts.push(`address ${a.local}/${a.prefixlen} on ${link.ifname}${owner(link.ifname)}`);
      }
    }
  }
  return [...new Set(conflicts)];
}

export function subnetProblem(
  net: NetworkPlan,
  host: HostNetwork,
  runtimeFile: string,
  unitOf?: UnitOfLink,
): Problem | undefined {
  const conflicts = subnetConflicts(net, host, unitOf);
  if (conflicts.length === 0) return undefined;
  return {
    check: "subnet",
    message: `DHCP_CIDR ${net.cidr} overlaps the host's ${conflicts.join(", ")}`,
    fix: `choose a free subnet: DHCP_CIDR="..." in ${runtimeFile}`,
  };
}

/**
 * @param needs why the subnet cannot simply move (e.g. "main's image configures itself as
 *   10.0.0.100/24"), when the nodes' images say so
 * @throws {ConfigError} at DHCP_CIDR when the subnet overlaps the host's networks
 */
export function checkSubnetFree(
  net: NetworkPlan,
  host: HostNetwork,
  origin: CidrOrigin,
  needs: readonly string[] = [],
  unitOf?: UnitOfLink,
): void {
  const problem = subnetProblem(net, host, origin.file, unitOf);
  if (!problem) return;
  const fix = needs.length > 0
    ? `; ${
      needs.join(", ")
    }: free ${net.cidr} on the host (or give those images other addresses and choose a free subnet in runtime.conf)`
    : "; choose a free subnet in runtime.conf";
  throw new ConfigError([{ severity: "error", ...origin, message: problem.message + fix }]);
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

/** A link of the bridge's name that aos-unit did not make. */
export function bridgeProblem(net: NetworkPlan, host: HostNetwork): Problem | undefined {
  const existing = host.links.find((l) => l.ifname === net.bridge);
  if (!existing || isOurs(existing, net.owner)) return undefined;
  return {
    check: "bridge",
    message: `Cannot create bridge ${net.bridge}: a ${
      existing.linkinfo?.info_kind ?? "network"
    } link with that name exists and was not created by aos-unit`,
    fix: `ip link delete ${net.bridge}`,
  };
}

/**
 * @returns the bridge aos-unit made earlier, if any
 * @throws {ConfigError} when a foreign link has the bridge's name
 */
export function checkBridgeName(net: NetworkPlan, host: HostNetwork): LinkInfo | undefined {
  const problem = bridgeProblem(net, host);
  if (problem) throw new UsageError(`${problem.message} (remove it: ${problem.fix})`);
  return host.links.find((l) => l.ifname === net.bridge);
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

export function dnsPortProblem(net: NetworkPlan, ssOutput: string): Problem | undefined {
  const busy = wildcardListeners(ssOutput, net.dnsPort);
  if (busy.length === 0) return undefined;
  return {
    check: "dns-port",
    message: `Cannot use DNS port ${net.dnsPort}: another program already listens on it (${
      busy.join(", ")
    })`,
    fix: `find it with: ss -lunpt 'sport = :${net.dnsPort}'; or set DNS_ALT_PORT in runtime.conf`,
  };
}

/**
 * @throws {RuntimeError} (permanent, exit 2: a restart would meet the same listener) when
 *   another program holds the DNS port on every address
 */
export function checkDnsPortFree(net: NetworkPlan, ssOutput: string): void {
  const problem = dnsPortProblem(net, ssOutput);
  if (problem) throw new RuntimeError(problem.message, { hint: problem.fix, permanent: true });
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
 * the commands to add one are the fix. Docker's iptables FORWARD policy DROP
 * shows up here too (as table ip filter).
 */
export function foreignDropPolicies(nftChainsJson: string, net: NetworkPlan): Problem[] {
  let chains: NftChain[] = [];
  try {
    chains = (JSON.parse(nftChainsJson) as { nftables: { chain?: NftChain }[] }).nftables
      .flatMap((o) => (o.chain ? [o.chain] : []));
  } catch {
    return [];
  }
  const br = net.bridge;
  return chains.filter((c) =>
    !isUnitTable(c.table) && c.policy === "drop" && (c.hook === "input" || c.hook === "forward")
  ).map((c) => {
    const where = `${c.family} ${c.table} ${c.name}`;
    const fix = c.hook === "input"
      ? `nft insert rule ${where} iifname "${br}" udp dport { 67, ${net.dnsPort} } accept; ` +
        `nft insert rule ${where} iifname "${br}" tcp dport ${net.dnsPort} accept`
      : c.table === "filter" && c.name === "FORWARD"
      ? `iptables -I DOCKER-USER -i ${br} -j ACCEPT; iptables -I DOCKER-USER -o ${br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT` +
        ` (or: iptables -I FORWARD -i ${br} -j ACCEPT; iptables -I FORWARD -o ${br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT)`
      : `nft insert rule ${where} iifname "${br}" accept; nft insert rule ${where} oifname "${br}" ct state established,related accept`;
    const message = `Chain ${where} drops ${
      c.hook === "input" ? "incoming" : "forwarded"
    } packets by default, which ${
      c.hook === "input" ? "blocks the guests' DHCP and DNS" : "cuts the guests off the internet"
    }`;
    return { check: "firewall", message, fix };
  });
}
