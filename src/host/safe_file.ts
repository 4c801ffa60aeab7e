/**
 * Opening files in directories the service user (or a guest, or dnsmasq) can change:
 * never through a symbolic link, never a FIFO or device, never more than a bounded
 * number of bytes.
 *
 * Before the open, the path is looked at without following it: a link, a FIFO, a
 * device or a file with a second name (a hard link to someone else's file) is refused
 * unopened. After the open, the path is looked at again and must still be the very
 * regular file the descriptor holds (same device and inode, one name): a link or file
 * swapped in around the open is refused, and nothing of it is read.
 *
 * Plain Deno file APIs, not node:fs's O_NOFOLLOW|O_NONBLOCK: any `node:` module loads
 * Deno's Node compatibility layer, about 8 MiB of the resident manager and 25 ms of
 * every cold start (aos-unit(8), FOOTPRINT). What that leaves open is the window
 * between the look and the open, which only a writer of the directory can use:
 * - A link swapped in is followed by the open, even to a target outside this process's
 *   Deno grants (measured on Deno 2.9; O_NOFOLLOW did not stop that either, since Deno
 *   resolves the link itself). The check after refuses it unread; the open itself is
 *   what remains (see aos-unit(8), SECURITY MODEL).
 * - A FIFO (or a terminal) swapped in makes a synchronous open wait. Files that a
 *   less trusted uid can replace and a resident process reads over and over (dnsmasq's
 *   leases, read by the manager) are read with readSmallFileAsync(): its open runs off
 *   the event loop, and one that does not return in time is refused.
 */

import { RuntimeError } from "../base/errors.ts";

/**
 * A file renamed over (or removed) between its open and the check: what an atomic writer
 * does to leases.json, network.conf and the like. Opening again sees the new file.
 */
class ReplacedWhileOpenedError extends Error {}

/** A file refused because of what it is, not because it is missing. */
export class UnsafeFileError extends RuntimeError {
  override name = "UnsafeFileError";
}

/**
 * Refuses what the path names unless it is a regular file of one name, without opening it.
 * @throws {Deno.errors.NotFound} when nothing is there
 */
function lookBeforeOpen(path: string): void {
  const named = Deno.lstatSync(path);
  if (named.isSymlink) throw new UnsafeFileError(`Refusing ${path}: it is a symbolic link`);
  if (!named.isFile) throw new UnsafeFileError(`Refusing ${path}: not a regular file`);
  if ((named.nlink ?? 1) > 1) {
    throw new UnsafeFileError(`Refusing ${path}: it has ${named.nlink} names (a hard link)`);
  }
}

/**
 * Checks that the open file holds the regular file named `path` itself (see above),
 * closing it and throwing otherwise.
 * @returns the open file's stat
 */
function sameFile(file: Deno.FsFile, path: string): Deno.FileInfo {
  let st: Deno.FileInfo;
  try {
    st = file.statSync();
  } catch (error) {
    // A target outside this process's grants (a link swapped in): never leak the descriptor.
    file.close();
    if (error instanceof Deno.errors.NotCapable) {
      throw new UnsafeFileError(`Refusing ${path}: it changed while it was opened`);
    }
    throw error;
  }
  const refuse = (why: string): never => {
    file.close();
    throw new UnsafeFileError(`Refusing ${path}: ${why}`);
  };
  if (!st.isFile) refuse("not a regular file");
  let named: Deno.FileInfo;
  const replaced = (): never => {
    file.close();
    throw new ReplacedWhileOpenedError(path);
  };
  try {
    named = Deno.lstatSync(path);
  } catch {
    return replaced();
  }
  if (named.isSymlink) refuse("it is a symbolic link");
  if (named.dev !== st.dev || named.ino !== st.ino) {
    // A regular file now: renamed over by an atomic writer (tried again). Anything else
    // swapped in is refused.
    if (named.isFile) replaced();
    refuse("it changed while it was opened");
  }
  const names = Math.max(st.nlink ?? 1, named.nlink ?? 1);
  if (names > 1) refuse(`it has ${names} names (a hard link)`);
  return st;
}

/** An open regular file, read by offset. */
export interface OpenFile {
  readonly path: string;
  readonly size: number;
  /** The owner's uid (who made it: the service user, root, ...). */
  readonly uid: number;
  /** Up to `length` bytes at `offset` (fewer at the end of the file). */
  read(offset: number, length: number): Uint8Array;
  close(): void;
}

/**
 * Opens a regular file without following a link at its last component.
 * @throws {Deno.errors.NotFound} when it does not exist
 * @throws {UnsafeFileError} for a link, a FIFO, a device, a directory
 */
export function openRegular(path: string): OpenFile {
  for (let attempt = 1;; attempt++) {
    try {
      lookBeforeOpen(path);
      // Removed since the look: NotFound, as if the open had come first.
      const file = Deno.openSync(path, { read: true });
      return openFileOf(file, sameFile(file, path), path);
    } catch (error) {
      againOrRefuse(error, path, attempt);
    }
  }
}

