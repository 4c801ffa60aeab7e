/**
 * aos-unit's nftables tables, applied as one file: each leading `table` +
 * `delete table` pair makes the replacement atomic whether or not the table
 * exists. Nothing outside these two tables is ever touched.
 *
 * - `inet aos_unit`: DNS redirect, DHCP/DNS on the bridge only, the guests'
 *   fence (like libvirt's NAT network) and the masquerade.
 * - `bridge aos_unit`: each tap may only send its own node's MAC, and its own
 *   addresses (in the spirit of libvirt's clean-traffic filter), so a guest
 *   cannot take a peer's lease, address or DNS name.
 */

import type { NetworkPlan } from "./network.ts";

export const NFT_FAMILY = "inet";
export const NFT_TABLE = "aos_unit";
/** The layer-2 table (same name, bridge family). */
export const NFT_BRIDGE_FAMILY = "bridge";

/** What the layer-2 guard of one node allows. */
export interface TapGuard {
  tap: string;
  mac: string;
  /** The node's one address (its reservation, or its place in the pool). */
  ip: string;
}

function quoted(names: readonly string[]): string {
  return names.map((n) => `"${n}"`).join(", ");
}

/** 52:54:00:fa:d5:8d -> 0x525400fad58d (raw payload comparison of DHCP's chaddr). */
function macHex(mac: string): string {
  return `0x${mac.replaceAll(":", "")}`;
}

function guardRules(g: TapGuard): string[] {
  const tap = `"${g.tap}"`;
  // DHCP discover/request come from 0.0.0.0; after that only the node's own address.
  const own = `{ 0.0.0.0, ${g.ip} }`;
  return [
    `iifname ${tap} ether saddr != ${g.mac} counter drop comment "not ${g.tap}'s MAC"`,
    `iifname ${tap} arp saddr ether != ${g.mac} counter drop`,
    `iifname ${tap} arp saddr ip != ${own} counter drop`,
    `iifname ${tap} ip saddr != ${own} counter drop`,
    // The DHCP client hardware address (BOOTP chaddr, payload bytes 28-33) decides the lease.
    `iifname ${tap} udp dport 67 @ih,224,48 != ${
      macHex(g.mac)
    } counter drop comment "DHCP for another MAC"`,
    // No DHCP server on a guest; IPv4 and ARP only (no IPv6, no 802.1Q tags hiding another
    // frame behind the checks above).
    `iifname ${tap} udp sport 67 counter drop`,
    `iifname ${tap} ether type != { ip, arp } counter drop comment "IPv4 and ARP only"`,
  ];
}

/**
 * @param guards the nodes' taps, MACs and addresses
 * @param uplinks interfaces carrying a default route now (or the pinned INTERNET_INTERFACE)
 */
export function nftRuleset(
  n: NetworkPlan,
  guards: readonly TapGuard[],
  uplinks: readonly string[],
): string {
  const br = `"${n.bridge}"`;
  const dns = `${n.bridgeIp}:${n.dnsPort}`;
  const pinned = n.internetInterface;
  const masquerade = pinned
    ? `ip saddr ${n.cidr} ip daddr != ${n.cidr} oifname "${pinned}"`
    // By source subnet, not by interface: VPNs and second uplinks are NATed too.
    : `ip saddr ${n.cidr} ip daddr != ${n.cidr}`;
  const uplinkSet = uplinks.length > 0 ? `\n\t\telements = { ${quoted(uplinks)} }` : "";
  const guardLines = guards.flatMap((g) => guardRules(g)).map((l) => `\t\t${l}`).join("\n");
  return `table ${NFT_FAMILY} ${NFT_TABLE} {
}
delete table ${NFT_FAMILY} ${NFT_TABLE}
table ${NFT_FAMILY} ${NFT_TABLE} {
	comment "managed by aos-unit; bridge ${n.bridge} ${n.cidr}"

	# Interfaces that carry the default route now; kept current by the route monitor.
	set uplinks {
		type ifname${uplinkSet}
	}

	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		# Guests ask the bridge on port 53; dnsmasq listens on ${n.dnsPort}.
		iifname ${br} ip daddr ${n.bridgeIp} udp dport 53 counter dnat ip to ${dns}
		iifname ${br} ip daddr ${n.bridgeIp} tcp dport 53 counter dnat ip to ${dns}
	}

	chain output {
		type nat hook output priority -100; policy accept;
		# The host's own queries to the bridge address on port 53.
		ip daddr ${n.bridgeIp} udp dport 53 counter dnat ip to ${dns}
		ip daddr ${n.bridgeIp} tcp dport 53 counter dnat ip to ${dns}
	}

	chain input {
		type filter hook input priority filter - 1; policy accept;
		iifname ${br} udp dport 67 counter accept comment "DHCP"
		iifname ${br} ip daddr ${n.bridgeIp} udp dport ${n.dnsPort} counter accept comment "DNS"
		iifname ${br} ip daddr ${n.bridgeIp} tcp dport ${n.dnsPort} counter accept comment "DNS"
		# DHCP and DNS answer the guests and the host itself, nobody else (no open resolver).
		iifname != { ${br}, "lo" } ip daddr ${n.bridgeIp} counter drop comment "the bridge address from outside"
	}

	chain forward {
		type filter hook forward priority filter - 1; policy accept;
		iifname ${br} oifname ${br} counter accept comment "guest to guest"
		iifname ${br} ip saddr != ${n.cidr} counter drop comment "spoofed source"
		iifname ${br} oifname @uplinks counter accept comment "guests to the internet"
		iifname ${br} counter drop comment "guests reach the uplinks only"
		oifname ${br} ct state established,related counter accept comment "replies"
		oifname ${br} counter drop comment "nothing else enters the guests' network"
	}

	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		${masquerade} counter masquerade
	}
}
table ${NFT_BRIDGE_FAMILY} ${NFT_TABLE} {
}
delete table ${NFT_BRIDGE_FAMILY} ${NFT_TABLE}
table ${NFT_BRIDGE_FAMILY} ${NFT_TABLE} {
	comment "managed by aos-unit; each tap speaks only for its own node"

	chain prerouting {
		type filter hook prerouting priority -200; policy accept;
${guardLines}
	}
}
`;
}
