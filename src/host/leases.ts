/** The lease record lease-hook writes and run/status read: MAC -> address, name, since when. */

import { rethrowAccessErrors } from "../base/errors.ts";
import { MAX_LEASE_FILE, parseLeaseState } from "./lease_file.ts";
import type { LeaseState } from "./lease_file.ts";
import { OpenBlockedError, readSmallFile, readSmallFileAsync } from "./safe_file.ts";

export {
  applyLeaseEvent,
  emptyLeaseState,
  type LeaseEvent,
  type LeaseRecord,
  type LeaseState,
  recordLeaseEvent,
} from "./lease_file.ts";

/**
 * The lease records. The file is the service user's (dnsmasq's hook writes it): it is
 * read without following links, bounded in size, and only well-formed records count.
 */
export function readLeaseState(file: string): LeaseState {
  let text: string | undefined;
  try {
    text = readSmallFile(file, MAX_LEASE_FILE);
  } catch (error) {
    rethrowAccessErrors(error, file);
  }
  return parseLeaseState(text);
}

/**
 * readLeaseState() for the resident manager, which reads the file over and over while
 * dnsmasq's uid may replace it: the open never stalls the manager (readSmallFileAsync).
 * @throws {OpenBlockedError} when the open did not return in time
 */
export async function readLeaseStateAsync(file: string): Promise<LeaseState> {
  let text: string | undefined;
  try {
    text = await readSmallFileAsync(file, MAX_LEASE_FILE);
  } catch (error) {
    if (error instanceof OpenBlockedError) throw error;
    rethrowAccessErrors(error, file);
  }
  return parseLeaseState(text);
}

/** The address each MAC holds, from the lease records (plan/layout.ts, leaseStateFile). */
export function leaseAddresses(file: string): Record<string, string> {
  return Object.fromEntries(
    Object.entries(readLeaseState(file).leases).map(([mac, r]) => [mac, r.ip]),
  );
}
