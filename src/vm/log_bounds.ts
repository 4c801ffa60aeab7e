/**
 * Size-bounded logs: a guest that writes its console flat out must not fill
 * the disk between two logrotate runs. Past half of its cap a log
 * is copied to FILE.1 (replacing the older copy) and truncated in place;
 * QEMU appends (O_APPEND), so it simply goes on at the start.
 */

import { writeFileAtomic } from "../host/atomic.ts";
import { readTail } from "./failures.ts";

/** Rotates when the file passes this share of its cap: the rest is room for what a guest writes until the next check (every 250 ms). */
export const ROTATE_AT = 0.5;

/**
 * Keeps `path` and `path.1` each under `maxBytes`.
 * @returns true when the file was rotated
 */
export function boundLog(path: string, maxBytes: number): boolean {
  let size: number;
  try {
    size = Deno.statSync(path).size;
  } catch {
    return false;
  }
  if (size < maxBytes * ROTATE_AT) return false;
  writeFileAtomic(`${path}.1`, readTail(path, Math.floor(maxBytes * ROTATE_AT)), 0o640);
  Deno.truncateSync(path, 0);
  return true;
}
