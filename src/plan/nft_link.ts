/**
 * The host's side of an isolated unit (plan/isolation.ts): one `inet` table, named as the
 * unit's own tables inside its namespace, on the host's end of the unit's link. It NATs
 * the unit to the uplinks, leads the unit's forwards to their nodes' mapped addresses, and
 * lets nothing cross from one unit to another: from its link a unit reaches the uplinks,
 * and the host at its own end of the link only. GUEST_FENCE=strict is kept by the unit's
 * own tables, on its bridge: here its dnsmasq may still reach a LAN resolver.
 */

import type { Isolation } from "./isolation.ts";
import { NFT_FAMILY, type PortForward } from "./nft.ts";

export interface LinkRulesetInput {
  /** The unit's tables' name (its record's nftTable). */
  table: string;
  iso: Isolation;
  /** Interfaces that carry a default route now (or the pinned INTERNET_INTERFACE). */
  uplinks: readonly string[];
  /** The unit's forwards, each to its node's mapped address. */
  forwards: readonly PortForward[];
  guestFence: "internet" | "strict";
  /** INTERNET_INTERFACE: the only uplink NATed to. */
  pinned?: string;
}

function forwardLines(link: string, forwards: readonly PortForward[]) {
  return {
    dnat: forwards.map((f) => {
      const daddr = f.address ? ` ip daddr ${f.address}` : "";
      // Only what is addressed to the host itself: no transit, broadcast or multicast.
      return `\n\t\tiifname @uplinks fib daddr type local${daddr} ${f.proto} dport ${f.host} counter dnat ip to ${f.nodeIp}:${f.port} comment "forward ${f.proto}/${f.host} to ${f.node}:${f.port}"`;
    }).join(""),
    accept: forwards.map((f) =>
      `\n\t\toifname ${link} ip daddr ${f.nodeIp} ${f.proto} dport ${f.port} ct status dnat counter accept comment "forwarded to ${f.node}:${f.port}"`
    ).join(""),
  };
}

/** The host side's table text (applied as one file, replacing the table atomically). */
export function linkRuleset(i: LinkRulesetInput): string {
  const { iso } = i;
  const link = `"${iso.hostLink}"`;
  const uplinkSet = i.uplinks.length > 0
    ? `\n\t\telements = { ${i.uplinks.map((u) => `"${u}"`).join(", ")} }`
    : "";
  const fw = forwardLines(link, i.forwards);
  const strictIn = i.guestFence === "strict"
    ? `\n\t\tiifname ${link} ct state established,related counter accept comment "what the host asked"` +
      `\n\t\tiifname ${link} counter drop comment "GUEST_FENCE=strict: no host service"`
    : "";
  const out = i.pinned ? ` oifname "${i.pinned}"` : ` oifname != ${link}`;
  return `table ${NFT_FAMILY} ${i.table} {
}
delete table ${NFT_FAMILY} ${i.table}
table ${NFT_FAMILY} ${i.table} {
	comment "managed by aos-unit; link ${iso.hostLink} to namespace ${iso.namespace} ${iso.block}"

	# Interfaces that carry the default route now; kept current by the route monitor.
	set uplinks {
		type ifname${uplinkSet}
	}

	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;${
    i.forwards.length
      ? "\n\t\t# Port forwards: only these host ports reach the unit from outside."
      : ""
  }${fw.dnat}
	}

	chain input {
		type filter hook input priority filter - 1; policy accept;
		iifname ${link} ip saddr != { ${iso.unitAddress}, ${iso.mapped} } counter drop comment "spoofed source"
		iifname ${link} ip daddr != ${iso.hostAddress} counter drop comment "the host at its end of the link only: no other unit's"${strictIn}
	}

	chain forward {
		type filter hook forward priority filter - 1; policy accept;
		iifname ${link} ct status dnat ct state established counter accept comment "answers to port forwards"
		iifname ${link} ip saddr != ${iso.unitAddress} counter drop comment "spoofed source"
		iifname ${link} oifname @uplinks counter accept comment "the unit to the internet"
		iifname ${link} counter drop comment "nothing else: no other unit, no other link"
		oifname ${link} ct state established,related counter accept comment "replies"${fw.accept}
		oifname ${link} counter drop comment "nothing else enters the unit"
	}

	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr ${iso.unitAddress}${out} counter masquerade
	}
}
`;
}
