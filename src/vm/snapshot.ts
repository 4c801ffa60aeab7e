/**
 * Whole-unit snapshots: save, list, delete (run as the service user). Restore
 * is snapshot_restore.ts; the files' rules are snapshot_files.ts.
 *
 * Save, running unit: every guest is paused together (QMP `stop` to all at
 * once), each QEMU moves its writes to a new overlay on top of the current
 * one (`blockdev-snapshot-sync`, which only creates a small file), the UEFI
 * variables are copied (bounded, in this process), and every guest goes on
 * (`cont`): the pause lasts milliseconds. The frozen overlay is then copied
 * into the snapshot while the guests run, and QEMU commits the new overlay
 * back into it (an active `block-commit`), so the chain is base <- overlay
 * again. A stopped unit's files are copied as they are.
 *
 * With memory, every guest's RAM and device state is saved at the same instant,
 * while the guests are paused (running_state.ts): the pause then lasts as long as
 * the largest guest's state takes to write. The snapshot is made
 * in snapshots/.NAME.partial/ and renamed to snapshots/NAME/ when complete.
 */

import { RuntimeError, UsageError } from "../base/errors.ts";
import { writeFileAtomic } from "../host/atomic.ts";
import { readSmallFile } from "../host/safe_file.ts";
import type { Logger } from "../log.ts";
import type { Runner } from "../host/runner.ts";
import {
  diskIn,
  efiVarsIn,
  isSnapshotName,
  manifestIn,
  type NodeState,
  partialDir,
  pendingOverlay,
  snapshotDir,
  type SnapshotManifest,
  snapshotNode,
  snapshotsDir,
  type SnapshotSummary,
  stateIn,
  stateSocket,
} from "../plan/snapshot.ts";
import { cancelMigration, StateSave, stateTimeoutMs, syncState } from "./running_state.ts";
import { allSettledOrThrow } from "../base/settled.ts";
import type { NodePlan, Plan } from "../plan/types.ts";
import { createOverlay } from "./disk.ts";
import { QmpError, QmpSession } from "./qmp.ts";
import {
  checkName,
  copyRegular,
  EFIVARS_MAX,
  exists,
  identityOf,
  readManifest,
  removeQuietly,
  SMALL_MAX,
  withSnapshotLock,
} from "./snapshot_files.ts";

/** The drive id QEMU's disk has (plan/qemu.ts). */
const DRIVE = "disk0";
const JOB = "aos-unit-snapshot";
/** A commit copies at most what the guest wrote during a save's copy: minutes at worst. */
const COMMIT_TIMEOUT_MS = 10 * 60_000;
/** A machine type as QEMU names them (pc-q35-7.2, virt-9.2): what the node's QEMU says. */
const MACHINE_TYPE = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const MIB = 1024 * 1024;

export interface SnapshotDeps {
  log: Logger;
  runner: Runner;
}

/**
 * Makes a running node's pending overlay, empty, on top of its overlay, before the pause:
 * QEMU only opens it (mode "existing"), since a node may create nothing in its directory.
 * The virtual size comes from the node's QEMU, and qemu-img never opens the overlay (-u):
 * the overlay is the node's to write, and no parser of ours runs on it outside QEMU.
 */
async function makePending(runner: Runner, session: QmpSession, node: NodePlan): Promise<void> {
  const blocks = await session.execute("query-block") as {
    device?: string;
    qdev?: string;
    inserted?: { file?: string; image?: { "virtual-size"?: number } };
  }[];
  const size = blocks.find((b) => b.device === DRIVE)?.inserted?.image?.[
    "virtual-size"
  ];
  if (!size) throw new RuntimeError(`Node ${node.name}: QEMU reports no size for ${node.overlay}`);
  await createOverlay(runner, node.overlay, pendingOverlay(node), size);
  Deno.chmodSync(pendingOverlay(node), 0o660);
}

/**
 * A session with the node's QEMU, or undefined when it does not run. The socket must be a
 * socket, not a link a broken-out QEMU put there to send us to another node's.
 */
