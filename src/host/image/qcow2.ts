/**
 * A read-only view of a qcow2 disk's guest bytes (QEMU's docs/interop/qcow2.txt):
 * header, L1 and L2 tables, plain and deflate-compressed clusters, unallocated
 * clusters read as zeros. Enough to read a few files out of a base image
 * without qemu-img, a mount or a temporary copy. Anything it does not know
 * (encryption, an external data file, a backing file, zstd, extended L2
 * entries) is an ImageFormatError: the image then gets no opinion.
 */

import { inflateRaw } from "./inflate.ts";

export class ImageFormatError extends Error {
  override name = "ImageFormatError";
}

/** Guest bytes by offset. */
export interface BlockDevice {
  readonly size: number;
  read(offset: number, length: number): Uint8Array;
}

/** Raw access to the image file. */
export type ReadAt = (offset: number, length: number) => Uint8Array;

const MAGIC = 0x514649fb; // "QFI\xfb"
const OFFSET_MASK = 0x00fffffffffffe00n; // bits 9-55
const COMPRESSED = 1n << 62n;

function u32(b: Uint8Array, at: number): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(at);
}

function u64(b: Uint8Array, at: number): bigint {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(at);
}

/** True when the bytes start like a qcow2 image. */
export function isQcow2(head: Uint8Array): boolean {
  return head.length >= 4 && u32(head, 0) === MAGIC;
}

/**
 * Opens the guest view of a qcow2 image.
 * @throws {ImageFormatError} for what this reader does not handle
 */
export function openQcow2(readAt: ReadAt): BlockDevice {
  const h = readAt(0, 112);
  if (h.length < 72 || u32(h, 0) !== MAGIC) throw new ImageFormatError("not a qcow2 image");
  const version = u32(h, 4);
  if (version !== 2 && version !== 3) throw new ImageFormatError(`qcow2 version ${version}`);
  if (u64(h, 8) !== 0n) throw new ImageFormatError("has a backing file");
  const clusterBits = u32(h, 20);
  if (clusterBits < 9 || clusterBits > 21) throw new ImageFormatError("odd cluster size");
  const size = Number(u64(h, 24));
  if (u32(h, 32) !== 0) throw new ImageFormatError("encrypted");
  const l1Size = u32(h, 36);
  const l1Offset = Number(u64(h, 40));
  if (version === 3 && h.length >= 80) {
    // dirty (bit 0) is fine to read; external data, compression type, extended L2 are not.
    if ((u64(h, 72) & ~1n) !== 0n) throw new ImageFormatError("incompatible qcow2 features");
  }
  const clusterSize = 2 ** clusterBits;
  const l2Entries = clusterSize / 8;
  if (l1Size > 1 << 22) throw new ImageFormatError("L1 table too large");
  const l1 = readAt(l1Offset, l1Size * 8);
  const l2Cache = new Map<number, Uint8Array>();

  const l2Table = (offset: number): Uint8Array => {
    let table = l2Cache.get(offset);
    if (!table) {
      table = readAt(offset, clusterSize);
      if (l2Cache.size > 64) l2Cache.clear();
      l2Cache.set(offset, table);
    }
    return table;
  };

  /** One guest cluster's bytes (zeros when unallocated). */
  const cluster = (index: number): Uint8Array => {
    const l1Index = Math.floor(index / l2Entries);
    if (l1Index >= l1Size || (l1Index + 1) * 8 > l1.length) return new Uint8Array(clusterSize);
    const l2Offset = Number(u64(l1, l1Index * 8) & OFFSET_MASK);
    if (l2Offset === 0) return new Uint8Array(clusterSize);
    const entry = u64(l2Table(l2Offset), (index % l2Entries) * 8);
    if (entry & COMPRESSED) return compressedCluster(readAt, entry, clusterBits);
    const host = Number(entry & OFFSET_MASK);
    // Bit 0 (v3) marks a cluster that reads as zeros.
    if (host === 0 || (entry & 1n) === 1n) return new Uint8Array(clusterSize);
    return readAt(host, clusterSize);
  };

  return {
    size,
    read(offset, length) {
      const end = Math.min(size, offset + length);
      const out = new Uint8Array(Math.max(0, end - offset));
      let at = offset;
      while (at < end) {
        const index = Math.floor(at / clusterSize);
        const within = at - index * clusterSize;
        const take = Math.min(clusterSize - within, end - at);
        out.set(cluster(index).subarray(within, within + take), at - offset);
        at += take;
      }
      return out;
    },
  };
}

/** A compressed cluster: raw deflate of up to a few host sectors. */
function compressedCluster(readAt: ReadAt, entry: bigint, clusterBits: number): Uint8Array {
  const x = 62n - BigInt(clusterBits - 8);
  const offset = Number(entry & ((1n << x) - 1n));
  const sectors = Number((entry >> x) & ((1n << BigInt(clusterBits - 8)) - 1n)) + 1;
  const start = offset & ~511;
  const data = readAt(offset, sectors * 512 - (offset - start));
  const out = new Uint8Array(2 ** clusterBits);
  try {
    // Never more than one cluster out: a crafted cluster must not inflate to gigabytes.
    out.set(inflateRaw(data, out.length));
  } catch (error) {
    throw new ImageFormatError(
      `a compressed cluster does not inflate: ${(error as Error).message}`,
    );
  }
  return out;
}

/** A raw (not qcow2) disk image: guest bytes are file bytes. */
export function openRaw(readAt: ReadAt, size: number): BlockDevice {
  return { size, read: (offset, length) => readAt(offset, Math.min(length, size - offset)) };
}

/** A window of a device (a partition). */
export function slice(device: BlockDevice, start: number, size: number): BlockDevice {
  return {
    size,
    read: (offset, length) =>
      device.read(start + offset, Math.max(0, Math.min(length, size - offset))),
  };
}
