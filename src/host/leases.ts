/** The lease record lease-hook writes and run/status read: MAC -> address, name, since when. */

import { rethrowAccessErrors } from "../base/errors.ts";
import { parseIpv4 } from "../base/ipv4.ts";
import { writeFileAtomic } from "./atomic.ts";
import { readSmallFile } from "./safe_file.ts";

export interface LeaseEvent {
  action: "add" | "old" | "del";
  mac: string;
  ip: string;
  hostname: string | undefined;
  at: string;
}

export interface LeaseRecord {
  mac: string;
  ip: string;
  hostname: string | undefined;
  /** When this MAC got this address (kept across renewals and restarts). */
  since: string;
  /** Last add/old event. */
  updated: string;
}

export interface LeaseState {
  version: 1;
  leases: Record<string, LeaseRecord>;
}

export function emptyLeaseState(): LeaseState {
  return { version: 1, leases: {} };
}

/** Pure: the state after one event. */
export function applyLeaseEvent(state: LeaseState, e: LeaseEvent): LeaseState {
  const leases = { ...state.leases };
  if (e.action === "del") {
    if (leases[e.mac]?.ip === e.ip) delete leases[e.mac];
  } else {
    const previous = leases[e.mac];
    leases[e.mac] = {
      mac: e.mac,
      ip: e.ip,
      hostname: e.hostname ?? previous?.hostname,
      since: previous?.ip === e.ip ? previous.since : e.at,
      updated: e.at,
    };
  }
  return { version: 1, leases };
}

/** How large leases.json may be: far more than any unit's records. */
const MAX_LEASE_FILE = 1024 * 1024;

/**
 * The lease records. The file is the service user's (dnsmasq's hook writes it): it is
 * read without following links, bounded in size, and only well-formed records count.
 */
export function readLeaseState(file: string): LeaseState {
  let parsed: LeaseState;
  try {
    parsed = JSON.parse(readSmallFile(file, MAX_LEASE_FILE) ?? "") as LeaseState;
  } catch (error) {
    rethrowAccessErrors(error, file);
    return emptyLeaseState();
  }
  if (parsed?.version !== 1 || typeof parsed.leases !== "object" || parsed.leases === null) {
    return emptyLeaseState();
  }
  const leases: Record<string, LeaseRecord> = {};
  for (const [mac, r] of Object.entries(parsed.leases)) {
    if (/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(mac) && parseIpv4(String(r?.ip)) !== undefined) {
      leases[mac] = r;
    }
  }
  return { version: 1, leases };
}

/** The address each MAC holds, from the lease records in the DHCP directory. */
export function leaseAddresses(dhcpDir: string): Record<string, string> {
  return Object.fromEntries(
    Object.entries(readLeaseState(`${dhcpDir}/leases.json`).leases).map(([mac, r]) => [mac, r.ip]),
  );
}

/** Applies one event to the file: crash-safe (temporary file, fsync, rename). */
export function recordLease(file: string, event: LeaseEvent): LeaseState {
  const next = applyLeaseEvent(readLeaseState(file), event);
  writeFileAtomic(file, JSON.stringify(next, null, 2) + "\n", 0o640);
  return next;
}
