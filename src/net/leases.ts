/** The lease record lease-hook writes and run/status read: MAC -> address, name, since when. */

import { rethrowAccessErrors } from "../base/errors.ts";
import { writeFileAtomic } from "../host/atomic.ts";

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

export function readLeaseState(file: string): LeaseState {
  try {
    const parsed = JSON.parse(Deno.readTextFileSync(file)) as LeaseState;
    return parsed.version === 1 && parsed.leases ? parsed : emptyLeaseState();
  } catch (error) {
    rethrowAccessErrors(error, file);
    return emptyLeaseState();
  }
}

/** Applies one event to the file: crash-safe (temporary file, fsync, rename). */
export function recordLease(file: string, event: LeaseEvent): LeaseState {
  const next = applyLeaseEvent(readLeaseState(file), event);
  writeFileAtomic(file, JSON.stringify(next, null, 2) + "\n", 0o640);
  return next;
}
