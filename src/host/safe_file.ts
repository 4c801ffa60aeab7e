/**
 * Opening files in directories the service user (or a guest) can change, as
 * root: never through a symbolic link, never a FIFO or device that would block
 * or stream forever (O_NONBLOCK, then a regular-file check on the open
 * descriptor), and never more than a bounded number of bytes.
 *
 * O_NOFOLLOW alone is not enough: a Deno process whose read or write
 * permission names paths resolves links itself before it opens, so the flag
 * never reaches a link (measured on Deno 2.9: `--allow-read=DIR` opens
 * DIR/link's target, `-A` gets ELOOP). After the open, the path is looked at
 * again without following it and must be the very file the descriptor holds
 * (same device and inode), with one name only: a link swapped in before or
 * after the open, or a hard link to someone else's file, is refused.
 */

import fs from "node:fs";
import { RuntimeError } from "../base/errors.ts";

const FLAGS = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK;

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
 * Checks that the descriptor holds the regular file named `path` itself (see above),
 * closing it and throwing otherwise.
 * @returns the descriptor's stat
 */
function sameFile(fd: number, path: string): fs.Stats {
  const st = fs.fstatSync(fd);
  const refuse = (why: string): never => {
    fs.closeSync(fd);
    throw new UnsafeFileError(`Refusing ${path}: ${why}`);
  };
  if (!st.isFile()) refuse("not a regular file");
  let named: fs.Stats;
  const replaced = (): never => {
    fs.closeSync(fd);
    throw new ReplacedWhileOpenedError(path);
  };
  try {
    named = fs.lstatSync(path);
  } catch {
    return replaced();
  }
  if (named.isSymbolicLink()) refuse("it is a symbolic link");
  if (named.dev !== st.dev || named.ino !== st.ino) {
    // A regular file now: renamed over by an atomic writer (tried again). Anything else
    // swapped in is refused.
    if (named.isFile()) replaced();
    refuse("it changed while it was opened");
  }
  const names = Math.max(st.nlink, named.nlink);
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
      return openRegularOnce(path);
    } catch (error) {
      if (!(error instanceof ReplacedWhileOpenedError)) throw error;
      if (attempt === 3) {
        throw new UnsafeFileError(`Refusing ${path}: it changed while it was opened`);
      }
    }
  }
}

function openRegularOnce(path: string): OpenFile {
  let fd: number;
  try {
    fd = fs.openSync(path, FLAGS);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "ENOENT") throw new Deno.errors.NotFound(`${path} does not exist`);
    if (code === "ELOOP") throw new UnsafeFileError(`Refusing ${path}: it is a symbolic link`);
    throw error;
  }
  const st = sameFile(fd, path);
  return {
    path,
    size: st.size,
    uid: st.uid,
    read(offset, length) {
      const buffer = new Uint8Array(Math.max(0, Math.min(length, st.size - offset)));
      let done = 0;
      while (done < buffer.length) {
        const n = fs.readSync(fd, buffer, done, buffer.length - done, offset + done);
        if (n === 0) break;
        done += n;
      }
      return buffer.subarray(0, done);
    },
    close: () => fs.closeSync(fd),
  };
}

/** A file opened for appending: lines go at its end, never through a link. */
export interface AppendFile {
  append(bytes: Uint8Array): void;
  close(): void;
}

const APPEND = fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT |
  fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK;

/**
 * Opens (creating it if needed) a regular file for appending, refusing a link at its
 * last component and anything that is not a regular file (a FIFO, a device).
 * @throws {UnsafeFileError} for a link or a file that is not regular
 */
export function openAppend(path: string, mode = 0o640): AppendFile {
  let fd: number;
  try {
    fd = fs.openSync(path, APPEND, mode);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "ELOOP") throw new UnsafeFileError(`Refusing ${path}: it is a symbolic link`);
    // A FIFO without a reader (O_NONBLOCK makes that an error instead of a wait).
    if (code === "ENXIO") throw new UnsafeFileError(`Refusing ${path}: not a regular file`);
    throw error;
  }
  try {
    sameFile(fd, path);
  } catch (error) {
    if (!(error instanceof ReplacedWhileOpenedError)) throw error;
    throw new UnsafeFileError(`Refusing ${path}: it changed while it was opened`);
  }
  return {
    append(bytes) {
      let done = 0;
      while (done < bytes.length) done += fs.writeSync(fd, bytes, done, bytes.length - done);
    },
    close: () => fs.closeSync(fd),
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
  try {
    if (file.size > maxBytes) {
      throw new UnsafeFileError(`Refusing ${path}: ${file.size} bytes, more than ${maxBytes}`);
    }
    return new TextDecoder().decode(file.read(0, maxBytes));
  } finally {
    file.close();
  }
}
