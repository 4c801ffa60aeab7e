/**
 * What each base image says about its own network, read out of the image
 * itself: read-only, without mounting or copying anything (qcow2 -> GPT ->
 * ext4 -> /etc/systemd/network/*.network and /etc/hosts). An image that cannot
 * be read gets no opinion, never an error. Results are kept per image, keyed
 * by size and mtime, in the runtime directory: a start does not read the disk
 * again.
 */

import {
  type ImageNetwork,
  matchesWiredNic,
  parseHosts,
  parseNetworkFile,
  parseUnitFile,
} from "../../base/image_network.ts";
import { brokerDir, imageCacheFile } from "../../plan/layout.ts";
import type { ImageFile, Paths } from "../../plan/types.ts";
import { writeFileAtomic } from "../atomic.ts";
import { openRegular, readSmallFile } from "../safe_file.ts";
import { Ext4 } from "./ext4.ts";
import { partitions } from "./gpt.ts";
import { type BlockDevice, isQcow2, openQcow2, openRaw, slice } from "./qcow2.ts";

const NETWORK_DIR = "/etc/systemd/network";
/** Names the root partition of an AosCore disk goes by (it is also /dev/sda3). */
const ROOT_NAMES = ["rootfs", "rootfs_a", "root", "aos-root"];

/** The root filesystem of a disk: a partition named like one, else partition 3, else any. */
function rootFilesystem(disk: BlockDevice): Ext4 | undefined {
  const parts = partitions(disk);
  const ordered = [
    ...parts.filter((p) => ROOT_NAMES.includes(p.name.toLowerCase())),
    ...parts.filter((p) => p.number === 3),
    ...parts,
  ];
  for (const p of new Set(ordered)) {
    try {
      return Ext4.open(slice(disk, p.start, p.size));
    } catch { /* not ext4: try the next */ }
  }
  return undefined;
}

/** The network facts inside one filesystem, or undefined when it configures nothing. */
export function networkOf(fs: Ext4): ImageNetwork | undefined {
  const decode = (bytes: Uint8Array | undefined) =>
    bytes ? new TextDecoder().decode(bytes) : undefined;
  const files = (fs.listDir(NETWORK_DIR) ?? []).filter((n) => n.endsWith(".network"));
  let found: Omit<ImageNetwork, "hosts"> | undefined;
  for (const name of files) {
    const path = `${NETWORK_DIR}/${name}`;
    const text = decode(fs.readFile(path));
    if (text === undefined || !matchesWiredNic(parseUnitFile(text))) continue;
    found = parseNetworkFile(path, text);
    break;
  }
  const hostsText = decode(fs.readFile("/etc/hosts"));
  const hosts = hostsText === undefined ? {} : parseHosts(hostsText);
  if (!found && Object.keys(hosts).length === 0) return undefined;
  return { ...(found ?? { source: "/etc/hosts", dns: [], dhcp: false }), hosts };
}

/** A cached answer of the right shape (the file is root's, but a bad one must not break). */
function wellFormed(n: unknown): n is ImageNetwork | null {
  if (n === null) return true;
  const x = n as ImageNetwork;
  return typeof x === "object" && typeof x.source === "string" && Array.isArray(x.dns) &&
    x.dns.every((d) => typeof d === "string") && typeof x.dhcp === "boolean" &&
    typeof x.hosts === "object" && x.hosts !== null &&
    Object.values(x.hosts).every((v) => typeof v === "string") &&
    (x.address === undefined ||
      (typeof x.address.ip === "string" && typeof x.address.prefix === "number")) &&
    (x.gateway === undefined || typeof x.gateway === "string");
}

/** Reads one image; undefined when it cannot be read or configures nothing. */
export function inspectImage(path: string): ImageNetwork | undefined {
  let file;
  try {
    file = openRegular(path);
  } catch {
    return undefined;
  }
  try {
    const readAt = (offset: number, length: number) => file.read(offset, length);
    const disk = isQcow2(readAt(0, 4)) ? openQcow2(readAt) : openRaw(readAt, file.size);
    const fs = rootFilesystem(disk);
    return fs ? networkOf(fs) : undefined;
  } catch {
    return undefined;
  } finally {
    file.close();
  }
}

/** A qcow2 image's virtual size in bytes (from its header), or undefined. */
export function imageVirtualSize(path: string): number | undefined {
  try {
    const file = openRegular(path);
    try {
      const header = file.read(0, 32);
      if (!isQcow2(header) || header.length < 32) return undefined;
      return Number(new DataView(header.buffer, header.byteOffset, 32).getBigUint64(24));
    } finally {
      file.close();
    }
  } catch {
    return undefined;
  }
}

interface CacheEntry {
  size: number;
  mtime: string | null;
  network: ImageNetwork | null;
}

interface Cache {
  version: 1;
  images: Record<string, CacheEntry>;
}

function readCache(file: string): Cache {
  try {
    const parsed = JSON.parse(readSmallFile(file, 1024 * 1024) ?? "") as Cache;
    if (parsed.version === 1 && typeof parsed.images === "object") return parsed;
  } catch { /* none yet, or not ours to read */ }
  return { version: 1, images: {} };
}

/**
 * The network facts of every image, from the cache where size and mtime match.
 * @param dir the images directory
 * @param cacheDir where the cache lives (written when the caller may; else only read)
 */
export function inspectImages(
  dir: string,
  images: readonly ImageFile[],
  paths: Paths,
  /** Only the broker (root) records: a cache another user wrote would decide for root. */
  record = false,
): Record<string, ImageNetwork> {
  const file = imageCacheFile(paths);
  const cache = readCache(file);
  const out: Record<string, ImageNetwork> = {};
  const kept: Record<string, CacheEntry> = {};
  let changed = false;
  for (const image of images) {
    if (!image.readable) continue;
    const path = `${dir}/${image.name}`;
    let st: Deno.FileInfo;
    try {
      st = Deno.lstatSync(path);
    } catch {
      continue;
    }
    const mtime = st.mtime?.toISOString() ?? null;
    let entry = cache.images[image.name];
    if (!entry || entry.size !== st.size || entry.mtime !== mtime || !wellFormed(entry.network)) {
      entry = { size: st.size, mtime, network: inspectImage(path) ?? null };
      cache.images[image.name] = entry;
      changed = true;
    }
    kept[image.name] = entry;
    if (entry.network) out[image.name] = entry.network;
  }
  // Images no longer there leave the cache too.
  changed ||= Object.keys(cache.images).length !== Object.keys(kept).length;
  cache.images = kept;
  if (changed && record) {
    try {
      Deno.mkdirSync(brokerDir(paths), { recursive: true, mode: 0o755 });
      writeFileAtomic(file, JSON.stringify(cache, null, 2) + "\n", 0o644);
    } catch { /* a caller that may not write there reads the images again next time */ }
  }
  return out;
}
