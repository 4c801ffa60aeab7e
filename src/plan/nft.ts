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

/** The family of a unit's main table (its name is in the unit's record: unitIdentity()). */
export const NFT_FAMILY = "inet";
/** The layer-2 table (same name, bridge family). */
export const NFT_BRIDGE_FAMILY = "bridge";

/** A host port on the uplink side that reaches a port of a node. */
export interface PortForward {
  node: string;
  nodeIp: string;
  host: number;
  port: number;
  proto: "tcp" | "udp";
  /** Only this host address; any address of the uplinks when absent. */
  address?: string;
}

function forwardRules(f: PortForward): { dnat: string; accept: string } {
  const daddr = f.address ? ` ip daddr ${f.address}` : "";
  return {
    // Only what is addressed to the host itself: no transit, broadcast or multicast.
    dnat:
      `iifname @uplinks fib daddr type local${daddr} ${f.proto} dport ${f.host} counter dnat ip to ${f.nodeIp}:${f.port} comment "forward ${f.proto}/${f.host} to ${f.node}:${f.port}"`,
    accept:
      `ip daddr ${f.nodeIp} ${f.proto} dport ${f.port} ct status dnat counter accept comment "forwarded to ${f.node}:${f.port}"`,
  };
}

/**
 * Destinations GUEST_FENCE=strict keeps guests from: "this network", private, shared,
 * loopback, link-local, IETF protocol assignments, benchmarking, multicast and reserved.
 */
const STRICT_DENIED = [
  "0.0.0.0/8",
  "10.0.0.0/8",
  "100.64.0.0/10",
  "127.0.0.0/8",
  "169.254.0.0/16",
  "172.16.0.0/12",
  "192.0.0.0/24",
  "192.168.0.0/16",
  "198.18.0.0/15",
  "224.0.0.0/4",
  "240.0.0.0/4",
];

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

function guardRules(n: NetworkPlan, g: TapGuard): string[] {
  const tap = `"${g.tap}"`;
  // DHCP discover/request come from 0.0.0.0; after that only the node's own address.
  const own = `{ 0.0.0.0, ${g.ip} }`;
  return [
    `iifname ${tap} ether saddr != ${g.mac} counter drop comment "not ${g.tap}'s MAC"`,
    `iifname ${tap} arp saddr ether != ${g.mac} counter drop`,
    `iifname ${tap} arp saddr ip != ${own} counter drop`,
    `iifname ${tap} ip saddr != ${own} counter drop`,
    // The DHCP client hardware address (BOOTP chaddr, payload bytes 28-33) decides the lease.
    // A fragment hides the header the next rule reads: none towards the DHCP server.
    `iifname ${tap} ip daddr { ${n.bridgeIp}, 255.255.255.255 } ip frag-off & 0x3fff != 0 counter drop comment "no fragments to the DHCP server"`,
    `iifname ${tap} udp dport 67 @ih,224,48 != ${
      macHex(g.mac)
    } counter drop comment "DHCP for another MAC"`,
    // No DHCP server on a guest; IPv4 and ARP only (no IPv6, no 802.1Q tags hiding another
    // frame behind the checks above).
    `iifname ${tap} udp sport 67 counter drop`,
    `iifname ${tap} ether type != { ip, arp } counter drop comment "IPv4 and ARP only"`,
  ];
}

/** What an isolated unit's tables (in its namespace) let in from the host over its link. */
export interface HostView {
  /** The unit's end of its link (plan/isolation.ts UNIT_LINK). */
  link: string;
  /** The unit's subnet as the host sees it, and the unit's own. */
  mapped: string;
  inner: string;
  /** Where the host asks DNS: the bridge address, mapped. */
  dnsAddress: string;
}

/** The host's way in: its DNS queries to dnsmasq, and MAPPED for the unit's subnet. */
function hostViewRules(n: NetworkPlan, v: HostView) {
  const link = `iifname "${v.link}"`;
  const dns = `${n.bridgeIp}:${n.dnsPort}`;
  return {
    prerouting: [
      "# The host: its DNS queries go to dnsmasq; its view of the subnet is mapped 1:1.",
      `${link} ip daddr ${v.dnsAddress} udp dport 53 counter dnat ip to ${dns}`,
      `${link} ip daddr ${v.dnsAddress} tcp dport 53 counter dnat ip to ${dns}`,
      `${link} ip daddr ${v.mapped} counter dnat ip prefix to ip daddr map { ${v.mapped} : ${v.inner} } comment "the host's view of the unit"`,
    ].map((l) => `
		${l}`).join(""),
    input: [
      `${link} ip daddr ${n.bridgeIp} udp dport ${n.dnsPort} ct status dnat counter accept comment "the host's DNS queries"`,
      `${link} ip daddr ${n.bridgeIp} tcp dport ${n.dnsPort} ct status dnat counter accept comment "the host's DNS queries"`,
    ].map((l) => `
		${l}`).join(""),
    forward: `
		${link} oifname "${n.bridge}" ip daddr ${v.inner} ct status dnat counter accept comment "from the host, through ${v.mapped}"`,
    // NAT skips what conntrack finds invalid: it would leave with a guest's own address.
    invalid: `
		iifname "${n.bridge}" ct state invalid counter drop comment "not NATed: never out with a guest's own address"`,
  };
}

/**
 * @param table the unit's tables' name (its record's nftTable)
 * @param guards the nodes' taps, MACs and addresses
 * @param uplinks interfaces carrying a default route now (or the pinned INTERNET_INTERFACE)
 */
