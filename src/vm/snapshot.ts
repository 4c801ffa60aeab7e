/**
 * Whole-unit snapshots, the effectful part (run as the service user).
 *
 * Save, running unit: every guest is paused together (QMP `stop` to all at
 * once), each QEMU moves its writes to a new overlay on top of the current
 * one (`blockdev-snapshot-sync`, which only creates a small file), the UEFI
 * variables are copied, and every guest goes on (`cont`): the pause lasts
 * milliseconds. The frozen overlay is then copied into the snapshot while the
 * guests run, and QEMU commits the new overlay back into it (an active
 * `block-commit`), so the chain is base <- overlay again. A stopped unit's
 * files are copied as they are.
 *
 * Restore copies the snapshot next to the current files first (*.restore);
 * only then are the nodes stopped and the files swapped, the current ones kept
 * (*.pre-restore) until the unit is up again: a restore that fails anywhere
 * leaves the unit as it was.
 */

import { RuntimeError, UsageError } from "../base/errors.ts";
import { TOOLS } from "../base/tools.ts";
import { writeFileAtomic } from "../host/atomic.ts";
import type { Runner } from "../host/runner.ts";
import { readSmallFile } from "../host/safe_file.ts";
import type { Logger } from "../log.ts";
import {
  type FileIdentity,
  isSnapshotName,
  manifestPath,
  nodeSnapshotDir,
  pendingOverlay,
  snapshotDifferences,
  snapshotDisk,
  snapshotEfiVars,
  type SnapshotManifest,
  snapshotNode,
  snapshotsDir,
  type SnapshotSummary,
} from "../plan/snapshot.ts";
import type { NodePlan, Plan } from "../plan/types.ts";
import { QmpError, QmpSession } from "./qmp.ts";

/** The drive id QEMU's disk has (plan/qemu.ts). */
const DRIVE = "disk0";
const JOB = "aos-unit-snapshot";
/** A commit copies at most what the guest wrote during a save's copy: minutes at worst. */
const COMMIT_TIMEOUT_MS = 10 * 60_000;
/** leases.json and dnsmasq's lease file are small; a larger one is not ours. */
const LEASES_MAX = 1024 * 1024;

export interface SnapshotDeps {
  runner: Runner;
  log: Logger;
}

