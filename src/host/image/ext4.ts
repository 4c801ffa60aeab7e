/**
 * Reading files from an ext2/3/4 filesystem on a block device, read-only and in
 * bounded steps: superblock, group descriptors, inodes, extent trees or block
 * maps, directories (linear scan; htree blocks hold ordinary entries too),
 * symbolic links. What it does not handle (encryption, inline data beyond the
 * inode) is an ImageFormatError.
 */

import { type BlockDevice, ImageFormatError } from "./qcow2.ts";

const MAGIC = 0xef53;
const INCOMPAT_FILETYPE = 0x2;
const INCOMPAT_64BIT = 0x80;
const INCOMPAT_ENCRYPT = 0x10000;
const FLAG_EXTENTS = 0x80000;
const FLAG_INLINE = 0x10000000;
const S_IFMT = 0xf000;
const S_IFDIR = 0x4000;
const S_IFREG = 0x8000;
const S_IFLNK = 0xa000;
const ROOT_INODE = 2;
/** Bounds on work done for one file: the image is not trusted. */
const MAX_EXTENT_DEPTH = 5;
const MAX_DIR_BYTES = 4 * 1024 * 1024;
const MAX_LINK_HOPS = 8;
/** Blocks read for one file's map (index and indirect blocks): a crafted tree gets no more. */
const MAX_MAP_BLOCKS = 4096;

interface Inode {
  mode: number;
  size: number;
  flags: number;
  block: Uint8Array;
}

