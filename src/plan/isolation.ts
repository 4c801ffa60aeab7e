/**
 * A named unit's isolated network: its bridge, taps, dnsmasq and nft tables live in a
 * network namespace of its own, so units with identical subnets (the stock images' fixed
 * 10.0.0.0/24) run side by side. Pure: the planner's half; net/isolation.ts applies it.
 *
 *     host namespace                         |  namespace aos-unit-NAME
 *                                            |
 *     uplinks <-- masquerade -- aosvXXXXXX ===== uplink -- masquerade -- bridge -- taps
 *                               T+1/30       |  T+2/30                    10.0.0.1/24
 *     route MAPPED/24 via T+2                |  MAPPED/24 -> 10.0.0.0/24 (prefix NAT)
 *     resolved: ~NAME.aos-unit at MAPPED+1   |  MAPPED+1:53 -> dnsmasq on the bridge
 *
 * The host sees the unit's subnet at MAPPED, a stand-in of the same size: node 10.0.0.100
 * is MAPPED+100 (main.NAME.aos-unit), and each declared forward leads there. The unit's
 * host block holds MAPPED (its lower half) and the transfer net T (the first /30 of its
 * upper half); it comes from the pool, at a slot derived from the unit's name and free on
 * this host (clear of its routes in every table and its addresses).
 */

import { md5Hex } from "../base/hash.ts";
import {
  contains,
  formatCidr,
  formatIpv4,
  overlaps,
  parseCidr,
  parseIpv4,
  type Subnet,
  subnetSize,
} from "../base/ipv4.ts";

/**
 * Where a unit's host block comes from: the top of Docker's default pools (its 14th and
 * 15th networks); a block is only taken clear of the host's routes and addresses.
 */
export const HOST_POOL = "172.30.0.0/15";

/** The unit's end of its link, inside its namespace. */
export const UNIT_LINK = "uplink";

/** The transfer net between the host and the unit's namespace. */
export const TRANSFER_PREFIX = 30;

/** What the host side of an isolated unit looks like. */
export interface Isolation {
  /** The namespace (ip-netns(8) name) and its path, which the unit's services join. */
  namespace: string;
  namespacePath: string;
  /** The link's end in the host's namespace (the unit's mark is on it) and in the unit's. */
  hostLink: string;
  unitLink: string;
  /** The unit's host block: MAPPED and the transfer net. */
  block: string;
  /** The unit's subnet as the host sees it. */
  mapped: string;
  /** The unit's own subnet, inside its namespace. */
  inner: string;
  /** The transfer net and its two ends. */
  transfer: string;
  hostAddress: string;
  unitAddress: string;
  /** Where the host asks the unit's dnsmasq: the bridge address, mapped. */
  dnsAddress: string;
}

/** The prefix length of a unit's host block: twice its subnet. */
export function hostBlockPrefix(inner: Subnet): number {
  return inner.prefix - 1;
}

function parsed(text: string): Subnet {
  const s = parseCidr(text);
  if ("kind" in s) throw new Error(`not a CIDR: ${text}`);
  return s;
}

/**
 * The unit's host block: the first slot of the pool, from one derived from the unit's name
 * on, that overlaps nothing taken (the host's addresses and routes, other units' blocks).
 * The same name on the same host gets the same block while it stays free.
 * @returns undefined when the pool cannot hold it or every slot is taken
 */
export function chooseHostBlock(
  name: string,
  inner: Subnet,
  taken: readonly Subnet[],
  pool: Subnet = parsed(HOST_POOL),
): Subnet | undefined {
  const prefix = hostBlockPrefix(inner);
  if (prefix < pool.prefix) return undefined;
  const slots = subnetSize(pool.prefix) / subnetSize(prefix);
  const first = parseInt(md5Hex(`aos-unit ${name}`).slice(0, 8), 16) %
    slots;
  for (let i = 0; i < slots; i++) {
    const block = { network: pool.network + ((first + i) % slots) * subnetSize(prefix), prefix };
    if (!taken.some((t) => overlaps(t, block))) return block;
  }
  return undefined;
}

/** The isolated network of a unit with these names, subnet and host block. */
export function planIsolation(
  names: { namespace: string; hostLink: string },
  inner: Subnet,
  block: Subnet,
): Isolation {
  const half = subnetSize(inner.prefix);
  const transfer = { network: block.network + half, prefix: TRANSFER_PREFIX };
  return {
    namespace: names.namespace,
    namespacePath: `/run/netns/${names.namespace}`,
    hostLink: names.hostLink,
    unitLink: UNIT_LINK,
    block: formatCidr(block),
    mapped: formatCidr({ network: block.network, prefix: inner.prefix }),
    inner: formatCidr(inner),
    transfer: formatCidr(transfer),
    hostAddress: formatIpv4(transfer.network + 1),
    unitAddress: formatIpv4(transfer.network + 2),
    dnsAddress: formatIpv4(block.network + 1),
  };
}

/** The address the host sees for `address` inside the unit (its place in MAPPED). */
export function mappedAddress(iso: Isolation, address: string): string {
  const inner = parsed(iso.inner);
  const value = parseIpv4(address);
  if (value === undefined || !contains(inner, value)) {
    throw new Error(`${address} is not in the unit's subnet ${iso.inner}`);
  }
  return formatIpv4(parsed(iso.mapped).network + (value - inner.network));
}

/**
 * A named unit's isolated network (undefined for the default unit, which keeps the host's
 * network): the block it holds now while that is still free, or else the first free slot
 * from its name. @returns why none fits, as a message, when the pool has no room
 */
export function planUnitIsolation(
  unit: { name: string | undefined; namespace: string | undefined; hostLink: string | undefined },
  inner: Subnet,
  facts: { takenSubnets?: readonly string[]; hostBlock?: string },
): Isolation | string | undefined {
  if (unit.name === undefined || !unit.namespace || !unit.hostLink) return undefined;
  // The unit's own subnet too: its link inside its bridge's subnet would not route.
  const taken = [
    inner,
    ...(facts.takenSubnets ?? []).flatMap((t) => {
      const s = parseCidr(t);
      return "kind" in s ? [] : [s];
    }),
  ];
  const held = facts.hostBlock === undefined ? undefined : parseCidr(facts.hostBlock);
  // The record is the service user's file: a block outside the pool is never taken from it.
  const pool = parsed(HOST_POOL);
  const keep = held && !("kind" in held) && held.prefix === hostBlockPrefix(inner) &&
      contains(pool, held.network) && !taken.some((t) => overlaps(t, held))
    ? held
    : undefined;
  const block = keep ?? chooseHostBlock(unit.name, inner, taken);
  if (!block) {
    return `no free /${hostBlockPrefix(inner)} in ${HOST_POOL} for unit ${unit.name}'s link to ` +
      `the host (twice DHCP_CIDR ${formatCidr(inner)}): use a smaller DHCP_CIDR`;
  }
  return planIsolation({ namespace: unit.namespace, hostLink: unit.hostLink }, inner, block);
}
