/**
 * Restoring a whole-unit snapshot, the service user's steps (root stops and
 * starts the unit between them, commands/snapshot.ts):
 *
 *   stage     the unit still runs: the snapshot fits the plan, and each of its
 *             files is copied beside the current one (FILE.restore)
 *   swap      every node stopped: each current file becomes FILE.pre-restore
 *             and the staged one takes its place, every step in a journal
 *   rollback  exactly what the journal says was swapped goes back
 *   finish    the unit is up on the snapshot: the previous files go
 *
 * A restore that fails anywhere leaves the unit as it was.
 */

import { RuntimeError } from "../base/errors.ts";
import { writeFileAtomic } from "../host/atomic.ts";
import { readSmallFile } from "../host/safe_file.ts";
import type { Logger } from "../log.ts";
import {
  diskIn,
  efiVarsIn,
  type FileIdentity,
  machineAliases,
  restoreJournal,
  snapshotDifferences,
  snapshotDir,
  type SnapshotManifest,
  stateDifferences,
  stateIn,
} from "../plan/snapshot.ts";
import type { Runner } from "../host/runner.ts";
import type { Plan } from "../plan/types.ts";
import {
  copyRegular,
  EFIVARS_MAX,
  exists,
  identityOf,
  readManifest,
  removeQuietly,
  SMALL_MAX,
  withSnapshotLock,
} from "./snapshot_files.ts";

/** A file the snapshot gives the unit: from the snapshot (undefined: none), to its place. */
interface RestoreFile {
  from: string | undefined;
  to: string;
  max: number;
}

function restoreFiles(plan: Plan, manifest: SnapshotManifest): RestoreFile[] {
  const dir = snapshotDir(plan.paths, manifest.name);
  const saved = new Map(manifest.nodes.map((n) => [n.name, n]));
  return plan.nodes.flatMap((n) => {
    const s = saved.get(n.name)!;
    const files: RestoreFile[] = [{
      from: s.disk ? diskIn(dir, n.name) : undefined,
      to: n.overlay,
      max: Infinity,
    }];
    if (n.efiVars) {
      files.push({ from: efiVarsIn(dir, n.name), to: n.efiVars.path, max: EFIVARS_MAX });
    }
    return files;
  });
}

/** The unit's lease files and what the snapshot has for them (null: none). */
function leaseFiles(plan: Plan, manifest: SnapshotManifest): [string, string | null][] {
  return [
    [plan.leaseState, manifest.leases.state],
    [plan.dnsmasq.leaseFile, manifest.leases.dnsmasq],
  ];
}

/** One swapped path: whether there was a file before (now FILE.pre-restore). */
interface JournalEntry {
  path: string;
  had: boolean;
}

interface Journal {
  name: string;
  entries: JournalEntry[];
}

function readJournal(plan: Plan): Journal | undefined {
  const text = readSmallFile(restoreJournal(plan.paths), SMALL_MAX);
  return text === undefined ? undefined : JSON.parse(text) as Journal;
}

function writeJournal(plan: Plan, journal: Journal): void {
  writeFileAtomic(restoreJournal(plan.paths), JSON.stringify(journal) + "\n", 0o640);
}

/** What a staged restore brings back. */
export interface Staged {
  /** Every guest's saved RAM and devices: the guests resume instead of booting. */
  memory: boolean;
}

/**
 * The machine types each node's QEMU resolves its alias to (`q35` -> `pc-q35-7.2`), from
 * `qemu-system-ARCH -machine help`: what a saved state must have been made on.
 */
async function machineResolver(
  plan: Plan,
  runner: Runner,
): Promise<(arch: string, machine: string) => string> {
  const aliases = new Map<string, Map<string, string>>();
  for (const n of plan.nodes) {
    if (aliases.has(n.arch)) continue;
    const help = await runner.run([n.qemu[0]!, "-machine", "help"]);
    aliases.set(n.arch, machineAliases(help.stdout));
  }
  return (arch, machine) => aliases.get(arch)?.get(machine) ?? machine;
}

/**
 * Why the snapshot's saved states cannot be loaded into this plan's QEMUs (empty: they can).
 * @throws {RuntimeError} when a state file is missing
 */
async function stateRefusals(
  plan: Plan,
  manifest: SnapshotManifest,
  runner: Runner,
): Promise<string[]> {
  const dir = snapshotDir(plan.paths, manifest.name);
  for (const n of manifest.nodes) {
    const file = stateIn(dir, n.name);
    if (!exists(file)) throw new RuntimeError(`Snapshot "${manifest.name}" lacks ${file}`);
    // Found short (or grown) before anything stops, not by a QEMU that exits on it.
    const size = Deno.lstatSync(file).size;
    if (n.state && size !== n.state.bytes) {
      throw new RuntimeError(
        `Snapshot "${manifest.name}": ${file} has ${size} bytes, ${n.state.bytes} were saved`,
      );
    }
  }
  return stateDifferences(manifest, plan, await machineResolver(plan, runner));
}

