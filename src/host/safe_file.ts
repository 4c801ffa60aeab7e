/**
 * Opening files in directories the service user (or a guest) can change, as
 * root: never through a symbolic link (O_NOFOLLOW), never a FIFO or device
 * that would block or stream forever (O_NONBLOCK, then a regular-file check on
 * the open descriptor), and never more than a bounded number of bytes.
 */

import fs from "node:fs";
import { RuntimeError } from "../base/errors.ts";

const FLAGS = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK;

/** A file refused because of what it is, not because it is missing. */
export class UnsafeFileError extends RuntimeError {
  override name = "UnsafeFileError";
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
  let fd: number;
  try {
    fd = fs.openSync(path, FLAGS);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "ENOENT") throw new Deno.errors.NotFound(`${path} does not exist`);
    if (code === "ELOOP") throw new UnsafeFileError(`Refusing ${path}: it is a symbolic link`);
    throw error;
  }
  const st = fs.fstatSync(fd);
  if (!st.isFile()) {
    fs.closeSync(fd);
    throw new UnsafeFileError(`Refusing ${path}: not a regular file`);
  }
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
