/**
 * A node's disks: the base image is never written. QEMU boots a
 * copy-on-write overlay under the node's state directory; UEFI variables
 * persist next to it (AosCore keeps A/B boot state there).
 */

import { RuntimeError, UsageError } from "../base/errors.ts";
import { writeFileAtomic } from "../host/atomic.ts";
import { readSmallFile } from "../host/safe_file.ts";
import type { Runner } from "../host/runner.ts";
import { TOOLS } from "../base/tools.ts";
import { FIRMWARE_PACKAGE } from "../base/tools.ts";
import type { NodeFiles } from "../plan/preparation.ts";

/** What identifies the base image an overlay was made from. */
export interface BaseIdentity {
  path: string;
  size: number;
  mtime: string | null;
  ino: number | null;
}

export function baseRecordPath(node: NodeFiles): string {
  return `${node.dir}/base.json`;
}

/** @throws when the file cannot be looked at */
export function identityOf(path: string): BaseIdentity {
  const st = Deno.statSync(path);
  return { path, size: st.size, mtime: st.mtime?.toISOString() ?? null, ino: st.ino };
}

function sameBase(a: BaseIdentity, b: BaseIdentity): boolean {
  return a.path === b.path && a.size === b.size && a.mtime === b.mtime && a.ino === b.ino;
}

function problem(node: NodeFiles, message: string): UsageError {
  return new UsageError(`Node "${node.name}": ${message}`);
}

/** The record beside the overlay: the service user's file, read by root as well (the broker). */
function readRecord(node: NodeFiles): BaseIdentity | undefined {
  try {
    return JSON.parse(readSmallFile(baseRecordPath(node), 64 * 1024) ?? "") as BaseIdentity;
  } catch {
    return undefined;
  }
}

function recordMatches(node: NodeFiles, current: BaseIdentity): boolean {
  const recorded = readRecord(node);
  return recorded !== undefined && sameBase(recorded, current);
}

function isFile(path: string): boolean {
  try {
    const st = Deno.lstatSync(path);
    return st.isFile;
  } catch {
    return false;
  }
}

/**
 * What is missing before a node can boot (nothing, usually): checked with
 * lstat only, so the root broker can decide whether the unprivileged
 * `aos-unit prepare` must run, without writing anything itself.
 * @returns readable reasons; empty when the node is ready
 */
export function preparationNeeded(node: NodeFiles, spool: string): string[] {
  const reasons: string[] = [];
  if (!isFile(node.overlay)) reasons.push(`no overlay ${node.overlay}`);
  if (node.efiVars && !isFile(node.efiVars.path)) reasons.push(`no UEFI variables`);
  if (!isFile(node.serialLog)) reasons.push(`no serial log ${node.serialLog}`);
  if (!isFile(spool)) reasons.push(`no crash spool ${spool}`);
  // Made or restored without the group's access (see openToNode()), or by an older release.
  const mode = (path: string) => {
    try {
      return (Deno.lstatSync(path).mode ?? 0) & 0o777;
    } catch {
      return undefined;
    }
  };
  const files = [node.overlay, node.serialLog, spool, ...(node.efiVars ? [node.efiVars.path] : [])];
  const closed = files.filter((f) => ((mode(f) ?? 0o660) & 0o660) !== 0o660);
  if (closed.length > 0) reasons.push(`not open to its QEMU: ${closed.join(", ")}`);
  if (((mode(node.dir) ?? 0) & 0o022) !== 0) reasons.push(`${node.dir} writable by others`);
  if (((mode(node.image.path) ?? 0o040) & 0o040) === 0) {
    reasons.push(`base image ${node.image.path} not readable to the group`);
  }
  let current: BaseIdentity | undefined;
  try {
    current = identityOf(node.image.path);
  } catch {
    reasons.push(`base image ${node.image.path} missing`);
  }
  if (current && !recordMatches(node, current)) reasons.push("base image not checked yet");
  return reasons;
}

