/** systemd-resolved: route `~aos-unit` to the bridge's DNS server (with its port). */

import type { MessageBus } from "./bus.ts";
import { busError, call, nameHasOwner } from "./bus.ts";
import { unitPath } from "./systemd1.ts";

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
  noAutoStart = false,
) {
  try {
    return await call(bus, { ...RESOLVED, member, signature, body, noAutoStart });
  } catch (error) {
    throw busError(what, error);
  }
}

/**
 * Why resolved cannot take settings now, or undefined when it can (or may be started by
 * the bus). systemd-resolved does not rejoin a restarted D-Bus (systemd 252 and 257):
 * it keeps running, unreachable, and a call would wait for the bus's activation timeout.
 */
export async function resolvedUnreachable(bus: MessageBus): Promise<string | undefined> {
  const owned = await nameHasOwner(bus, RESOLVED.destination);
  if (owned) return undefined;
  const state = await call(bus, {
    destination: "org.freedesktop.systemd1",
    path: unitPath("systemd-resolved.service"),
    interface: "org.freedesktop.DBus.Properties",
    member: "Get",
    signature: "ss",
    body: ["org.freedesktop.systemd1.Unit", "ActiveState"],
    timeoutMs: 2000,
  }).then(([v]) => String((v as { value: unknown }).value), () => "unknown");
  return state === "active"
    ? "systemd-resolved runs but is not on the system bus (was D-Bus restarted?); " +
      "`systemctl restart systemd-resolved aos-unit` restores it"
    : undefined;
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
    [link.ifindex, [[AF_INET, new Uint8Array(octets), link.port, ""]]],
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

/**
 * Forgets everything set on the link. Never starts resolved: when it does not run, it
 * holds no settings worth reverting (the link is deleted next anyway).
 */
export async function revertLink(bus: MessageBus, ifindex: number): Promise<void> {
  await manager(
    bus,
    "RevertLink",
    "i",
    [ifindex],
    "revert the link's DNS settings in systemd-resolved",
    true,
  );
}
