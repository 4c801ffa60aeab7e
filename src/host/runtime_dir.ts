/**
 * A unit's runtime directory, as the root broker keeps it. It is root's, with the service
 * user's group allowed to add entries and the sticky bit set (mode 1775): the manager makes
 * its own files there, and nobody but root can rename or remove an entry it does not own.
 * So `nodes/`, where systemd makes each node's runtime directory (and chowns it, as root,
 * following a link there, to the node's user), stays root's own and holds nothing but those
 * directories: no link the service user plants can redirect that chown. (When the service
 * user owned the runtime directory, it could rename `nodes/` away and plant one.)
 */

import { nodeRunDir } from "../plan/layout.ts";
import type { Paths } from "../plan/types.ts";

/** Root's, the service user's group may add entries, sticky. */
const RUNTIME_MODE = 0o1775;

/** lstat, or undefined when nothing is there. */
function look(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.lstatSync(path);
  } catch {
    return undefined;
  }
}

/**
 * `path` as a real directory of root's with this group and mode: a link or a file there goes
 * first; a directory is taken over in place (an older release's, with the guests' sockets
 * inside). Its parent must be root's (/run, /run/aos-units): then nothing can swap it.
 */
function reclaim(path: string, gid: number, mode: number): void {
  const st = look(path);
  if (st && !st.isDirectory) Deno.removeSync(path);
  if (!st || !st.isDirectory) Deno.mkdirSync(path, { recursive: true, mode: 0o755 });
  Deno.chownSync(path, 0, gid);
  Deno.chmodSync(path, mode);
}

/**
 * Makes the unit's runtime directory root's (sticky; the service user's group may add) and
 * its `nodes/` root's alone, holding only directories (each node's, made by systemd).
 * @param gid the service user's group
 */
export function ensureRuntimeDirs(paths: Paths, gid: number): void {
  reclaim(paths.runtimeDir, gid, RUNTIME_MODE);
  const nodes = nodeRunDir(paths, "x").replace(/\/[^/]+$/, "");
  reclaim(nodes, 0, 0o755);
  for (const entry of Deno.readDirSync(nodes)) {
    const path = `${nodes}/${entry.name}`;
    if (!look(path)?.isDirectory) Deno.removeSync(path);
  }
}