/** After a failed attempt: rethrows, unless an atomic writer renamed a file over it. */
function againOrRefuse(error: unknown, path: string, attempt: number): void {
  if (!(error instanceof ReplacedWhileOpenedError)) throw error;
  if (attempt === 3) throw new UnsafeFileError(`Refusing ${path}: it changed while it was opened`);
}

/** The checked open file, read by offset. */
function openFileOf(file: Deno.FsFile, st: Deno.FileInfo, path: string): OpenFile {
  return {
    path,
    size: st.size,
    uid: st.uid ?? -1,
    read(offset, length) {
      const buffer = new Uint8Array(Math.max(0, Math.min(length, st.size - offset)));
      file.seekSync(offset, Deno.SeekMode.Start);
      let done = 0;
      while (done < buffer.length) {
        const n = file.readSync(buffer.subarray(done));
        if (n === null || n === 0) break;
        done += n;
      }
      return buffer.subarray(0, done);
    },
    close: () => file.close(),
  };
}

/** A file opened for appending: lines go at its end, never through a link. */
export interface AppendFile {
  append(bytes: Uint8Array): void;
  close(): void;
}

/**
 * Opens (creating it if needed) a regular file for appending, refusing a link at its
 * last component and anything that is not a regular file (a FIFO, a device).
 * @throws {UnsafeFileError} for a link or a file that is not regular
 */
export function openAppend(path: string, mode = 0o640): AppendFile {
  let file: Deno.FsFile;
  try {
    // O_CREAT|O_EXCL: never through a link, never onto anything already there.
    file = Deno.openSync(path, { write: true, append: true, createNew: true, mode });
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    lookBeforeOpen(path);
    file = Deno.openSync(path, { write: true, append: true });
  }
  try {
    sameFile(file, path);
  } catch (error) {
    if (!(error instanceof ReplacedWhileOpenedError)) throw error;
    throw new UnsafeFileError(`Refusing ${path}: it changed while it was opened`);
  }
  return {
    append(bytes) {
      let done = 0;
      while (done < bytes.length) done += file.writeSync(bytes.subarray(done));
    },
    close: () => file.close(),
  };
}

/**
 * The text of a small file, refusing links and non-regular files.
 * @returns undefined when the file does not exist
 * @throws {UnsafeFileError} when it is not a regular file or larger than `maxBytes`
 */
export function readSmallFile(path: string, maxBytes: number): string | undefined {
  let file: OpenFile;
  try {
    file = openRegular(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  return textOf(file, maxBytes);
}

/** The whole text of an open file of at most `maxBytes`; closes it. */
function textOf(file: OpenFile, maxBytes: number): string {
  try {
    if (file.size > maxBytes) {
      throw new UnsafeFileError(`Refusing ${file.path}: ${file.size} bytes, more than ${maxBytes}`);
    }
    return new TextDecoder().decode(file.read(0, maxBytes));
  } finally {
    file.close();
  }
}

/** How long an open may take before the file is taken for a FIFO or device swapped in. */
const OPEN_DEADLINE_MS = 2000;

/** An open that did not return in time: something that blocks was swapped in. */
export class OpenBlockedError extends UnsafeFileError {
  override name = "OpenBlockedError";
}

/** Opens `path` for reading off the event loop, within OPEN_DEADLINE_MS. */
export async function openWithin(path: string): Promise<Deno.FsFile> {
  const opening = Deno.open(path, { read: true });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      opening,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new OpenBlockedError(
                `Refusing ${path}: its open did not return in ${OPEN_DEADLINE_MS} ms (a FIFO or device was put there)`,
              ),
            ),
          OPEN_DEADLINE_MS,
        );
      }),
    ]);
  } catch (error) {
    // Whatever the late open gets is closed when it comes.
    opening.then((f) => f.close(), () => {});
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * readSmallFile() for a file a less trusted uid can replace, read by a process that must
 * not stall: the open runs off the event loop and is refused when it does not return.
 * @returns undefined when the file does not exist
 * @throws {OpenBlockedError} when the open did not return in time (its thread stays
 *   blocked until the FIFO gets a writer: the caller should stop reading that path)
 * @throws {UnsafeFileError} for a link, a FIFO, a device, more than `maxBytes`
 */
export async function readSmallFileAsync(
  path: string,
  maxBytes: number,
): Promise<string | undefined> {
  for (let attempt = 1;; attempt++) {
    let file: OpenFile;
    try {
      lookBeforeOpen(path);
      const opened = await openWithin(path);
      file = openFileOf(opened, sameFile(opened, path), path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      againOrRefuse(error, path, attempt);
      continue;
    }
    return textOf(file, maxBytes);
  }
}