export function identityOf(path: string): FileIdentity | undefined {
  try {
    const st = Deno.statSync(path);
    return { path, size: st.size, mtime: st.mtime?.toISOString() ?? null, ino: st.ino };
  } catch {
    return undefined;
  }
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

function removeQuietly(path: string): void {
  try {
    Deno.removeSync(path);
  } catch { /* not there */ }
}

export function checkName(name: string): void {
  if (!isSnapshotName(name)) {
    throw new UsageError(
      `"${name}" is not a snapshot name: letters, digits, "-" and "_", at most 63, starting with a letter or digit`,
    );
  }
}

/** The manifest of snapshot `name`. @throws {UsageError} when there is none */
export function readManifest(plan: Plan, name: string): SnapshotManifest {
  checkName(name);
  const path = manifestPath(plan.paths, name);
  let text: string | undefined;
  try {
    text = readSmallFile(path, LEASES_MAX);
  } catch (error) {
    throw new RuntimeError(`Cannot read ${path}: ${(error as Error).message}`);
  }
  if (text === undefined) {
    throw new RuntimeError(`No snapshot "${name}"`, {
      hint: "aos-unit snapshot list",
      permanent: true,
    });
  }
  try {
    const manifest = JSON.parse(text) as SnapshotManifest;
    if (manifest.format !== 1 || !Array.isArray(manifest.nodes)) throw new Error("not format 1");
    return manifest;
  } catch (error) {
    throw new RuntimeError(`Snapshot "${name}" is damaged (${path}): ${(error as Error).message}`);
  }
}

/** Copies a file (sparse; a reflink where the file system has them) through a temporary name. */
async function copyFile(runner: Runner, from: string, to: string): Promise<void> {
  const tmp = `${to}.tmp`;
  removeQuietly(tmp);
  try {
    await runner.run([TOOLS.cp, "--sparse=always", "--reflink=auto", "--", from, tmp], {
      timeoutMs: 30 * 60_000,
    });
    Deno.renameSync(tmp, to);
  } catch (error) {
    removeQuietly(tmp);
    throw new RuntimeError(`Cannot copy ${from} to ${to}: ${(error as Error).message}`);
  }
}

/** A session with the node's QEMU, or undefined when it does not run. */
async function openIfRunning(node: NodePlan): Promise<QmpSession | undefined> {
  if (!exists(node.qmpSocket)) return undefined;
  try {
    return await QmpSession.open(node.qmpSocket, 5000);
  } catch (error) {
    // A socket QEMU left behind: nobody listens.
    const cause = (error as Error).cause;
    if (cause instanceof Deno.errors.ConnectionRefused || cause instanceof Deno.errors.NotFound) {
      return undefined;
    }
    throw error;
  }
}

/**
 * A pending overlay left by a save that died midway, on a node that is not running: its
 * writes go back into the overlay when it was the last one written, else (the node ran on
 * the overlay since) it is stale and removed.
 */
export async function recoverPending(runner: Runner, node: NodePlan, log: Logger): Promise<void> {
  const pending = pendingOverlay(node);
  const p = identityOf(pending);
  if (!p) return;
  const overlay = identityOf(node.overlay);
  if (overlay && p.mtime !== null && overlay.mtime !== null && p.mtime >= overlay.mtime) {
    await runner.run([TOOLS.qemuImg, "commit", "-q", "-f", "qcow2", pending]);
    log.info(`Node ${node.name}: committed ${pending} (left by an interrupted snapshot)`);
  } else {
    log.warning(`Node ${node.name}: removed the stale ${pending}`);
  }
  Deno.removeSync(pending);
}

/** Folds the pending overlay back into the node's overlay, in the running QEMU. */
async function commitBack(session: QmpSession, node: NodePlan): Promise<void> {
  const graph = await session.execute("query-named-block-nodes", { flat: true }) as {
    "node-name": string;
    file: string;
    drv: string;
  }[];
  const base = graph.find((b) => b.drv === "qcow2" && b.file === node.overlay);
  if (!base) throw new QmpError(`Node ${node.name}: ${node.overlay} is not in QEMU's disk chain`);
  await session.execute("block-commit", {
    "job-id": JOB,
    device: DRIVE,
    "base-node": base["node-name"],
  });
  await session.waitEvent((e, d) => e === "BLOCK_JOB_READY" && d.device === JOB, COMMIT_TIMEOUT_MS);
  await session.execute("block-job-complete", { device: JOB });
  const done = await session.waitEvent(
    (e, d) => (e === "BLOCK_JOB_COMPLETED" || e === "BLOCK_JOB_CANCELLED") && d.device === JOB,
    COMMIT_TIMEOUT_MS,
  );
  if (done.error) throw new QmpError(`Node ${node.name}: commit failed: ${String(done.error)}`);
  removeQuietly(pendingOverlay(node));
}

/**
 * A running node with a pending overlay from a save that died midway: committed back when
 * QEMU still writes to it, removed when QEMU restarted on its overlay since.
 */
async function finishInterrupted(session: QmpSession, node: NodePlan, log: Logger): Promise<void> {
  const graph = await session.execute("query-named-block-nodes", { flat: true }) as {
    file: string;
  }[];
  if (graph.some((b) => b.file === pendingOverlay(node))) {
    await commitBack(session, node);
    log.info(`Node ${node.name}: committed the overlay an interrupted snapshot left`);
  } else {
    Deno.removeSync(pendingOverlay(node));
    log.warning(`Node ${node.name}: removed the stale ${pendingOverlay(node)}`);
  }
}

/**
 * The instant: every running guest paused together, its writes moved to a pending overlay
 * (each such node is added to `moved`, to be committed back), every node's UEFI variables
 * copied, every guest resumed, whatever failed meanwhile. The copies run in child
 * processes: a limit or a signal that ends one must not end the process that resumes.
 * @returns how long the guests were paused, in milliseconds
 */
async function captureInstant(
  plan: Plan,
  name: string,
  sessions: Map<string, QmpSession>,
  moved: NodePlan[],
  runner: Runner,
): Promise<number> {
  const running = plan.nodes.filter((n) => sessions.has(n.name));
  const started = performance.now();
  await Promise.all(running.map((n) => sessions.get(n.name)!.execute("stop")));
  try {
    await Promise.all(running.map(async (n) => {
      await sessions.get(n.name)!.execute("blockdev-snapshot-sync", {
        device: DRIVE,
        "snapshot-file": pendingOverlay(n),
        format: "qcow2",
        mode: "absolute-paths",
      });
      moved.push(n);
    }));
    await Promise.all(plan.nodes.map(async (n) => {
      if (n.efiVars) {
        await copyFile(runner, n.efiVars.path, snapshotEfiVars(plan.paths, n.name, name));
      }
    }));
  } finally {
    await Promise.allSettled(running.map((n) => sessions.get(n.name)!.execute("cont")));
  }
  return Math.round(performance.now() - started);
}

function readLeases(plan: Plan): SnapshotManifest["leases"] {
  const read = (path: string) => {
    try {
      return readSmallFile(path, LEASES_MAX) ?? null;
    } catch {
      return null;
    }
  };
  return { state: read(plan.leaseState), dnsmasq: read(plan.dnsmasq.leaseFile) };
}

/** Every file a snapshot has, whether or not it is complete. */
function snapshotFiles(plan: Plan, name: string): string[] {
  return plan.nodes.flatMap((n) => [
    snapshotDisk(plan.paths, n.name, name),
    snapshotEfiVars(plan.paths, n.name, name),
  ]);
}

/**
 * Saves snapshot `name` of the whole unit, running or stopped.
 * @throws {UsageError} for a bad or taken name; RuntimeError when it could not be made
 *   (then nothing of it is left, and the guests run on)
 */
export async function saveSnapshot(
  plan: Plan,
  name: string,
  deps: SnapshotDeps,
): Promise<SnapshotManifest> {
  checkName(name);
  if (exists(manifestPath(plan.paths, name))) {
    throw new RuntimeError(`Snapshot "${name}" exists`, {
      hint: `aos-unit snapshot delete ${name}, or choose another name`,
      permanent: true,
    });
  }
  const sessions = new Map<string, QmpSession>();
  const moved: NodePlan[] = [];
  try {
    for (const n of plan.nodes) {
      const s = await openIfRunning(n);
      if (s) sessions.set(n.name, s);
      else await recoverPending(deps.runner, n, deps.log);
      Deno.mkdirSync(nodeSnapshotDir(plan.paths, n.name), { recursive: true, mode: 0o750 });
    }
    for (const n of plan.nodes) {
      const s = sessions.get(n.name);
      if (!s) continue;
      // A save killed during its pause left the guest paused: it goes on first.
      const state = await s.execute("query-status") as { status?: string };
      if (state.status === "paused") {
        await s.execute("cont");
        deps.log.warning(`Node ${n.name} was paused (an interrupted snapshot): resumed`);
      }
      if (exists(pendingOverlay(n))) await finishInterrupted(s, n, deps.log);
    }
    const time = new Date().toISOString();
    const pauseMs = await captureInstant(plan, name, sessions, moved, deps.runner);
    return await finishSave(plan, name, time, sessions.size > 0 ? pauseMs : null, deps);
  } catch (error) {
    for (const file of snapshotFiles(plan, name)) removeQuietly(file);
    throw error instanceof RuntimeError || error instanceof UsageError ? error : new RuntimeError(
      `Snapshot "${name}" could not be made: ${(error as Error).message}`,
    );
  } finally {
    // Whatever happened: every pending overlay goes back into its overlay.
    for (const n of moved) {
      await commitBack(sessions.get(n.name)!, n).catch((error) =>
        deps.log.warning(
          `Node ${n.name}: ${(error as Error).message}; the next snapshot command finishes it`,
        )
      );
    }
    for (const s of sessions.values()) s.close();
  }
}

/**
 * After the instant: each frozen overlay (a stopped node's overlay as it is) copied while
 * the guests run on, then the manifest, which makes the snapshot exist.
 */
async function finishSave(
  plan: Plan,
  name: string,
  time: string,
  pauseMs: number | null,
  deps: SnapshotDeps,
): Promise<SnapshotManifest> {
  const nodes = [];
  for (const n of plan.nodes) {
    const disk = exists(n.overlay);
    if (disk) await copyFile(deps.runner, n.overlay, snapshotDisk(plan.paths, n.name, name));
    const image = identityOf(n.image.path);
    if (!image) throw new RuntimeError(`Node ${n.name}: its image ${n.image.path} is missing`);
    nodes.push(snapshotNode(n, image, disk, n.address));
  }
  const manifest: SnapshotManifest = {
    format: 1,
    name,
    time,
    running: pauseMs !== null,
    pauseMs,
    nodes,
    leases: readLeases(plan),
  };
  Deno.mkdirSync(snapshotsDir(plan.paths), { recursive: true, mode: 0o750 });
  writeFileAtomic(manifestPath(plan.paths, name), JSON.stringify(manifest, null, 2) + "\n", 0o640);
  return manifest;
}

/** Bytes a file takes on disk (its allocated blocks), 0 when it is missing. */
function allocated(path: string): number {
  try {
    const st = Deno.statSync(path);
    return (st.blocks ?? 0) * 512;
  } catch {
    return 0;
  }
}

/** Every snapshot, oldest first. */
export function listSnapshots(plan: Plan): SnapshotSummary[] {
  const out: SnapshotSummary[] = [];
  let entries: Deno.DirEntry[] = [];
  try {
    entries = [...Deno.readDirSync(snapshotsDir(plan.paths))];
  } catch { /* none yet */ }
  for (const entry of entries) {
    if (!entry.isFile || !entry.name.endsWith(".json")) continue;
    const name = entry.name.slice(0, -".json".length);
    if (!isSnapshotName(name)) continue;
    let manifest: SnapshotManifest;
    try {
      manifest = readManifest(plan, name);
    } catch {
      continue;
    }
    const diskBytes = manifest.nodes.reduce(
      (sum, n) =>
        sum + allocated(snapshotDisk(plan.paths, n.name, name)) +
        allocated(snapshotEfiVars(plan.paths, n.name, name)),
      allocated(manifestPath(plan.paths, name)),
    );
    out.push({
      name,
      time: manifest.time,
      running: manifest.running,
      pauseMs: manifest.pauseMs,
      nodes: manifest.nodes.length,
      diskBytes,
    });
  }
  return out.sort((a, b) => a.time.localeCompare(b.time));
}

/** Deletes snapshot `name`: the manifest first (it stops existing), then its files. */
export function deleteSnapshot(plan: Plan, name: string): void {
  const manifest = readManifest(plan, name);
  Deno.removeSync(manifestPath(plan.paths, name));
  for (const n of manifest.nodes) {
    removeQuietly(snapshotDisk(plan.paths, n.name, name));
    removeQuietly(snapshotEfiVars(plan.paths, n.name, name));
  }
}

/** The snapshot's files each node would get, and where they go. */
interface RestoreFile {
  node: string;
  from: string | undefined;
  to: string;
}

function restoreFiles(plan: Plan, manifest: SnapshotManifest): RestoreFile[] {
  const saved = new Map(manifest.nodes.map((n) => [n.name, n]));
  return plan.nodes.flatMap((n) => {
    const s = saved.get(n.name)!;
    const files: RestoreFile[] = [{
      node: n.name,
      from: s.disk ? snapshotDisk(plan.paths, n.name, manifest.name) : undefined,
      to: n.overlay,
    }];
    if (n.efiVars) {
      files.push({
        node: n.name,
        from: snapshotEfiVars(plan.paths, n.name, manifest.name),
        to: n.efiVars.path,
      });
    }
    return files;
  });
}

/** The unit's lease files and what the snapshot has for them. */
function leaseFiles(plan: Plan, manifest: SnapshotManifest): [string, string | null][] {
  return [
    [plan.leaseState, manifest.leases.state],
    [plan.dnsmasq.leaseFile, manifest.leases.dnsmasq],
  ];
}

/**
 * Restore, step 1 (the unit still runs): the snapshot fits the plan, every file is there,
 * and is copied beside the current one (FILE.restore).
 * @throws {UsageError} for an unknown snapshot or one made from another plan (exit 2)
 */
export async function stageRestore(plan: Plan, name: string, deps: SnapshotDeps): Promise<void> {
  const manifest = readManifest(plan, name);
  const images = new Map<string, FileIdentity>();
  for (const n of plan.nodes) {
    const id = identityOf(n.image.path);
    if (id) images.set(n.name, id);
  }
  const differences = snapshotDifferences(manifest, plan, images);
  if (differences.length > 0) {
    throw new RuntimeError(
      `Snapshot "${name}" was made from another plan:\n  ${differences.join("\n  ")}`,
      { hint: "restore it with the configuration and images it was made from", permanent: true },
    );
  }
  const files = restoreFiles(plan, manifest);
  try {
    for (const f of files) {
      if (f.from === undefined) continue;
      if (!exists(f.from)) throw new RuntimeError(`Snapshot "${name}" lacks ${f.from}`);
      await copyFile(deps.runner, f.from, `${f.to}.restore`);
    }
  } catch (error) {
    for (const f of files) removeQuietly(`${f.to}.restore`);
    throw error;
  }
}

/**
 * Restore, step 2 (every node stopped): the staged files replace the current ones, which
 * stay as FILE.pre-restore. A failure puts back what was swapped.
 */
export function swapRestore(plan: Plan, name: string): void {
  const manifest = readManifest(plan, name);
  const done: string[] = [];
  const keep = (path: string) => {
    if (exists(path)) {
      Deno.renameSync(path, `${path}.pre-restore`);
      done.push(path);
    }
  };
  try {
    for (const f of restoreFiles(plan, manifest)) {
      keep(f.to);
      // A node that had never started goes back to its base image: no overlay.
      if (f.from !== undefined) Deno.renameSync(`${f.to}.restore`, f.to);
    }
    for (const [path, text] of leaseFiles(plan, manifest)) {
      keep(path);
      if (text !== null) writeFileAtomic(path, text, 0o640);
    }
  } catch (error) {
    rollbackRestore(plan, name);
    throw new RuntimeError(
      `Restore of "${name}" failed, the unit is as it was: ${
        (error as Error).message
      } (${done.length} file(s) put back)`,
    );
  }
}

/** Puts every FILE.pre-restore back and drops what was staged. */
export function rollbackRestore(plan: Plan, name: string): void {
  const manifest = readManifest(plan, name);
  const paths = [
    ...restoreFiles(plan, manifest).map((f) => f.to),
    ...leaseFiles(plan, manifest).map(([path]) => path),
  ];
  const restored = new Set([
    ...restoreFiles(plan, manifest).filter((f) => f.from !== undefined).map((f) => f.to),
    ...leaseFiles(plan, manifest).filter(([, text]) => text !== null).map(([path]) => path),
  ]);
  for (const path of paths) {
    removeQuietly(`${path}.restore`);
    if (exists(`${path}.pre-restore`)) Deno.renameSync(`${path}.pre-restore`, path);
    // There was none before: the one there now came from the snapshot.
    else if (restored.has(path)) removeQuietly(path);
  }
}

/** Restore, the end: the unit runs the snapshot; the previous files go. */
export function finishRestore(plan: Plan, name: string): void {
  const manifest = readManifest(plan, name);
  for (const f of restoreFiles(plan, manifest)) removeQuietly(`${f.to}.pre-restore`);
  for (const [path] of leaseFiles(plan, manifest)) removeQuietly(`${path}.pre-restore`);
}
