/**
 * Crash-safe file replacement: write a new file beside the target, flush it
 * to disk, rename it over the target, flush the directory. A crash or power
 * loss leaves either the old or the new content, never a torn file.
 *
 * The temporary file is created with O_EXCL (`createNew`), which never follows
 * a symlink, and rename(2) replaces a planted symlink instead of writing
 * through it: safe in directories other users can write.
 */

/** Replaces `path` with `content` atomically and durably. */
export function writeFileAtomic(
  path: string,
  content: string | Uint8Array,
  mode = 0o644,
  owner?: { uid: number; gid: number },
): void {
  const dir = path.slice(0, path.lastIndexOf("/")) || "/";
  const base = path.slice(path.lastIndexOf("/") + 1);
  const bytes = typeof content === "string" ? new TextEncoder().encode(content) : content;
  const tmp = `${dir}/.${base}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  // The process umask applies (aos-unit.service: UMask=0022; Deno has no fchmod).
  const file = Deno.openSync(tmp, { write: true, createNew: true, mode });
  try {
    let written = 0;
    while (written < bytes.length) written += file.writeSync(bytes.subarray(written));
    file.syncSync();
  } catch (error) {
    file.close();
    Deno.removeSync(tmp);
    throw error;
  }
  file.close();
  try {
    // Only where nobody else can replace the new file first (a root-owned sticky directory).
    if (owner) Deno.chownSync(tmp, owner.uid, owner.gid);
    Deno.renameSync(tmp, path);
  } catch (error) {
    Deno.removeSync(tmp);
    throw error;
  }
  syncDirectory(dir);
}

/** Makes a rename in `dir` durable; a best effort where the directory cannot be opened. */
function syncDirectory(dir: string): void {
  try {
    const handle = Deno.openSync(dir, { read: true });
    try {
      handle.syncSync();
    } finally {
      handle.close();
    }
  } catch { /* not permitted to open it: the rename itself is still atomic */ }
}

/** True when `path` is a symlink (lstat): root never reads or writes through one it did not make. */
export function isSymlink(path: string): boolean {
  try {
    return Deno.lstatSync(path).isSymlink;
  } catch {
    return false;
  }
}
