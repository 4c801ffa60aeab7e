/**
 * A unit's runtime directory, as the root broker keeps it. It is root's, with the service
 * user's group allowed to add entries and the sticky bit set (mode 1775): the manager makes
 * its own files there, and nobody but root can rename or remove an entry it does not own.
 * So `nodes/`, where systemd makes each node's runtime directory (and chowns it, as root,
 * following a link there, to the node's user), stays root's own: no link the service user
 * plants can redirect that chown. (When the service user owned the runtime directory, it
 * could rename `nodes/` away and plant one.)
 */

import { RuntimeError } from "../base/errors.ts";
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
 * Makes the unit's runtime directory root's (sticky; the service user's group may add) and
 * its `nodes/` root's alone. Its parent (/run, /run/aos-units) is root's, so the runtime
 * directory itself cannot be swapped; an older release's is taken over in place, with the
 * guests' sockets inside.
 * @param gid the service user's group
 * @throws {RuntimeError} when something else takes the place of nodes/ while it is made
 */
export function ensureRuntimeDirs(paths: Paths, gid: number): void {
  const dir = paths.runtimeDir;
  const st = look(dir);
  if (st && !st.isDirectory) Deno.removeSync(dir);
  if (!st?.isDirectory) Deno.mkdirSync(dir, { recursive: true, mode: 0o755 });
  Deno.chownSync(dir, 0, gid);
  Deno.chmodSync(dir, RUNTIME_MODE);
  const nodes = nodeRunDir(paths, "x").replace(/\/[^/]+$/, "");
  const was = look(nodes);
  if (was?.isDirectory && was.uid === 0) return;
  // Anything else there is the service user's (or an older layout's): moved aside, never
  // followed (rename does not), and nodes/ made anew; its entry, root's in a sticky
  // directory, can then be neither swapped nor moved.
  if (was) Deno.renameSync(nodes, `${dir}/.nodes-${crypto.randomUUID().slice(0, 8)}.stale`);
  try {
    Deno.mkdirSync(nodes, { mode: 0o755 });
  } catch (error) {
    throw new RuntimeError(`Cannot make ${nodes}: ${(error as Error).message}`, {
      hint: "something else keeps taking its place; look at who writes in " + dir,
    });
  }
  Deno.chownSync(nodes, 0, 0);
  Deno.chmodSync(nodes, 0o755);
}
