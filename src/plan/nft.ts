/**
 * The nftables table `inet aos_unit`. Applied as one file: the leading
 * `table` + `delete table` pair makes the replacement atomic whether or not
 * the table exists. Nothing outside this table is ever touched.
 */

import type { NetworkPlan } from "./network.ts";

export const NFT_BINARY = "/usr/sbin/nft";
export const NFT_FAMILY = "inet";
export const NFT_TABLE = "aos_unit";

function quoted(names: readonly string[]): string {
  return names.map((n) => `"${n}"`).join(", ");
}

/**
 * @param uplinks interfaces carrying a default route now (or the pinned INTERNET_INTERFACE)
 */
export function nftRuleset(n: NetworkPlan, uplinks: readonly string[]): string {
  const br = `"${n.bridge}"`;
  const dns = `${n.bridgeIp}:${n.dnsPort}`;
  const pinned = n.internetInterface;
  const masquerade = pinned
    ? `ip saddr ${n.cidr} ip daddr != ${n.cidr} oifname "${pinned}"`
    // By source subnet, not by interface: VPNs and second uplinks are NATed too.
    : `ip saddr ${n.cidr} ip daddr != ${n.cidr}`;
  const uplinkSet = uplinks.length > 0 ? `\n\t\telements = { ${quoted(uplinks)} }` : "";
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
	}

	chain forward {
		type filter hook forward priority filter - 1; policy accept;
		iifname ${br} oifname @uplinks counter accept comment "guests to the internet"
		iifname @uplinks oifname ${br} ct state established,related counter accept comment "replies"
		iifname ${br} oifname ${br} counter accept comment "guest to guest"
	}

	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		${masquerade} counter masquerade
	}
}
`;
}
