/** The unit's network record (network.conf in its runtime directory), as startup wrote it. */

import { readSmallFile } from "./safe_file.ts";

/**
 * One value of the record, or undefined when the record or the key is missing. The
 * runtime directory is the service user's: only a regular file is read, and callers
 * check the value's form before they act on it.
 */
export function recordedValue(runtimeDir: string, key: string): string | undefined {
  try {
    const text = readSmallFile(`${runtimeDir}/network.conf`, 4096) ?? "";
    return new RegExp(`^${key}=(\\S+)$`, "m").exec(text)?.[1];
  } catch {
    return undefined;
  }
}
