/**
 * The lease record (leases.json) as the lease hook keeps it, with nothing but Deno's own
 * APIs: dnsmasq starts the hook cold after every DHCP ACK, and the first import of a
 * `node:` module costs it about 150 ms (Node compatibility starts up), more than the
 * whole record. host/leases.ts reads the same record for everyone else.
 */

import { parseIpv4 } from "../base/ipv4.ts";
import { writeFileAtomic } from "./atomic.ts";

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

/** How large leases.json may be: far more than any unit's records. */
export const MAX_LEASE_FILE = 1024 * 1024;

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

/** Pure: the well-formed records of a file's text (anything else reads as no record). */
export function parseLeaseState(text: string | undefined): LeaseState {
  let parsed: LeaseState;
  try {
    parsed = JSON.parse(text ?? "") as LeaseState;
  } catch {
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

/**
 * Pure: the event dnsmasq's arguments describe (add|old|del MAC IP [HOSTNAME]), "ignored"
 * for the events the record does not use (init, tftp, arp), or what is wrong with them.
 */
export function leaseEventOf(
  args: string[],
  at: string,
): LeaseEvent | "ignored" | { problem: string } {
  const [action, mac, ip, hostname] = args;
  if (action !== "add" && action !== "old" && action !== "del") return "ignored";
  if (!mac || !ip) {
    return { problem: `Ignoring "${args.join(" ")}": expected add|old|del MAC IP [HOSTNAME]` };
  }
  return { action, mac: mac.toLowerCase(), ip, hostname, at };
}

/** The line a recorded event logs, the same from either entry. */
export function recordedText(event: LeaseEvent, ms: number): string {
  return `DHCP ${event.action} ${event.mac} ${event.ip}${
    event.hostname ? ` ${event.hostname}` : ""
  } (recorded in ${ms.toFixed(1)} ms)`;
}

/** How long the hook waits for the record to open: only a planted FIFO could make it wait. */
const READ_DEADLINE_MS = 2000;

/**
 * The record's text, or undefined when there is none. Only a regular file of that name
 * counts, read bounded: the directory is shared with the service user, who could put a
 * link, a FIFO or a large file there. Deno (without node:fs) cannot open with O_NOFOLLOW or
 * O_NONBLOCK, so the file is checked before and after opening, and an open that a FIFO
 * swapped in at that instant would hold is abandoned at a deadline.
 */
async function readRecordText(file: string): Promise<string | undefined> {
  let before: Deno.FileInfo;
  try {
    before = Deno.lstatSync(file);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  if (!before.isFile) throw new Error(`Refusing ${file}: not a regular file`);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const opening = Deno.open(file, { read: true });
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`Refusing ${file}: it did not open`)),
      READ_DEADLINE_MS,
    );
  });
  let f: Deno.FsFile;
  try {
    f = await Promise.race([opening, deadline]);
  } finally {
    clearTimeout(timer);
  }
  try {
    const st = f.statSync();
    if (!st.isFile || st.ino !== before.ino || st.dev !== before.dev) {
      throw new Error(`Refusing ${file}: it changed while opened`);
    }
    if (st.size > MAX_LEASE_FILE) {
      throw new Error(`Refusing ${file}: ${st.size} bytes, more than ${MAX_LEASE_FILE}`);
    }
    const buffer = new Uint8Array(st.size);
    let done = 0;
    while (done < buffer.length) {
      const n = f.readSync(buffer.subarray(done));
      if (n === null || n === 0) break;
      done += n;
    }
    return new TextDecoder().decode(buffer.subarray(0, done));
  } finally {
    f.close();
  }
}

/** Applies one event to the file: crash-safe (temporary file, fsync, rename). */
export async function recordLeaseEvent(file: string, event: LeaseEvent): Promise<LeaseState> {
  const next = applyLeaseEvent(parseLeaseState(await readRecordText(file)), event);
  writeFileAtomic(file, JSON.stringify(next, null, 2) + "\n", 0o640);
  return next;
}
