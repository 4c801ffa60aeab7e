/**
 * Size-bounded logs: a guest that writes its console flat out must not fill
 * the disk between two logrotate runs. Past half of its cap a log's older
 * part is copied to FILE.1 (replacing the older copy) in chunks, then cut off
 * the front of the file in place: QEMU appends (O_APPEND) and simply goes on.
 *
 * The cut is `fallocate --collapse-range` where the filesystem has it (ext4,
 * XFS): appends that arrive meanwhile are kept. Elsewhere (tmpfs, btrfs) the
 * file is truncated, and what a guest writes between the copy and the
 * truncation is lost. A copy that fails (a full disk) never stops the cut:
 * the cap holds first.
 */

import { TOOLS } from "../base/tools.ts";
import type { Runner } from "../host/runner.ts";
import { openRegular } from "../host/safe_file.ts";

/** Rotates when the file passes this share of its cap: the rest is room for what a guest writes until the next check (every 250 ms). */
export const ROTATE_AT = 0.5;
/** Copies go through a buffer of this size: a cap of gigabytes never becomes one string. */
const CHUNK = 1024 * 1024;

export interface Rotation {
  /** Bytes cut off the front of the file. */
  cut: number;
  /** How: collapsed in place, or truncated. */
  how: "collapse" | "truncate";
  /** Why the copy to FILE.1 failed, if it did (the cut happened anyway). */
  copyError?: string;
}

/** Copies bytes [start, end) of `from` to a fresh `to`, chunk by chunk. */
function copyRange(from: string, to: string, start: number, end: number): void {
  const source = openRegular(from);
  const tmp = `${to}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    const target = Deno.openSync(tmp, { write: true, createNew: true, mode: 0o640 });
    try {
      for (let at = start; at < end; at += CHUNK) {
        const bytes = source.read(at, Math.min(CHUNK, end - at));
        let written = 0;
        while (written < bytes.length) written += target.writeSync(bytes.subarray(written));
      }
    } finally {
      target.close();
    }
    Deno.renameSync(tmp, to);
  } catch (error) {
    try {
      Deno.removeSync(tmp);
    } catch { /* never made */ }
    throw error;
  } finally {
    source.close();
  }
}

/**
 * Keeps `path` and `path.1` each under `maxBytes`.
 * @returns what was done, or undefined when the file is still small
 */
export async function boundLog(
  runner: Runner,
  path: string,
  maxBytes: number,
): Promise<Rotation | undefined> {
  let st: Deno.FileInfo;
  try {
    st = Deno.lstatSync(path);
  } catch (error) {
    // Made again when it is gone (deleted by hand): a node's sandbox binds its serial log
    // in, and its next start would fail without one.
    // Group-writable: the node's QEMU (a uid of its own, in the group) appends to it.
    if (error instanceof Deno.errors.NotFound) {
      try {
        Deno.openSync(path, { write: true, createNew: true, mode: 0o660 }).close();
        Deno.chmodSync(path, 0o660);
      } catch { /* made meanwhile, or the directory is gone */ }
    }
    return undefined;
  }
  if (!st.isFile || st.size < maxBytes * ROTATE_AT) return undefined;
  const size = st.size;
  let copyError: string | undefined;
  try {
    copyRange(path, `${path}.1`, Math.max(0, size - Math.floor(maxBytes * ROTATE_AT)), size);
  } catch (error) {
    copyError = (error as Error).message;
  }
  // Whole filesystem blocks only; the rest of the last block stays (already in FILE.1).
  const block = st.blksize && st.blksize > 0 ? st.blksize : 4096;
  const collapse = Math.floor(size / block) * block;
  if (collapse > 0) {
    try {
      await runner.run([
        TOOLS.fallocate,
        "--collapse-range",
        "--offset",
        "0",
        "--length",
        String(collapse),
        path,
      ], {
        timeoutMs: 10_000,
      });
      return { cut: collapse, how: "collapse", ...(copyError ? { copyError } : {}) };
    } catch { /* not on this filesystem: truncate */ }
  }
  Deno.truncateSync(path, 0);
  return { cut: size, how: "truncate", ...(copyError ? { copyError } : {}) };
}
