/**
 * The unit's plan against what the nodes' own images expect (pure): a stock
 * AosCore main configures itself statically and never asks DHCP, so a plan
 * that puts it elsewhere can never reach it, and secondaries look for main at
 * the address in their /etc/hosts. A disagreement is a configuration error at
 * the config line, with the exact change that fixes it. Images without facts
 * (unreadable, or configuring nothing) get no opinion.
 */

import type { Config, NodeConfig, SourceLocation } from "../base/config_types.ts";
import type { Diagnostic } from "../base/errors.ts";
import type { ImageNetwork } from "../base/image_network.ts";
import {
  bridgeAddress,
  contains,
  formatCidr,
  formatIpv4,
  parseIpv4,
  subnetSize,
} from "../base/ipv4.ts";

export interface ImageFacts {
  node: NodeConfig;
  /** The image file the node boots (for messages). */
  image: string;
  network: ImageNetwork;
}

function error(at: SourceLocation, message: string, fix: string): Diagnostic {
  return { severity: "error", ...at, message: `${message}; ${fix}`, check: "image-network", fix };
}

/** The /24 (or whatever prefix) an address sits in, and its first address. */
function subnetOf(ip: string, prefix: number): { cidr: string; first: string } {
  const n = parseIpv4(ip)!;
  const network = n - (n % subnetSize(prefix));
  return { cidr: formatCidr({ network, prefix }), first: formatIpv4(network + 1) };
}

/** A node whose image configures a static address. */
function staticAddress(config: Config, f: ImageFacts): Diagnostic[] {
  const { node, image, network } = f;
  const address = network.address!;
  const subnet = config.runtime.subnet;
  const cidr = formatCidr(subnet);
  const gateway = formatIpv4(bridgeAddress(subnet));
  const via = network.gateway ? ` via ${network.gateway}` : "";
  const what =
    `Node "${node.name}": its image ${image} configures itself as ${address.ip}/${address.prefix}${via} (${network.source})`;
  const at = node.ipAt ?? node.at;
  const ip = parseIpv4(address.ip)!;
  if (address.prefix !== subnet.prefix || !contains(subnet, ip)) {
    const own = subnetOf(address.ip, address.prefix);
    const routes = !network.gateway || network.gateway === own.first;
    return [error(
      at,
      `${what}, outside ${cidr}`,
      routes
        ? `set DHCP_CIDR="${own.cidr}" in ${config.runtime.file} and ip: ${address.ip}`
        : `its gateway is not the first address of ${own.cidr}, which aos-unit's bridge always is: change the image's ${network.source}`,
    )];
  }
  const out: Diagnostic[] = [];
  if (node.ip === undefined) {
    out.push(error(at, `${what}, but the node has no reserved address`, `set ip: ${address.ip}`));
  } else if (node.ip !== address.ip) {
    out.push(error(at, `${what}, not ${node.ip}`, `set ip: ${address.ip}`));
  }
  if (network.gateway && network.gateway !== gateway) {
    out.push(error(
      at,
      `${what}, but the unit's gateway (the bridge, network + 1) is ${gateway}`,
      `change the image's gateway to ${gateway}`,
    ));
  }
  return out;
}

/** Other nodes of the unit named in a node's /etc/hosts must be reserved at that address. */
function expectedPeers(config: Config, f: ImageFacts, all: readonly ImageFacts[]): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const [name, ip] of Object.entries(f.network.hosts)) {
    const peer = config.unit.nodes.find((n) => n.name.toLowerCase() === name);
    if (!peer || peer === f.node || peer.ip === ip) continue;
    // The peer's own image already says so: one message per problem.
    const own = all.find((o) => o.node === peer)?.network.address?.ip;
    if (own === ip) continue;
    const inSubnet = contains(config.runtime.subnet, parseIpv4(ip)!);
    out.push(error(
      peer.ipAt ?? peer.at,
      `Node "${peer.name}": the image of node "${f.node.name}" (${f.image}) expects it at ${ip} (/etc/hosts), but it is ${
        peer.ip ? `reserved at ${peer.ip}` : "not reserved"
      }`,
      inSubnet
        ? `set ip: ${ip}`
        : `set DHCP_CIDR="${subnetOf(ip, 24).cidr}" in ${config.runtime.file} and ip: ${ip}`,
    ));
  }
  return out;
}

/**
 * Every disagreement between the plan and the images.
 * @returns errors (check "image-network"), each at the line to change
 */
export function checkImageNetworks(config: Config, facts: readonly ImageFacts[]): Diagnostic[] {
  return facts.flatMap((f) => [
    ...(f.network.address ? staticAddress(config, f) : []),
    ...expectedPeers(config, f, facts),
  ]);
}