/** Refuses base images QEMU would write through or that depend on other files. */
export async function checkBaseImage(runner: Runner, node: NodeFiles): Promise<void> {
  const base = node.image.path;
  try {
    Deno.statSync(base);
  } catch {
    throw problem(
      node,
      `image ${base} does not exist; copy the node's .qcow2 there (see aos-unit(8))`,
    );
  }
  // -U: the image may be open by a running QEMU of a previous instance.
  const r = await runner.run([TOOLS.qemuImg, "info", "-U", "--output=json", base]);
  const info = JSON.parse(r.stdout) as {
    format?: string;
    "backing-filename"?: string;
    "format-specific"?: { data?: { "data-file"?: string } };
  };
  if (info.format !== "qcow2") {
    throw problem(
      node,
      `image ${base} is ${info.format ?? "not a disk image"}, not qcow2 (only qcow2 is supported)`,
    );
  }
  if (info["backing-filename"]) {
    throw problem(
      node,
      `image ${base} has a backing file (${
        info["backing-filename"]
      }); flatten it first: qemu-img convert -O qcow2 ${base} NEW.qcow2`,
    );
  }
  if (info["format-specific"]?.data?.["data-file"]) {
    throw problem(
      node,
      `image ${base} keeps its data in an external file; aos-unit needs a self-contained qcow2`,
    );
  }
}

/**
 * Creates the overlay (once) and the UEFI variable store (once). Detects a
 * base image replaced since the overlay was made.
 * @returns what was created, for the log
 */
export async function prepareDisks(runner: Runner, node: NodeFiles): Promise<string[]> {
  const created: string[] = [];
  await Deno.mkdir(node.dir, { recursive: true });
  await checkBaseImage(runner, node);
  const current = identityOf(node.image.path);
  let overlayExists = true;
  try {
    Deno.statSync(node.overlay);
  } catch {
    overlayExists = false;
  }
  if (overlayExists) {
    const recorded = readRecord(node);
    if (recorded && !sameBase(recorded, current)) {
      throw problem(
        node,
        `base image ${node.image.path} changed since its overlay was created (${recorded.mtime} -> ${current.mtime}); ` +
          `the overlay would be corrupt. Run "aos-unit reset ${node.name}" to start from the new image, or put the old image back`,
      );
    }
  } else {
    await createOverlay(runner, node.image.path, node.overlay);
    created.push(node.overlay);
  }
  if (!recordMatches(node, current)) {
    writeFileAtomic(baseRecordPath(node), JSON.stringify(current, null, 2) + "\n", 0o640);
  }
  if (node.efiVars) {
    try {
      Deno.statSync(node.efiVars.path);
    } catch {
      try {
        await Deno.copyFile(node.efiVars.template, node.efiVars.path);
      } catch (error) {
        throw new RuntimeError(
          `Cannot create UEFI variables for node "${node.name}" from ${node.efiVars.template}: ${
            (error as Error).message
          }`,
          { hint: `install the ${FIRMWARE_PACKAGE[node.arch]} package` },
        );
      }
      created.push(node.efiVars.path);
    }
  }
  // QEMU appends to it through a file-level ReadWritePaths=: it must exist first.
  if (!isFile(node.serialLog)) {
    Deno.writeFileSync(node.serialLog, new Uint8Array(), { append: true, mode: 0o640 });
    created.push(node.serialLog);
  }
  return created;
}

/**
 * A qcow2 overlay at `path` on top of `backing`. With `size`, qemu-img never opens the
 * backing file (-u): for a backing file a node writes, which no parser should read
 * outside QEMU.
 */
export async function createOverlay(
  runner: Runner,
  backing: string,
  path: string,
  size?: number,
): Promise<void> {
  const unsafe = size === undefined ? [] : ["-u"];
  const sized = size === undefined ? [] : [String(size)];
  await runner.run([
    TOOLS.qemuImg,
    "create",
    "-q",
    "-f",
    "qcow2",
    "-F",
    "qcow2",
    "-b",
    backing,
    ...unsafe,
    path,
    ...sized,
  ]);
}

/** Discards a stopped node's overlay (and optionally its UEFI variables). */
export async function resetDisks(node: NodeFiles, efiVars: boolean): Promise<string[]> {
  const removed: string[] = [];
  for (
    const path of [
      node.overlay,
      baseRecordPath(node),
      ...(efiVars && node.efiVars ? [node.efiVars.path] : []),
    ]
  ) {
    try {
      await Deno.remove(path);
      removed.push(path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  return removed;
}
