/**
 * What a node's base image says about its own network: the systemd-networkd
 * file it configures its interface with, and the names it expects in
 * /etc/hosts. The stock AosCore images (meta-aos-vm v5.2.2 and v6) put main at
 * a static 10.0.0.100/24 with gateway and DNS 10.0.0.1 (v6: DNS 10.0.0.100,
 * main's own dnsmasq), and let secondaries take DHCP and find main through
 * /etc/hosts (v5) or DNS=10.0.0.100 (v6). Parsers here are pure; reading the
 * image is host/image/.
 */

import { parseIpv4 } from "./ipv4.ts";

export interface ImageNetwork {
  /** The file inside the image these facts come from, for messages. */
  source: string;
  /** Address= of the [Network] (or first [Address]) section: a static address. */
  address?: { ip: string; prefix: number };
  gateway?: string;
  dns: string[];
  dhcp: boolean;
  /** /etc/hosts: lower-case name -> address (IPv4 only). */
  hosts: Record<string, string>;
}

/** `[Section]` -> key -> values, in file order (networkd allows a key several times). */
export function parseUnitFile(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const header = /^\[([^\]]+)\]$/.exec(line);
    if (header) {
      current = sections.get(header[1]!) ?? new Map();
      sections.set(header[1]!, current);
      continue;
    }
    const eq = line.indexOf("=");
    if (!current || eq < 0) continue;
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    current.set(key, [...(current.get(key) ?? []), value]);
  }
  return sections;
}

function ipv4Cidr(text: string): { ip: string; prefix: number } | undefined {
  const m = /^([0-9.]+)\/([0-9]{1,2})$/.exec(text);
  if (!m || parseIpv4(m[1]!) === undefined || Number(m[2]) > 32) return undefined;
  return { ip: m[1]!, prefix: Number(m[2]) };
}

/** True when a [Match] Name= pattern can match the guest's first NIC (en*, eth*, any). */
export function matchesWiredNic(sections: Map<string, Map<string, string[]>>): boolean {
  const names = sections.get("Match")?.get("Name")?.flatMap((v) => v.split(/\s+/)) ?? [];
  if (names.length === 0) return true;
  return names.some((n) => /^(en|eth|\*)/.test(n));
}

/** The network facts of one .network file (IPv4 only; IPv6 entries are ignored). */
export function parseNetworkFile(
  source: string,
  text: string,
): Omit<ImageNetwork, "hosts"> {
  const sections = parseUnitFile(text);
  const network = sections.get("Network") ?? new Map<string, string[]>();
  const addresses = [
    ...(network.get("Address") ?? []),
    ...(sections.get("Address")?.get("Address") ?? []),
  ].map(ipv4Cidr).filter((a) => a !== undefined);
  const gateways = [
    ...(network.get("Gateway") ?? []),
    ...(sections.get("Route")?.get("Gateway") ?? []),
  ].filter((g) => parseIpv4(g) !== undefined);
  const dns = (network.get("DNS") ?? []).flatMap((v) => v.split(/\s+/)).filter((d) =>
    parseIpv4(d) !== undefined
  );
  const dhcp = (network.get("DHCP") ?? []).some((v) => /^(yes|true|ipv4|both|1|on)$/i.test(v));
  return {
    source,
    ...(addresses[0] ? { address: addresses[0] } : {}),
    ...(gateways[0] ? { gateway: gateways[0] } : {}),
    dns,
    dhcp,
  };
}

/** hosts(5): lower-case name -> IPv4 address (the first line naming it wins). */
export function parseHosts(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split("\n")) {
    const [address, ...names] = raw.replace(/#.*/, "").trim().split(/\s+/);
    if (!address || parseIpv4(address) === undefined || address.startsWith("127.")) continue;
    for (const name of names) out[name.toLowerCase()] ??= address;
  }
  return out;
}
