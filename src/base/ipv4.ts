/** IPv4 addresses as unsigned 32-bit numbers, and the subnet arithmetic aos-unit needs. */

const OCTET = /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$/;

/** Parses dotted-quad IPv4 (no leading zeros, exactly four octets); undefined if malformed. */
export function parseIpv4(text: string): number | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    if (!OCTET.test(part)) return undefined;
    value = value * 256 + Number(part);
  }
  return value;
}

/** Formats a 32-bit number as dotted-quad IPv4. */
export function formatIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join(".");
}

/** An IPv4 subnet. `network` has no host bits set. */
export interface Subnet {
  network: number;
  prefix: number;
}

export type CidrProblem =
  | { kind: "malformed" }
  | { kind: "prefix"; prefix: number }
  | { kind: "host-bits"; network: string };

export const MIN_PREFIX = 8;
export const MAX_PREFIX = 30;

/**
 * Parses `A.B.C.D/N` with N in 8..30 and no host bits set.
 * @returns the subnet, or the reason it was rejected
 */
export function parseCidr(text: string): Subnet | CidrProblem {
  const match = /^([0-9.]+)\/([0-9]{1,2})$/.exec(text);
  const address = match?.[1] === undefined ? undefined : parseIpv4(match[1]);
  if (!match?.[2] || address === undefined) return { kind: "malformed" };
  const prefix = Number(match[2]);
  if (prefix < MIN_PREFIX || prefix > MAX_PREFIX) return { kind: "prefix", prefix };
  const network = address - (address % subnetSize(prefix));
  if (network !== address) {
    return { kind: "host-bits", network: `${formatIpv4(network)}/${prefix}` };
  }
  return { network, prefix };
}

/** Number of addresses in a subnet of this prefix length. */
export function subnetSize(prefix: number): number {
  return 2 ** (32 - prefix);
}

export function broadcastOf(subnet: Subnet): number {
  return subnet.network + subnetSize(subnet.prefix) - 1;
}

export function netmaskOf(prefix: number): string {
  return formatIpv4(2 ** 32 - subnetSize(prefix));
}

export function contains(subnet: Subnet, address: number): boolean {
  return address >= subnet.network && address <= broadcastOf(subnet);
}

export function formatCidr(subnet: Subnet): string {
  return `${formatIpv4(subnet.network)}/${subnet.prefix}`;
}

/** True when two subnets share any address. */
export function overlaps(a: Subnet, b: Subnet): boolean {
  return a.network <= broadcastOf(b) && b.network <= broadcastOf(a);
}

export interface Pool {
  start: number;
  end: number;
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