export function nftRuleset(
  table: string,
  n: NetworkPlan,
  guards: readonly TapGuard[],
  uplinks: readonly string[],
  forwards: readonly PortForward[] = [],
  hostView?: HostView,
): string {
  const fromHost = hostView
    ? hostViewRules(n, hostView)
    : { prerouting: "", input: "", forward: "", invalid: "" };
  const forwarded = forwards.map(forwardRules);
  const dnats = forwarded.map((f) => `\n\t\t${f.dnat}`).join("");
  const accepts = forwarded.map((f) => `\n\t\toifname "${n.bridge}" ${f.accept}`).join("");
  const br = `"${n.bridge}"`;
  const dns = `${n.bridgeIp}:${n.dnsPort}`;
  const pinned = n.internetInterface;
  const masquerade = pinned
    ? `ip saddr ${n.cidr} ip daddr != ${n.cidr} oifname "${pinned}"`
    // By source subnet, not by interface: VPNs and second uplinks are NATed too.
    : `ip saddr ${n.cidr} ip daddr != ${n.cidr}`;
  const uplinkSet = uplinks.length > 0 ? `\n\t\telements = { ${quoted(uplinks)} }` : "";
  const guardLines = guards.flatMap((g) => guardRules(n, g)).map((l) => `\t\t${l}`).join("\n");
  // The chaddr check again after reassembly: a first fragment too small to hold it passes
  // the bridge guard when it goes to another host address than the DHCP server's.
  const dhcpAgain = guards.map((g) =>
    `\n\t\tiifname ${br} ether saddr ${g.mac} udp dport 67 @ih,224,48 != ${
      macHex(g.mac)
    } counter drop comment "DHCP for another MAC (reassembled)"`
  ).join("");
  return `table ${NFT_FAMILY} ${table} {
}
delete table ${NFT_FAMILY} ${table}
table ${NFT_FAMILY} ${table} {
	comment "managed by aos-unit; bridge ${n.bridge} ${n.cidr}"

	# Interfaces that carry the default route now; kept current by the route monitor.
	set uplinks {
		type ifname${uplinkSet}
	}

	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		# Guests ask the bridge on port 53; dnsmasq listens on ${n.dnsPort}.
		iifname ${br} ip daddr ${n.bridgeIp} udp dport 53 counter dnat ip to ${dns}
		iifname ${br} ip daddr ${n.bridgeIp} tcp dport 53 counter dnat ip to ${dns}${fromHost.prerouting}${
    forwards.length
      ? "\n\t\t# Port forwards: only these host ports reach a guest from outside."
      : ""
  }${dnats}
	}

	chain output {
		type nat hook output priority -100; policy accept;
		# The host's own queries to the bridge address on port 53.
		ip daddr ${n.bridgeIp} udp dport 53 counter dnat ip to ${dns}
		ip daddr ${n.bridgeIp} tcp dport 53 counter dnat ip to ${dns}
	}

	chain input {
		type filter hook input priority filter - 1; policy accept;${dhcpAgain}
		iifname ${br} udp dport 67 counter accept comment "DHCP"
		iifname ${br} ip daddr ${n.bridgeIp} udp dport ${n.dnsPort} counter accept comment "DNS"
		iifname ${br} ip daddr ${n.bridgeIp} tcp dport ${n.dnsPort} counter accept comment "DNS"${fromHost.input}
		# DHCP and DNS answer the guests and the host itself, nobody else (no open resolver).
		iifname != { ${br}, "lo" } ip daddr ${n.bridgeIp} counter drop comment "the bridge address from outside"${
    n.guestFence === "strict"
      ? `\n\t\tiifname ${br} ct state established,related counter accept comment "what the host asked"` +
        `\n\t\tiifname ${br} counter drop comment "GUEST_FENCE=strict: no host service but DHCP and DNS"`
      : ""
  }
	}

	chain forward {
		type filter hook forward priority filter - 1; policy accept;${fromHost.invalid}
		iifname ${br} oifname ${br} counter accept comment "guest to guest"
		iifname ${br} ip saddr != ${n.cidr} counter drop comment "spoofed source"
		iifname != ${br} ip saddr ${n.cidr} counter drop comment "the guests' subnet from outside"
${
    n.guestFence === "strict"
      ? `\t\tiifname ${br} ct status dnat ct state established counter accept comment "answers to port forwards"\n` +
        `\t\tiifname ${br} ip daddr { ${
          STRICT_DENIED.join(", ")
        } } counter drop comment "GUEST_FENCE=strict: no LAN, no link-local"\n`
      : ""
  }		iifname ${br} oifname @uplinks counter accept comment "guests to the internet"
		iifname ${br} counter drop comment "guests reach the uplinks only"
		oifname ${br} ct state established,related counter accept comment "replies"${accepts}${fromHost.forward}
		oifname ${br} counter drop comment "nothing else enters the guests' network"
	}

	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		${masquerade} counter masquerade
	}
}
table ${NFT_BRIDGE_FAMILY} ${table} {
}
delete table ${NFT_BRIDGE_FAMILY} ${table}
table ${NFT_BRIDGE_FAMILY} ${table} {
	comment "managed by aos-unit; each tap speaks only for its own node"

	chain prerouting {
		type filter hook prerouting priority -200; policy accept;
${guardLines}
	}
}
`;
}
