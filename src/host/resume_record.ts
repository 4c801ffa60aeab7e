/**
 * A memory restore's records (plan/snapshot.ts, resumeRequest and resumingRecord), in
 * root's own directory: nobody else can add, replace or remove anything there. Where that
 * directory is not root's (development, everything as one user), a record must still be
 * this process's user's or root's.
 */

import { writeFileAtomic } from "./atomic.ts";
import { type OpenFile, openRegular } from "./safe_file.ts";
import { brokerDir } from "../plan/layout.ts";
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
  let file: OpenFile;
  try {
    file = openRegular(path);
  } catch {
    return undefined; // none, or not a plain file: no record
  }
  try {
    if ((file.uid !== 0 && file.uid !== Deno.uid()) || file.size > RECORD_MAX) return undefined;
    return parseResumeRecord(new TextDecoder().decode(file.read(0, RECORD_MAX)));
  } finally {
    file.close();
  }
}

/** The restore's request (root, after the swap): the next start loads snapshot's states. */
export function requestResume(paths: Paths, snapshot: string): void {
  Deno.mkdirSync(brokerDir(paths), { recursive: true, mode: 0o755 });
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