function le(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

export class Ext4 {
  readonly blockSize: number;
  readonly #inodesPerGroup: number;
  readonly #inodeSize: number;
  readonly #descSize: number;
  readonly #gdtBlock: number;
  readonly #incompat: number;
  readonly #groups: number;

  private constructor(readonly device: BlockDevice, sb: Uint8Array) {
    const s = le(sb);
    this.blockSize = 1024 << s.getUint32(0x18, true);
    this.#inodesPerGroup = s.getUint32(0x28, true);
    this.#inodeSize = s.getUint32(0x4c, true) >= 1 ? s.getUint16(0x58, true) : 128;
    this.#incompat = s.getUint32(0x60, true);
    this.#descSize = this.#incompat & INCOMPAT_64BIT ? s.getUint16(0xfe, true) || 64 : 32;
    this.#gdtBlock = s.getUint32(0x14, true) + 1;
    this.#groups = Math.ceil(s.getUint32(0x0, true) / Math.max(1, this.#inodesPerGroup));
    const log = s.getUint32(0x18, true);
    if (log > 6 || this.#inodeSize < 128 || this.#inodesPerGroup === 0) {
      throw new ImageFormatError("odd ext4 superblock");
    }
    if (this.#incompat & INCOMPAT_ENCRYPT) throw new ImageFormatError("encrypted ext4");
  }

  /** @throws {ImageFormatError} when the device holds no ext2/3/4 filesystem */
  static open(device: BlockDevice): Ext4 {
    const sb = device.read(1024, 1024);
    if (sb.length < 1024 || le(sb).getUint16(0x38, true) !== MAGIC) {
      throw new ImageFormatError("no ext4 filesystem");
    }
    return new Ext4(device, sb);
  }

  #readBlock(block: number): Uint8Array {
    return this.device.read(block * this.blockSize, this.blockSize);
  }

  #inode(n: number): Inode {
    const group = Math.floor((n - 1) / this.#inodesPerGroup);
    if (n < 1 || group >= this.#groups) throw new ImageFormatError(`inode ${n} out of range`);
    const desc = le(this.device.read(
      this.#gdtBlock * this.blockSize + group * this.#descSize,
      this.#descSize,
    ));
    const table = desc.getUint32(0x8, true) +
      (this.#descSize >= 64 ? desc.getUint32(0x28, true) * 2 ** 32 : 0);
    const raw = this.device.read(
      table * this.blockSize + ((n - 1) % this.#inodesPerGroup) * this.#inodeSize,
      Math.min(this.#inodeSize, 256),
    );
    const v = le(raw);
    return {
      mode: v.getUint16(0x0, true),
      size: v.getUint32(0x4, true) + (raw.length > 0x70 ? v.getUint32(0x6c, true) * 2 ** 32 : 0),
      flags: v.getUint32(0x20, true),
      block: raw.subarray(0x28, 0x28 + 60),
    };
  }

  /** The physical blocks of a file, in order, for its first `blocks` logical blocks. */
  #blocks(inode: Inode, blocks: number): number[] {
    const out: number[] = new Array(blocks).fill(0);
    const budget = { left: MAX_MAP_BLOCKS };
    if (inode.flags & FLAG_EXTENTS) {
      this.#extents(inode.block, out, 0, budget);
    } else {
      this.#blockMap(inode.block, out, budget);
    }
    return out;
  }

  #mapBlock(block: number, budget: { left: number }): Uint8Array {
    if (--budget.left < 0) throw new ImageFormatError("file map too large");
    return this.#readBlock(block);
  }

  #extents(node: Uint8Array, out: number[], depth: number, budget: { left: number }): void {
    const v = le(node);
    if (v.getUint16(0, true) !== 0xf30a) throw new ImageFormatError("bad extent header");
    if (depth > MAX_EXTENT_DEPTH) throw new ImageFormatError("extent tree too deep");
    const entries = v.getUint16(2, true);
    const leaf = v.getUint16(6, true) === 0;
    for (let i = 0; i < entries && 12 + (i + 1) * 12 <= node.length; i++) {
      const at = 12 + i * 12;
      const logical = v.getUint32(at, true);
      if (leaf) {
        let length = v.getUint16(at + 4, true);
        const uninitialized = length > 32768;
        if (uninitialized) length -= 32768;
        const start = v.getUint16(at + 6, true) * 2 ** 32 + v.getUint32(at + 8, true);
        for (let k = 0; k < length && logical + k < out.length; k++) {
          out[logical + k] = uninitialized ? 0 : start + k;
        }
      } else if (logical < out.length) {
        const child = v.getUint32(at + 4, true) + v.getUint16(at + 8, true) * 2 ** 32;
        this.#extents(this.#mapBlock(child, budget), out, depth + 1, budget);
      }
    }
  }

  #blockMap(iblock: Uint8Array, out: number[], budget: { left: number }): void {
    const v = le(iblock);
    const perBlock = this.blockSize / 4;
    let next = 0;
    const walk = (block: number, level: number) => {
      if (next >= out.length) return;
      if (level === 0) {
        out[next++] = block;
        return;
      }
      if (block === 0) {
        next += perBlock ** level;
        return;
      }
      const table = le(this.#mapBlock(block, budget));
      for (let i = 0; i < perBlock && next < out.length; i++) {
        walk(table.getUint32(i * 4, true), level - 1);
      }
    };
    for (let i = 0; i < 12; i++) walk(v.getUint32(i * 4, true), 0);
    for (let level = 1; level <= 3; level++) walk(v.getUint32((11 + level) * 4, true), level);
  }

  /** A file's bytes, at most `maxBytes`. */
  #content(inode: Inode, maxBytes: number): Uint8Array {
    const size = Math.min(inode.size, maxBytes);
    if (inode.flags & FLAG_INLINE) {
      if (inode.size > 60) throw new ImageFormatError("inline data beyond the inode");
      return inode.block.slice(0, size);
    }
    const count = Math.ceil(size / this.blockSize);
    const out = new Uint8Array(size);
    this.#blocks(inode, count).forEach((block, i) => {
      if (block === 0) return; // a hole
      const data = this.#readBlock(block);
      out.set(
        data.subarray(0, Math.min(this.blockSize, size - i * this.blockSize)),
        i * this.blockSize,
      );
    });
    return out;
  }

  /** A directory's live entries: inode number and name bytes (corrupt blocks skipped). */
  *#entries(dir: Inode): Generator<{ inode: number; name: Uint8Array }> {
    const data = this.#content(dir, MAX_DIR_BYTES);
    const v = le(data);
    const filetype = (this.#incompat & INCOMPAT_FILETYPE) !== 0;
    let at = 0;
    while (at + 8 <= data.length) {
      const inode = v.getUint32(at, true);
      const recLen = v.getUint16(at + 4, true);
      const nameLen = filetype ? data[at + 6]! : v.getUint16(at + 6, true);
      if (recLen < 8 || at + recLen > data.length) {
        // A corrupt entry ends this block; go on at the next one.
        at = (Math.floor(at / this.blockSize) + 1) * this.blockSize;
        continue;
      }
      if (inode !== 0 && at + 8 + nameLen <= data.length) {
        yield { inode, name: data.subarray(at + 8, at + 8 + nameLen) };
      }
      at += recLen;
    }
  }

  #lookup(dir: Inode, name: string): number | undefined {
    const want = new TextEncoder().encode(name);
    for (const entry of this.#entries(dir)) {
      if (entry.name.length === want.length && entry.name.every((b, i) => b === want[i])) {
        return entry.inode;
      }
    }
    return undefined;
  }

  /** The target of a symbolic link. */
  #linkTarget(inode: Inode): string {
    const fast = !(inode.flags & (FLAG_EXTENTS | FLAG_INLINE)) && inode.size < 60;
    const bytes = fast ? inode.block.subarray(0, inode.size) : this.#content(inode, 4096);
    return new TextDecoder().decode(bytes);
  }

  /**
   * A regular file's content by absolute path, following links inside the
   * filesystem (never outside it).
   * @returns undefined when there is no such file
   */
  readFile(path: string, maxBytes = 64 * 1024): Uint8Array | undefined {
    const inode = this.#resolve(path, 0);
    if (!inode || (inode.mode & S_IFMT) !== S_IFREG) return undefined;
    return this.#content(inode, maxBytes);
  }

  /** The names in a directory (without "." and ".."), or undefined when it is none. */
  listDir(path: string): string[] | undefined {
    const dir = this.#resolve(path, 0);
    if (!dir || (dir.mode & S_IFMT) !== S_IFDIR) return undefined;
    const names: string[] = [];
    for (const entry of this.#entries(dir)) {
      const name = new TextDecoder().decode(entry.name);
      if (name !== "." && name !== "..") names.push(name);
    }
    return names.sort();
  }

  #resolve(path: string, hops: number): Inode | undefined {
    if (hops > MAX_LINK_HOPS) return undefined;
    const parts = path.split("/").filter((p) => p !== "" && p !== ".");
    let current = this.#inode(ROOT_INODE);
    const walked: string[] = [];
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      if (part === "..") {
        walked.pop();
        current = this.#resolve(`/${walked.join("/")}`, hops + 1) ?? current;
        continue;
      }
      if ((current.mode & S_IFMT) !== S_IFDIR) return undefined;
      const n = this.#lookup(current, part);
      if (n === undefined) return undefined;
      const inode = this.#inode(n);
      if ((inode.mode & S_IFMT) === S_IFLNK) {
        const target = this.#linkTarget(inode);
        const base = target.startsWith("/") ? target : `/${walked.join("/")}/${target}`;
        const rest = parts.slice(i + 1).join("/");
        return this.#resolve(rest ? `${base}/${rest}` : base, hops + 1);
      }
      walked.push(part);
      current = inode;
    }
    return current;
  }
}