async function openIfRunning(node: NodePlan): Promise<QmpSession | undefined> {
  let st: Deno.FileInfo;
  try {
    st = Deno.lstatSync(node.qmpSocket);
  } catch {
    return undefined;
  }
  if (!st.isSocket) throw new RuntimeError(`Refusing ${node.qmpSocket}: not a socket`);
  try {
    return await QmpSession.open(node.qmpSocket, 5000, node.name);
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
 * A pending overlay of a node that is not running (a save died midway and the node
 * stopped since): never committed outside QEMU (the node could have written any backing
 * chain into it), removed; what the guest wrote since that save is lost, as a crash
 * would lose it.
 */
function dropPending(node: NodePlan, log: Logger): void {
  if (!exists(pendingOverlay(node))) return;
  removeQuietly(pendingOverlay(node));
  log.warning(`Node ${node.name}: removed ${pendingOverlay(node)}, left by an interrupted save`);
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
 * A running node as a save finds it: resumed if an interrupted save left it paused, and
 * its pending overlay committed (QEMU still writes to it) or removed (QEMU restarted on
 * its overlay since).
 */
async function settle(session: QmpSession, node: NodePlan, log: Logger): Promise<void> {
  // A save killed while it copied the guest's RAM left QEMU's migration under way (its
  // guest maybe frozen at the switchover): over first, or the guest cannot be resumed.
  if (await cancelMigration(session)) {
    log.warning(`Node ${node.name}: cancelled the state copy an interrupted save left`);
  }
  const state = await session.execute("query-status") as { status?: string };
  if (state.status === "paused" || state.status === "postmigrate") {
    await session.execute("cont");
    log.warning(`Node ${node.name} was paused (an interrupted save): resumed`);
  }
  if (!exists(pendingOverlay(node))) return;
  const graph = await session.execute("query-named-block-nodes", { flat: true }) as {
    file: string;
  }[];
  if (graph.some((b) => b.file === pendingOverlay(node))) {
    await commitBack(session, node);
    log.info(`Node ${node.name}: committed the overlay an interrupted save left`);
  } else {
    dropPending(node, log);
  }
}

/** A node's state being saved, and what a QEMU must match to load it. */
interface Saving {
  node: NodePlan;
  save: StateSave;
  machine: string;
}

/**
 * Every paused guest's RAM starts streaming into the snapshot (vm/running_state.ts,
 * StateSave). A failure cancels the ones started.
 */
async function startSaves(
  nodes: NodePlan[],
  dir: string,
  sessions: Map<string, QmpSession>,
): Promise<Saving[]> {
  const saving: Saving[] = [];
  try {
    for (const n of nodes) {
      const session = sessions.get(n.name)!;
      const machine = String(
        await session.execute("qom-get", { path: "/machine", property: "type" }),
      ).replace(/-machine$/, "");
      if (!MACHINE_TYPE.test(machine)) throw new QmpError(`Node ${n.name}: no machine type`);
      const save = await StateSave.start(
        session,
        { socket: stateSocket(n), file: stateIn(dir, n.name) },
        { limit: (n.memMiB + 256) * MIB, timeoutMs: stateTimeoutMs(n.memMiB) },
      );
      saving.push({ node: n, save, machine });
    }
    return saving;
  } catch (error) {
    await Promise.allSettled(saving.map((s) => s.save.cancel()));
    throw error;
  }
}

/**
 * Every stream ends while the guests are paused. Each is waited for before a failure is
 * reported: a session is never used by two commands at once (the guests are resumed next).
 */
async function finishSaves(saving: Saving[]): Promise<Map<string, NodeState>> {
  return new Map(
    await allSettledOrThrow(saving.map(async ({ node: n, save, machine }): Promise<
      [string, NodeState]
    > => {
      const saved = await save.finish();
      return [n.name, {
        bytes: saved.bytes,
        memMiB: n.memMiB,
        cpu: n.cpu,
        cpuType: n.cpuType,
        accel: n.accel,
        machine,
      }];
    })),
  );
}

/**
 * The instant: every running guest paused together, its writes moved to a pending overlay
 * (each such node is added to `moved`, to be committed back), every node's UEFI variables
 * copied (bounded, refusing anything but a regular file), with `states` every guest's RAM
 * and devices saved (each page sent once: the guests are paused), every guest resumed,
 * whatever failed meanwhile. (A copy of the RAM while the guests ran, QEMU pausing the
 * first at its switchover, shortened the pause fivefold, but now and then a guest loaded
 * from such a state crashed on QEMU 7.2 under TCG: not until that is understood.)
 * @returns how long the guests were paused, in milliseconds
 */
async function captureInstant(
  plan: Plan,
  dir: string,
  sessions: Map<string, QmpSession>,
  moved: NodePlan[],
  states?: Map<string, NodeState>,
): Promise<number> {
  const running = plan.nodes.filter((n) => sessions.has(n.name));
  const saving: Saving[] = [];
  const started = performance.now();
  try {
    await allSettledOrThrow(running.map((n) => sessions.get(n.name)!.execute("stop")));
    await allSettledOrThrow(running.map(async (n) => {
      await sessions.get(n.name)!.execute("blockdev-snapshot-sync", {
        device: DRIVE,
        "snapshot-file": pendingOverlay(n),
        format: "qcow2",
        mode: "existing",
      });
      moved.push(n);
    }));
    for (const n of plan.nodes) {
      if (n.efiVars) copyRegular(n.efiVars.path, efiVarsIn(dir, n.name), EFIVARS_MAX);
    }
    if (states) {
      saving.push(...await startSaves(running, dir, sessions));
      for (const [name, state] of await finishSaves(saving.splice(0))) states.set(name, state);
    }
  } finally {
    // Streams not finished (a failure before) are cancelled, and over, first: QEMU takes
    // `cont` only then.
    await Promise.allSettled(saving.map((s) => s.save.cancel()));
    await Promise.allSettled(running.map((n) => sessions.get(n.name)!.execute("cont")));
  }
  return Math.round(performance.now() - started);
}

function readLeases(plan: Plan): SnapshotManifest["leases"] {
  const read = (path: string) => {
    try {
      return readSmallFile(path, SMALL_MAX) ?? null;
    } catch {
      return null;
    }
  };
  return { state: read(plan.leaseState), dnsmasq: read(plan.dnsmasq.leaseFile) };
}

/**
 * Saves snapshot `name` of the whole unit, running or stopped.
 * @throws {RuntimeError} exit 2 for a bad or taken name; exit 1 when it could not be made
 *   (then nothing of it is left, and the guests run on)
 */
export async function saveSnapshot(
  plan: Plan,
  name: string,
  deps: SnapshotDeps,
  memory = false,
): Promise<SnapshotManifest> {
  checkName(name);
  return await withSnapshotLock(plan, async () => {
    if (exists(snapshotDir(plan.paths, name))) {
      throw new RuntimeError(`Snapshot "${name}" exists`, {
        hint: `aos-unit snapshot delete ${name}, or choose another name`,
        permanent: true,
      });
    }
    const dir = partialDir(plan.paths, name);
    removeQuietly(dir, true);
    Deno.mkdirSync(dir, { mode: 0o750 });
    const sessions = new Map<string, QmpSession>();
    const moved: NodePlan[] = [];
    try {
      for (const n of plan.nodes) {
        const s = await openIfRunning(n);
        if (s) sessions.set(n.name, s);
        if (s) await settle(s, n, deps.log);
        else dropPending(n, deps.log);
        if (s) await makePending(deps.runner, s, n);
      }
      const stopped = plan.nodes.filter((n) => !sessions.has(n.name)).map((n) => n.name);
      if (memory && stopped.length > 0) {
        throw new RuntimeError(
          `A snapshot with memory needs every node running; not running: ${stopped.join(", ")}`,
          { hint: `start the unit, or save without --memory`, permanent: true },
        );
      }
      const time = new Date().toISOString();
      const states = memory ? new Map<string, NodeState>() : undefined;
      const pauseMs = await captureInstant(plan, dir, sessions, moved, states);
      // The states on disk, now that the guests run again (before the manifest says so).
      for (const n of states ? plan.nodes : []) syncState(stateIn(dir, n.name));
      const manifest = finishSave(
        plan,
        name,
        dir,
        time,
        sessions.size > 0 ? pauseMs : null,
        states,
      );
      Deno.renameSync(dir, snapshotDir(plan.paths, name));
      return manifest;
    } catch (error) {
      removeQuietly(dir, true);
      // Made, but never taken into QEMU's chain.
      for (const n of plan.nodes) {
        if (sessions.has(n.name) && !moved.includes(n)) dropPending(n, deps.log);
      }
      throw error instanceof RuntimeError || error instanceof UsageError ? error : new RuntimeError(
        `Snapshot "${name}" could not be made: ${(error as Error).message}`,
      );
    } finally {
      // Whatever happened: every pending overlay goes back into its overlay.
      for (const n of moved) {
        await commitBack(sessions.get(n.name)!, n).catch((error) =>
          deps.log.warning(`Node ${n.name}: ${(error as Error).message}; the next save finishes it`)
        );
      }
      for (const s of sessions.values()) s.close();
    }
  });
}

/**
 * After the instant: each frozen overlay (a stopped node's overlay as it is) copied while
 * the guests run on, then the manifest.
 */
function finishSave(
  plan: Plan,
  name: string,
  dir: string,
  time: string,
  pauseMs: number | null,
  states: ReadonlyMap<string, NodeState> | undefined,
): SnapshotManifest {
  const nodes = [];
  for (const n of plan.nodes) {
    const disk = exists(n.overlay);
    if (disk) copyRegular(n.overlay, diskIn(dir, n.name));
    const image = identityOf(n.image.path);
    if (!image) throw new RuntimeError(`Node ${n.name}: its image ${n.image.path} is missing`);
    const state = states?.get(n.name);
    nodes.push({ ...snapshotNode(n, image, disk, n.address), ...(state ? { state } : {}) });
  }
  const manifest: SnapshotManifest = {
    format: 1,
    name,
    time,
    running: pauseMs !== null,
    pauseMs,
    ...(states ? { memory: true } : {}),
    nodes,
    leases: readLeases(plan),
  };
  writeFileAtomic(manifestIn(dir), JSON.stringify(manifest, null, 2) + "\n", 0o640);
  return manifest;
}

/** Bytes the files of a directory take on disk (allocated blocks). */
function allocated(dir: string): number {
  let sum = 0;
  try {
    for (const entry of Deno.readDirSync(dir)) {
      if (entry.isFile) sum += (Deno.lstatSync(`${dir}/${entry.name}`).blocks ?? 0) * 512;
    }
  } catch { /* gone meanwhile */ }
  return sum;
}

/** Every snapshot, oldest first. */
export function listSnapshots(plan: Plan): SnapshotSummary[] {
  const out: SnapshotSummary[] = [];
  let entries: Deno.DirEntry[] = [];
  try {
    entries = [...Deno.readDirSync(snapshotsDir(plan.paths))];
  } catch { /* none yet */ }
  for (const entry of entries) {
    if (!entry.isDirectory || !isSnapshotName(entry.name)) continue;
    let manifest: SnapshotManifest;
    try {
      manifest = readManifest(plan, entry.name);
    } catch {
      continue;
    }
    out.push({
      name: entry.name,
      time: manifest.time,
      running: manifest.running,
      pauseMs: manifest.pauseMs,
      memory: manifest.memory === true,
      nodes: manifest.nodes.length,
      diskBytes: allocated(snapshotDir(plan.paths, entry.name)),
    });
  }
  return out.sort((a, b) => a.time.localeCompare(b.time));
}

/** Deletes snapshot `name`: renamed out of sight first (it stops existing), then removed. */
export async function deleteSnapshot(plan: Plan, name: string): Promise<void> {
  readManifest(plan, name);
  await withSnapshotLock(plan, () => {
    const doomed = `${snapshotsDir(plan.paths)}/.${name}.deleting`;
    removeQuietly(doomed, true);
    Deno.renameSync(snapshotDir(plan.paths, name), doomed);
    Deno.removeSync(doomed, { recursive: true });
  });
}
