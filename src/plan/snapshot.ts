/**
 * Whole-unit snapshots, the pure part: names, where the files live, what a
 * snapshot records, and whether it fits the plan it would be restored into.
 *
 * A snapshot is every node's disk (its overlay: what it wrote over its base
 * image, self-contained over that base) and UEFI variables, captured at one
 * instant, plus the unit's leases; with memory, also every guest's RAM and
 * device state at that instant (its QEMU's migration stream, vm/running_state.ts). It lives in a directory of its own,
 * snapshots/NAME/, owned by the service user like the overlays and hidden
 * from every node's sandbox: a node can neither read another node's saved
 * disk nor change its own.
 */

import { brokerDir, join } from "./layout.ts";
import type { NodePlan, Paths, Plan } from "./types.ts";

/** A snapshot name: a file name of its own in every node's directory. */
export const SNAPSHOT_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;

export function isSnapshotName(name: string): boolean {
  return SNAPSHOT_NAME.test(name);
}

/** What identifies a base image: the same file, unchanged (as base.json records it). */
export interface FileIdentity {
  path: string;
  size: number;
  mtime: string | null;
  ino: number | null;
}

export interface SnapshotNode {
  name: string;
  arch: string;
  machineType: string;
  mac: string;
  /** The node's address when the snapshot was made (its reservation or lease). */
  address: string | null;
  image: FileIdentity;
  /** False: the node had never started (no overlay); restoring it means its base image. */
  disk: boolean;
  efiVars: boolean;
  /** The node unit's fingerprint (what the guest's hardware was). */
  fingerprint: string;
  /** With memory: the saved state and what a QEMU must match to load it. */
  state?: NodeState;
}

/** A node's saved RAM and device state, and the hardware it belongs to. */
export interface NodeState {
  bytes: number;
  memMiB: number;
  cpu: number;
  cpuType: string;
  accel: string;
  /** The machine type QEMU resolved (`pc-q35-7.2`, not the alias `q35`). */
  machine: string;
}

export interface SnapshotManifest {
  format: 1;
  name: string;
  /** ISO time of the instant captured. */
  time: string;
  /** Whether the guests were running (paused together) or the unit was stopped. */
  running: boolean;
  /** How long the guests were paused, in milliseconds (null for a stopped unit). */
  pauseMs: number | null;
  /** Every guest's RAM and devices are in it too (absent in older snapshots: no). */
  memory?: boolean;
  nodes: SnapshotNode[];
  /** leases.json and dnsmasq's lease file as they were (null when there were none). */
  leases: { state: string | null; dnsmasq: string | null };
}

export function snapshotsDir(paths: Paths): string {
  return join(paths.stateDir, "snapshots");
}

/** A snapshot's own directory: its manifest and every node's files. */
export function snapshotDir(paths: Paths, name: string): string {
  return join(snapshotsDir(paths), name);
}

/** Where a snapshot is made; renamed to snapshotDir() once complete (never a valid name). */
export function partialDir(paths: Paths, name: string): string {
  return join(snapshotsDir(paths), `.${name}.partial`);
}

/** The manifest: written last, so a snapshot exists once its directory has one. */
export function manifestIn(dir: string): string {
  return join(dir, "manifest.json");
}

export function manifestPath(paths: Paths, name: string): string {
  return manifestIn(snapshotDir(paths, name));
}

/** A node's disk in a snapshot directory: its overlay, backed by its base image. */
export function diskIn(dir: string, node: string): string {
  return join(dir, `${node}.qcow2`);
}

/** A node's RAM and device state in a snapshot directory (QEMU's migration stream). */
export function stateIn(dir: string, node: string): string {
  return join(dir, `${node}.state`);
}

/**
 * Where a save's migration stream goes: a socket in the node's directory, the one place
 * the service user may listen and the node's QEMU can reach (its sandbox shows it).
 */
export function stateSocket(node: NodePlan): string {
  return join(node.dir, "state.sock");
}

export function efiVarsIn(dir: string, node: string): string {
  return join(dir, `${node}.efivars.fd`);
}