/**
 * Step 1 (the unit still runs). An unfinished restore's journal is rolled back first.
 * @param memory the saved states too, when the snapshot has them (false: --disk-only)
 * @throws {RuntimeError} exit 2 for an unknown snapshot, one made from another plan, or
 *   saved states that this plan's QEMUs cannot load
 */
export async function stageRestore(
  plan: Plan,
  name: string,
  deps: { log: Logger; runner: Runner },
  memory: boolean,
): Promise<Staged> {
  const { log } = deps;
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
  const resume = memory && manifest.memory === true;
  const refusals = resume ? await stateRefusals(plan, manifest, deps.runner) : [];
  if (refusals.length > 0) {
    throw new RuntimeError(
      `The guests' saved memory in snapshot "${name}" does not fit this plan:\n  ${
        refusals.join("\n  ")
      }`,
      {
        hint:
          `restore its disks alone (the guests boot): aos-unit snapshot restore --disk-only ${name}`,
        permanent: true,
      },
    );
  }
  await withSnapshotLock(plan, () => {
    if (readJournal(plan)) {
      log.warning("An earlier restore did not finish: putting back what it swapped");
      undo(plan);
    }
    const files = restoreFiles(plan, manifest);
    try {
      for (const f of files) {
        if (f.from === undefined) continue;
        if (!exists(f.from)) throw new RuntimeError(`Snapshot "${name}" lacks ${f.from}`);
        // A staged copy left by an earlier attempt (or planted) goes first: O_EXCL below.
        removeQuietly(`${f.to}.restore`);
        copyRegular(f.from, `${f.to}.restore`, f.max);
      }
    } catch (error) {
      for (const f of files) removeQuietly(`${f.to}.restore`);
      throw error;
    }
  });
  return { memory: resume };
}

/** Step 2 (every node stopped): each swap is journaled before it is made. */
export async function swapRestore(plan: Plan, name: string): Promise<void> {
  const manifest = readManifest(plan, name);
  await withSnapshotLock(plan, () => {
    const journal: Journal = { name, entries: [] };
    const swap = (path: string, put: () => void) => {
      const had = exists(path);
      journal.entries.push({ path, had });
      writeJournal(plan, journal);
      if (had) Deno.renameSync(path, `${path}.pre-restore`);
      put();
    };
    try {
      for (const f of restoreFiles(plan, manifest)) {
        // A node that had never started goes back to its base image: no overlay.
        swap(f.to, () => {
          if (f.from !== undefined) Deno.renameSync(`${f.to}.restore`, f.to);
        });
      }
      for (const [path, text] of leaseFiles(plan, manifest)) {
        swap(path, () => {
          if (text !== null) writeFileAtomic(path, text, 0o640);
        });
      }
    } catch (error) {
      const undone = undo(plan);
      throw new RuntimeError(
        `Restore of "${name}" failed, the unit is as it was (${undone} file(s) put back): ${
          (error as Error).message
        }`,
      );
    }
  });
}

/** Puts back what the journal says was swapped, newest first. @returns how many */
function undo(plan: Plan): number {
  const journal = readJournal(plan);
  if (!journal) return 0;
  for (const { path, had } of [...journal.entries].reverse()) {
    if (had) {
      if (exists(`${path}.pre-restore`)) Deno.renameSync(`${path}.pre-restore`, path);
    } else {
      removeQuietly(path); // it came from the snapshot
    }
  }
  try {
    const manifest = readManifest(plan, journal.name);
    for (const f of restoreFiles(plan, manifest)) removeQuietly(`${f.to}.restore`);
  } catch { /* the snapshot is gone: no staged files to find by it */ }
  removeQuietly(restoreJournal(plan.paths));
  return journal.entries.length;
}

/**
 * The unit could not stop, or start on the snapshot, or the swap was cut short: back as it
 * was, and the staged copies of snapshot `name` gone.
 */
export async function rollbackRestore(plan: Plan, name: string): Promise<void> {
  const manifest = readManifest(plan, name);
  await withSnapshotLock(plan, () => {
    undo(plan);
    for (const f of restoreFiles(plan, manifest)) removeQuietly(`${f.to}.restore`);
  });
}

/** The unit is up on the snapshot: the previous files go, and the journal. */
export async function finishRestore(plan: Plan): Promise<void> {
  await withSnapshotLock(plan, () => {
    const journal = readJournal(plan);
    for (const { path } of journal?.entries ?? []) removeQuietly(`${path}.pre-restore`);
    removeQuietly(restoreJournal(plan.paths));
  });
}
