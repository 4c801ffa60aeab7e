/**
 * The files of whole-unit snapshots (the service user's side): names, manifests, one
 * writer at a time, and copies that never follow a link or block on a FIFO.
 *
 * A node's directory is writable by that node's QEMU: whatever is read from it (its
 * overlay, its UEFI variables) is opened as a regular file of one name that is the
 * file the path names (host/safe_file.ts) and copied in this process; whatever is
 * written beside it is created anew (O_EXCL), so a link planted there is refused.
 */

import { RuntimeError } from "../base/errors.ts";
import { type OpenFile, openRegular, readSmallFile } from "../host/safe_file.ts";
import {
  type FileIdentity,
  isSnapshotName,
  manifestIn,
  snapshotDir,
  snapshotLock,
  type SnapshotManifest,
  snapshotsDir,
} from "../plan/snapshot.ts";
import type { Plan } from "../plan/types.ts";
import { identityOf as baseIdentity } from "./disk.ts";

/** Manifests and leases are small; a larger one is not ours. */
export const SMALL_MAX = 1024 * 1024;
/** UEFI variable stores are a few MiB (OVMF 528 KiB, AAVMF 64 MiB at most). */
export const EFIVARS_MAX = 64 * 1024 * 1024;
const CHUNK = 1024 * 1024;
/** The holes a copy keeps: file system blocks. */
const BLOCK = 4096;

/** What base.json records of an image (vm/disk.ts), or undefined when it is missing. */
export function identityOf(path: string): FileIdentity | undefined {
  try {
    return baseIdentity(path);
  } catch {
    return undefined;
  }
}

export function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

export function removeQuietly(path: string, recursive = false): void {
  try {
    Deno.removeSync(path, { recursive });
  } catch { /* not there */ }
}

export function checkName(name: string): void {
  if (!isSnapshotName(name)) {
    throw new RuntimeError(
      `"${name}" is not a snapshot name: letters, digits, "-" and "_", at most 63, starting with a letter or digit`,
      { permanent: true },
    );
  }
}

function isZero(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}

/** Writes the non-zero blocks of `bytes` at `at`: all-zero blocks stay holes (sparse). */
function writeSparse(target: Deno.FsFile, bytes: Uint8Array, at: number): void {
  for (let start = 0; start < bytes.length; start += BLOCK) {
    const block = bytes.subarray(start, start + BLOCK);
    if (isZero(block)) continue;
    target.seekSync(at + start, Deno.SeekMode.Start);
    let done = 0;
    while (done < block.length) done += target.writeSync(block.subarray(done));
  }
}

function copyOpen(source: OpenFile, to: string): void {
  const target = Deno.openSync(to, { write: true, createNew: true, mode: 0o640 });
  try {
    for (let at = 0; at < source.size; at += CHUNK) writeSparse(target, source.read(at, CHUNK), at);
    target.truncateSync(source.size);
    target.syncSync();
  } finally {
    target.close();
  }
}

/**
 * Copies a regular file into a new file `to` (which must not exist: O_EXCL).
 * @throws {RuntimeError} naming both, for a link, a FIFO, a file over `maxBytes`, a full
 *   disk; nothing is left at `to`
 */
export function copyRegular(from: string, to: string, maxBytes = Infinity): void {
  let source: OpenFile | undefined;
  try {
    source = openRegular(from);
    if (source.size > maxBytes) throw new Error(`${source.size} bytes, more than ${maxBytes}`);
    copyOpen(source, to);
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) removeQuietly(to);
    throw new RuntimeError(`Cannot copy ${from} to ${to}: ${(error as Error).message}`);
  } finally {
    source?.close();
  }
}

/** The manifest of snapshot `name`. @throws {RuntimeError} exit 2 when there is none */
export function readManifest(plan: Plan, name: string): SnapshotManifest {
  checkName(name);
  const path = manifestIn(snapshotDir(plan.paths, name));
  let text: string | undefined;
  try {
    text = readSmallFile(path, SMALL_MAX);
  } catch (error) {
    throw new RuntimeError(`Cannot read ${path}: ${(error as Error).message}`);
  }
  if (text === undefined) {
    throw new RuntimeError(`No snapshot "${name}"`, {
      hint: "aos-unit snapshot list",
      permanent: true,
    });
  }
  try {
    const manifest = JSON.parse(text) as SnapshotManifest;
    if (manifest.format !== 1 || !Array.isArray(manifest.nodes)) throw new Error("not format 1");
    return manifest;
  } catch (error) {
    throw new RuntimeError(`Snapshot "${name}" is damaged (${path}): ${(error as Error).message}`);
  }
}

/**
 * Runs `fn` holding the snapshot lock (flock), so that two saves, or a save and a restore
 * step, never work on the same files at once.
 * @throws {RuntimeError} when another snapshot command holds it
 */
export async function withSnapshotLock<T>(plan: Plan, fn: () => Promise<T> | T): Promise<T> {
  Deno.mkdirSync(snapshotsDir(plan.paths), { recursive: true, mode: 0o750 });
  const lock = Deno.openSync(snapshotLock(plan.paths), { read: true, write: true, create: true });
  try {
    await lockOrFail(lock, "Another snapshot command is running");
    return await fn();
  } finally {
    lock.close();
  }
}

/**
 * Takes an exclusive flock on `file`, failing within two seconds rather than queueing
 * behind a long copy or restore. The lock goes with the file's close.
 * @throws {RuntimeError} `busy` when another process holds it
 */
export async function lockOrFail(file: Deno.FsFile, busy: string): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      file.lock(true),
      new Promise((_, reject) => timer = setTimeout(() => reject(new Error("busy")), 2000)),
    ]);
  } catch {
    throw new RuntimeError(busy, { hint: "wait for it to finish, then try again" });
  } finally {
    clearTimeout(timer);
  }
}