export function snapshotDisk(paths: Paths, node: string, name: string): string {
  return diskIn(snapshotDir(paths, name), node);
}

/** What a restore has swapped so far (to undo exactly that), while it runs. */
export function restoreJournal(paths: Paths): string {
  return join(snapshotsDir(paths), ".restore.json");
}

/**
 * A memory restore's request to the broker: start every node to load snapshot NAME's
 * state. It lives in root's own directory (brokerDir: nobody else can add, replace or
 * plant anything there), one per unit. The broker takes it at the next start, renaming it
 * to resumingRecord(): one start uses it, never a later one (whose guests' disks have
 * moved on from the saved memory).
 */
export function resumeRequest(paths: Paths): string {
  return join(brokerDir(paths), `${resumeBase(paths)}.json`);
}

/**
 * The request as the broker took it: the manager it starts loads the states it names. The
 * broker removes it at every start, so a manager started again never loads them twice.
 */
export function resumingRecord(paths: Paths): string {
  return join(brokerDir(paths), `${resumeBase(paths)}.taken.json`);
}

/** The unit's own name for its records in the directory every unit's broker shares. */
function resumeBase(paths: Paths): string {
  return paths.unit === undefined ? "resume" : `resume@${paths.unit}`;
}

export interface ResumeRecord {
  snapshot: string;
}

export function formatResumeRecord(r: ResumeRecord): string {
  return JSON.stringify(r) + "\n";
}

