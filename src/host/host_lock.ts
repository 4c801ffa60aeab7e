/**
 * Host-wide locks of the root broker: every unit's broker may run at once (units start in
 * parallel at boot), and some checks hold only until another unit acts on the host. A lock
 * is a file in root's own directory (/run/aos-unit-root), held with flock: closing the
 * file, or the process ending, releases it.
 */

import type { Paths } from "../plan/types.ts";

/** Runs `work` while this process alone, of every unit's broker, holds lock `name`. */
export async function withHostLock<T>(
  paths: Paths,
  name: string,
  work: () => Promise<T>,
): Promise<T> {
  Deno.mkdirSync(paths.hostDir, { recursive: true, mode: 0o755 });
  const file = Deno.openSync(`${paths.hostDir}/${name}.lock`, {
    read: true,
    write: true,
    create: true,
    mode: 0o600,
  });
  try {
    await file.lock(true);
    return await work();
  } finally {
    file.close();
  }
}
