/**
 * A memory restore's records in the unit's runtime directory (plan/snapshot.ts,
 * resumeRequest and resumingRecord). Both are root's: the directory is root's and sticky,
 * so once root made one, the service user can neither replace nor remove it. One the
 * service user made itself is never read, and a root reader never opens it (it could be
 * swapped for a FIFO between a look and an open).
 */

import { writeFileAtomic } from "./atomic.ts";
import { readSmallFile } from "./safe_file.ts";
import {
  formatResumeRecord,
  parseResumeRecord,
  type ResumeRecord,
  resumeRequest,
  resumingRecord,
} from "../plan/snapshot.ts";
import type { Paths } from "../plan/types.ts";

const RECORD_MAX = 4096;

function removeQuietly(path: string): void {
  try {
    Deno.removeSync(path);
  } catch { /* not there */ }
}

/**
 * The record at `path` when root (or this process's own user: development, where
 * everything runs as one) made it.
 */
function readOwned(path: string): ResumeRecord | undefined {
  let st: Deno.FileInfo;
  try {
    st = Deno.lstatSync(path);
  } catch {
    return undefined;
  }
  if (!st.isFile || (st.uid !== 0 && st.uid !== Deno.uid())) return undefined;
  const text = readSmallFile(path, RECORD_MAX);
  return text === undefined ? undefined : parseResumeRecord(text);
}

/** The restore's request (root, after the swap): the next start loads snapshot's states. */
export function requestResume(paths: Paths, snapshot: string): void {
  writeFileAtomic(resumeRequest(paths), formatResumeRecord({ snapshot }), 0o644);
}

/** No request and no record left (root: the restore is over, done or undone). */
export function dropResume(paths: Paths): void {
  removeQuietly(resumeRequest(paths));
  removeQuietly(resumingRecord(paths));
}

/**
 * The broker, at every start: an earlier start's record goes; a request becomes the record
 * this start's manager reads. Anything the service user left in their place goes too.
 * @returns the snapshot whose states this start loads, if any
 */
export function takeResume(paths: Paths): string | undefined {
  removeQuietly(resumingRecord(paths));
  const request = readOwned(resumeRequest(paths));
  if (!request) {
    removeQuietly(resumeRequest(paths));
    return undefined;
  }
  Deno.renameSync(resumeRequest(paths), resumingRecord(paths));
  return request.snapshot;
}

/** The manager: the snapshot whose states this start loads (the broker's record), if any. */
export function readResuming(paths: Paths): string | undefined {
  return readOwned(resumingRecord(paths))?.snapshot;
}