/** @returns the record, or undefined for anything that is not one */
export function parseResumeRecord(text: string): ResumeRecord | undefined {
  try {
    const r = JSON.parse(text) as Partial<ResumeRecord>;
    return typeof r.snapshot === "string" && isSnapshotName(r.snapshot)
      ? { snapshot: r.snapshot }
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Where a node's QEMU listens for its saved state on a restore: its own runtime directory,
 * which the manager (the group) may reach and nothing else of the unit can.
 */
export function incomingSocket(node: NodePlan): string {
  return join(node.runDir, "incoming.sock");
}

/** Held by every snapshot command that writes: one at a time. */
export function snapshotLock(paths: Paths): string {
  return join(snapshotsDir(paths), ".lock");
}

/** The overlay QEMU writes to while a running node's snapshot is taken (then committed). */
export function pendingOverlay(node: NodePlan): string {
  return join(node.dir, "overlay.pending.qcow2");
}

/** The record of a node as a snapshot keeps it. */
export function snapshotNode(
  node: NodePlan,
  image: FileIdentity,
  disk: boolean,
  address: string | null,
): SnapshotNode {
  return {
    name: node.name,
    arch: node.arch,
    machineType: node.machineType,
    mac: node.mac,
    address,
    image,
    disk,
    efiVars: node.efiVars !== undefined,
    fingerprint: node.unit.hash,
  };
}

function sameImage(a: FileIdentity, b: FileIdentity): boolean {
  return a.path === b.path && a.size === b.size && a.mtime === b.mtime && a.ino === b.ino;
}

/**
 * Why a snapshot cannot be restored into this plan: nodes added or removed, a node's
 * image replaced, its MAC, architecture, machine or firmware changed. Other changes (CPU,
 * memory) are fine: the disk and UEFI state do not depend on them.
 * @param images each node's base image as it is now (absent: missing)
 * @returns one line per difference; empty when it fits
 */
export function snapshotDifferences(
  manifest: SnapshotManifest,
  plan: Plan,
  images: ReadonlyMap<string, FileIdentity>,
): string[] {
  const out: string[] = [];
  const saved = new Map(manifest.nodes.map((n) => [n.name, n]));
  for (const n of manifest.nodes) {
    if (!plan.nodes.some((p) => p.name === n.name)) {
      out.push(`node ${n.name} is in the snapshot but no longer in the configuration`);
    }
  }
  for (const node of plan.nodes) {
    const s = saved.get(node.name);
    if (!s) {
      out.push(`node ${node.name} is in the configuration but not in the snapshot`);
      continue;
    }
    const now = images.get(node.name);
    if (!now) out.push(`node ${node.name}: its image ${node.image.path} is missing`);
    else if (!sameImage(s.image, now)) {
      out.push(
        s.image.path === now.path
          ? `node ${node.name}: image ${now.path} changed since the snapshot (${s.image.mtime} -> ${now.mtime})`
          : `node ${node.name}: image ${s.image.path} -> ${now.path}`,
      );
    }
    const fields: [string, string, string][] = [
      ["MAC", s.mac, node.mac],
      ["architecture", s.arch, node.arch],
      ["machine type", s.machineType, node.machineType],
      ["UEFI", s.efiVars ? "on" : "off", node.efiVars ? "on" : "off"],
    ];
    for (const [what, before, after] of fields) {
      if (before !== after) out.push(`node ${node.name}: ${what} ${before} -> ${after}`);
    }
  }
  return out;
}

/** A snapshot as `snapshot list` shows it. */
export interface SnapshotSummary {
  name: string;
  time: string;
  running: boolean;
  pauseMs: number | null;
  /** Every guest's RAM and devices are in it. */
  memory: boolean;
  nodes: number;
  /** Bytes the snapshot's own files take on disk. */
  diskBytes: number;
}

export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** `snapshot list`'s table: name, time, nodes, size on disk, how it was taken. */
export function formatSnapshotList(list: readonly SnapshotSummary[]): string {
  if (list.length === 0) return "No snapshots. Make one: aos-unit snapshot save NAME\n";
  const rows = [
    ["NAME", "TIME", "NODES", "SIZE", "TAKEN"],
    ...list.map((s) => [
      s.name,
      s.time,
      String(s.nodes),
      formatBytes(s.diskBytes),
      s.running
        ? `running (paused ${s.pauseMs ?? "?"} ms)${s.memory ? ", with memory" : ""}`
        : "stopped",
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => i === r.length - 1 ? c : c.padEnd(widths[i]!)).join("  "))
    .join("\n") + "\n";
}

/**
 * The machine types `qemu-system-ARCH -machine help` lists as aliases: "q35" -> "pc-q35-7.2".
 * A QEMU security update keeps them; a new QEMU release moves them on.
 */
export function machineAliases(help: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of help.matchAll(/^(\S+)\s.*\(alias of (\S+)\)$/gm)) out.set(m[1]!, m[2]!);
  return out;
}

/**
 * Why a snapshot's saved guest states cannot be loaded into this plan's QEMUs: a node's
 * memory, CPUs, CPU model or accelerator changed, or its machine type resolves to another
 * version than the one the state was saved from (`resolve`: the alias as this host's QEMU
 * resolves it; a name that is no alias resolves to itself). `-cpu max` is refused under KVM:
 * it is the host's CPU, not a model a state can move between.
 * @returns one line per difference; empty when every state fits (or there is none)
 */
export function stateDifferences(
  manifest: SnapshotManifest,
  plan: Plan,
  resolve: (arch: string, machine: string) => string,
): string[] {
  if (!manifest.memory) return [];
  const out: string[] = [];
  for (const node of plan.nodes) {
    const state = manifest.nodes.find((n) => n.name === node.name)?.state;
    if (!state) {
      out.push(`node ${node.name}: no saved state`);
      continue;
    }
    const fields: [string, string, string][] = [
      ["memory", `${state.memMiB} MiB`, `${node.memMiB} MiB`],
      ["CPUs", String(state.cpu), String(node.cpu)],
      ["CPU model", state.cpuType, node.cpuType],
      ["accelerator", state.accel, node.accel],
      ["machine", state.machine, resolve(node.arch, node.machineType)],
    ];
    for (const [what, before, after] of fields) {
      if (before !== after) out.push(`node ${node.name}: ${what} ${before} -> ${after}`);
    }
    if (node.accel === "kvm" && node.cpuType === "max") {
      out.push(`node ${node.name}: CPU model max under KVM is the host's CPU, not migration-safe`);
    }
  }
  return out;
}
