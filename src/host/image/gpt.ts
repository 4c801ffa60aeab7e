/** Partition tables of a disk: GPT (the AosCore images), else the MBR's four primaries. */

import { type BlockDevice, ImageFormatError } from "./qcow2.ts";

export interface Partition {
  /** 1-based, as Linux numbers them (/dev/sda3 is number 3). */
  number: number;
  name: string;
  start: number;
  size: number;
}

const SECTOR = 512;

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function gptPartitions(disk: BlockDevice): Partition[] | undefined {
  const header = disk.read(SECTOR, SECTOR);
  if (new TextDecoder().decode(header.subarray(0, 8)) !== "EFI PART") return undefined;
  const h = view(header);
  const entriesLba = Number(h.getBigUint64(72, true));
  const count = h.getUint32(80, true);
  const entrySize = h.getUint32(84, true);
  if (count > 256 || entrySize < 128 || entrySize > 1024) {
    throw new ImageFormatError("odd GPT header");
  }
  const table = disk.read(entriesLba * SECTOR, count * entrySize);
  const out: Partition[] = [];
  for (let i = 0; i < count && (i + 1) * entrySize <= table.length; i++) {
    const entry = table.subarray(i * entrySize, (i + 1) * entrySize);
    if (entry.subarray(0, 16).every((b) => b === 0)) continue;
    const e = view(entry);
    const first = Number(e.getBigUint64(32, true));
    const last = Number(e.getBigUint64(40, true));
    const name = new TextDecoder("utf-16le").decode(entry.subarray(56, 128)).replace(/\0.*$/s, "");
    out.push({ number: i + 1, name, start: first * SECTOR, size: (last - first + 1) * SECTOR });
  }
  return out;
}

function mbrPartitions(disk: BlockDevice): Partition[] {
  const mbr = disk.read(0, SECTOR);
  if (mbr.length < SECTOR || mbr[510] !== 0x55 || mbr[511] !== 0xaa) return [];
  const m = view(mbr);
  const out: Partition[] = [];
  for (let i = 0; i < 4; i++) {
    const at = 446 + i * 16;
    const type = mbr[at + 4];
    const start = m.getUint32(at + 8, true);
    const sectors = m.getUint32(at + 12, true);
    if (type === 0 || type === 0xee || sectors === 0) continue;
    out.push({ number: i + 1, name: "", start: start * SECTOR, size: sectors * SECTOR });
  }
  return out;
}

export function partitions(disk: BlockDevice): Partition[] {
  return gptPartitions(disk) ?? mbrPartitions(disk);
}
