/** systemd-resolved: route `~aos-unit` to the bridge's DNS server (with its port). */

import { Buffer } from "node:buffer";
import type { MessageBus } from "./bus.ts";
import { busError, call } from "./bus.ts";

const RESOLVED = {
  destination: "org.freedesktop.resolve1",
  path: "/org/freedesktop/resolve1",
  interface: "org.freedesktop.resolve1.Manager",
};

const AF_INET = 2;

export interface LinkDns {
  ifindex: number;
  /** IPv4 address of the DNS server on that link. */
  server: string;
  port: number;
  /** Routing-only domain (`~domain`). */
  domain: string;
}

async function manager(
  bus: MessageBus,
  member: string,
  signature: string,
  body: unknown[],
  what: string,
) {
  try {
    return await call(bus, { ...RESOLVED, member, signature, body });
  } catch (error) {
    throw busError(what, error);
  }
}

/**
 * Per-link DNS: server with port, routing-only domain, DNSSEC off, and the
 * link is not a default route for other names.
 */
export async function setLinkDns(bus: MessageBus, link: LinkDns): Promise<void> {
  const octets = link.server.split(".").map(Number);
  await manager(
    bus,
    "SetLinkDNSEx",
    "ia(iayqs)",
    [link.ifindex, [[AF_INET, Buffer.from(octets), link.port, ""]]],
    `set the DNS server of link ${link.ifindex} in systemd-resolved`,
  );
  await manager(
    bus,
    "SetLinkDomains",
    "ia(sb)",
    [link.ifindex, [[link.domain, true]]],
    "set the link's domain in systemd-resolved",
  );
  await manager(bus, "SetLinkDNSSEC", "is", [link.ifindex, "no"], "turn DNSSEC off for the link");
  await manager(
    bus,
    "SetLinkDefaultRoute",
    "ib",
    [link.ifindex, false],
    "keep the link from becoming resolved's default DNS route",
  );
}

/** Forgets everything set on the link. */
export async function revertLink(bus: MessageBus, ifindex: number): Promise<void> {
  await manager(
    bus,
    "RevertLink",
    "i",
    [ifindex],
    "revert the link's DNS settings in systemd-resolved",
  );
}
