/**
 * `aos-unit snapshot save|restore|list|delete [NAME]`: whole-unit snapshots
 * (vm/snapshot.ts). Every file is handled by the service user; root only
 * stops and starts aos-unit.service around a restore's swap.
 */

import { NODE_UNIT_PREFIX, unitNames } from "../base/unit_identity.ts";
import { createRunner } from "../host/runner.ts";
import { EXIT_OK, EXIT_RUNTIME, RuntimeError, UsageError } from "../base/errors.ts";
import { againAsServiceUser, outputAsServiceUser } from "../host/as_service_user.ts";
import { dropResume, requestResume } from "../host/resume_record.ts";
import { envOverrides, loadAndPlan } from "../host/load.ts";
import { logger } from "../log.ts";
import { brokerDir } from "../plan/layout.ts";
import { formatBytes, formatSnapshotList } from "../plan/snapshot.ts";
import type { Plan } from "../plan/types.ts";
import { withSystemd } from "../systemd/connect.ts";
import type { Systemd } from "../systemd/systemd1.ts";
import { deleteSnapshot, listSnapshots, saveSnapshot } from "../vm/snapshot.ts";
import { checkName, lockOrFail } from "../vm/snapshot_files.ts";
import {
  finishRestore,
  rollbackRestore,
  stageRestore,
  swapRestore,
} from "../vm/snapshot_restore.ts";
import { type CommandContext, serviceUserOf } from "./_context.ts";
import { type CommandSpec, flag, stringOpt } from "./_spec.ts";

const ACTIONS = ["save", "restore", "list", "delete"] as const;
type Action = typeof ACTIONS[number];
/** The steps of a restore the service user runs, in order (rollback when one fails). */
const PHASES = ["stage", "swap", "rollback", "finish"] as const;
type Phase = typeof PHASES[number];

export interface SnapshotOptions {
  action: string;
  name: string | undefined;
  json: boolean;
  /** save: every guest's RAM and devices too. */
  memory: boolean;
  /** restore: the disks alone, even from a snapshot with memory (the guests boot). */
  diskOnly: boolean;
  phase: string | undefined;
}

const log = () => logger("snapshot");

function planOf(ctx: CommandContext): Plan {
  return loadAndPlan(ctx.paths, envOverrides(ctx.env)).plan;
}

/** The service user's part: everything but stopping and starting the unit. */
async function asOwner(ctx: CommandContext, o: SnapshotOptions): Promise<number> {
  // A full disk (or a file size limit) is an error to report, not a signal that kills.
  Deno.addSignalListener("SIGXFSZ", () => {});
  const plan = planOf(ctx);
  const action = o.action as Action;
  if (action === "list") {
    const list = listSnapshots(plan);
    ctx.out(o.json ? JSON.stringify(list, null, 2) + "\n" : formatSnapshotList(list));
    return EXIT_OK;
  }
  const name = o.name!;
  if (action === "delete") {
    await deleteSnapshot(plan, name);
    ctx.out(`Deleted snapshot ${name}\n`);
    return EXIT_OK;
  }
  if (action === "save") {
    const m = await saveSnapshot(plan, name, { log: log(), runner: createRunner() }, o.memory);
    const size = listSnapshots(plan).find((s) => s.name === name)?.diskBytes ?? 0;
    ctx.out(
      `Saved snapshot ${name}: ${m.nodes.length} node(s), ${
        m.running ? `running (guests paused ${m.pauseMs} ms)` : "stopped"
      }${m.memory ? ", with memory" : ""}, ${formatBytes(size)}\n`,
    );
    return EXIT_OK;
  }
  const phase = o.phase as Phase;
  if (phase === "stage") {
    const deps = { log: log(), runner: createRunner() };
    // The answer to root, who stops and starts the unit: whether the guests resume.
    ctx.out(JSON.stringify(await stageRestore(plan, name, deps, !o.diskOnly)) + "\n");
  } else if (phase === "swap") await swapRestore(plan, name);
  else if (phase === "rollback") await rollbackRestore(plan, name);
  else await finishRestore(plan);
  return EXIT_OK;
}

function phaseArgs(o: SnapshotOptions, phase: Phase): string[] {
  return ["snapshot", "restore", o.name!, "--phase", phase, ...(o.diskOnly ? ["--disk-only"] : [])];
}

/** Runs one restore step as the service user (or here, when that is who runs this). */
async function step(ctx: CommandContext, o: SnapshotOptions, phase: Phase): Promise<number> {
  return await againAsServiceUser(phaseArgs(o, phase), serviceUserOf(ctx)) ??
    await asOwner(ctx, { ...o, phase });
}

/** The first step, as the service user: its exit code, and whether the guests resume. */
async function stage(ctx: CommandContext, o: SnapshotOptions): Promise<[number, boolean]> {
  const r = await outputAsServiceUser(phaseArgs(o, "stage"), serviceUserOf(ctx));
  if (r === undefined) {
    const deps = { log: log(), runner: createRunner() };
    return [EXIT_OK, (await stageRestore(planOf(ctx), o.name!, deps, !o.diskOnly)).memory];
  }
  if (r.code !== EXIT_OK) return [r.code, false];
  const answer = r.stdout.trim().split("\n").at(-1) ?? "";
  try {
    const memory = (JSON.parse(answer) as { memory?: unknown }).memory === true;
    return [EXIT_OK, memory && !o.diskOnly];
  } catch {
    throw new RuntimeError(`The restore's first step gave no answer (${JSON.stringify(answer)})`);
  }
}

/**
 * Stops the unit, then any node unit still running (a manager that failed leaves them).
 * `discard`: the guests are replaced by saved ones, so they are killed, not powered down.
 */
async function stopAll(ctx: CommandContext, systemd: Systemd, discard: boolean): Promise<void> {
  const names = unitNames(ctx.paths.unit);
  const manager = names.managerUnit;
  const ours = async () =>
    (await systemd.listUnits([`${NODE_UNIT_PREFIX}*.service`]))
      .filter((u) => names.ownsNodeUnit(u.name));
  if (discard) {
    ctx.err(`Stopping ${manager} (the running guests are discarded)...`);
    // The manager's stop first (its job is queued before the signals): it then takes the
    // ended nodes for stopped, not failed. QEMU alone (not a stop hook already running)
    // ends on SIGTERM at once, exit 0, without asking its guest: no crash record, no
    // automatic restart.
    const stopping = systemd.stopUnit(manager, 10 * 60_000);
    await Promise.all(
      (await ours()).map((u) => systemd.killUnit(u.name, "SIGTERM", "main").catch(() => {})),
    );
    await stopping;
  } else {
    ctx.err(`Stopping ${manager} (every guest gets the ACPI power button)...`);
    await systemd.stopUnit(manager, 10 * 60_000);
  }
  for (const unit of await ours()) {
    if (["active", "activating", "deactivating", "reloading"].includes(unit.activeState)) {
      await systemd.stopUnit(unit.name, 5 * 60_000);
    }
  }
  const left = (await ours()).filter((u) => !["inactive", "failed"].includes(u.activeState));
  if (left.length > 0) {
    throw new RuntimeError(`Nodes still running: ${left.map((u) => u.name).join(", ")}`);
  }
}

/** One restore at a time: a lock only root can take (root's own directory). */
function rootLock(ctx: CommandContext): Deno.FsFile {
  const dir = brokerDir(ctx.paths);
  Deno.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const file = Deno.openSync(`${dir}/snapshot-restore.lock`, {
    read: true,
    write: true,
    create: true,
    mode: 0o600,
  });
  return file;
}

/**
 * Root's part of a restore: stage (the unit runs on), stop the unit and every node, swap,
 * start it and wait for READY. On any failure the previous files go back and the unit is
 * left as it was (running if it ran). Ctrl-C and hang-ups wait for the end.
 */
async function restore(ctx: CommandContext, o: SnapshotOptions): Promise<number> {
  if (Deno.uid() !== 0) {
    throw new RuntimeError("snapshot restore stops and starts aos-unit.service", {
      hint: `run it as root: sudo aos-unit snapshot restore ${o.name}`,
    });
  }
  const lock = rootLock(ctx);
  const hold = () => ctx.err("A restore is running; it finishes (or puts everything back) first");
  const signals = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
  try {
    await lockOrFail(lock, "Another snapshot restore is running");
    for (const sig of signals) Deno.addSignalListener(sig, hold);
    return await restoreLocked(ctx, o);
  } finally {
    for (const sig of signals) Deno.removeSignalListener(sig, hold);
    lock.close();
  }
}

async function restoreLocked(ctx: CommandContext, o: SnapshotOptions): Promise<number> {
  const started = performance.now();
  const [staged, memory] = await stage(ctx, o);
  if (staged !== EXIT_OK) return staged;
  const manager = unitNames(ctx.paths.unit).managerUnit;
  // No request of an earlier restore that was cut short is left for this start.
  dropResume(ctx.paths);
  return await withSystemd(async (systemd) => {
    const state = await systemd.unitState(manager);
    const wasActive = !!state && ["active", "activating", "reloading"].includes(state.activeState);
    const back = async (why: string) => {
      ctx.err(`${why}; putting the previous state back`);
      dropResume(ctx.paths);
      // Nodes that wait for (or loaded) a state go too: none may run on the old disks.
      await stopAll(ctx, systemd, memory).catch(() => {});
      await step(ctx, o, "rollback");
      if (wasActive) await systemd.startUnit(manager, 10 * 60_000);
      return EXIT_RUNTIME;
    };
    try {
      await stopAll(ctx, systemd, memory);
    } catch (error) {
      return await back(`Cannot stop the unit: ${(error as Error).message}`);
    }
    if (await step(ctx, o, "swap") !== EXIT_OK) return await back("The swap failed");
    ctx.err(`Starting ${manager} on snapshot ${o.name}...`);
    let result: string;
    try {
      // The broker's next start makes every node wait for its saved state; the manager
      // loads them and resumes every guest at once.
      if (memory) requestResume(ctx.paths, o.name!);
      result = await systemd.startUnit(manager, 10 * 60_000);
    } catch (error) {
      result = (error as Error).message;
    } finally {
      dropResume(ctx.paths);
    }
    if (result !== "done") return await back(`${manager} did not start (${result})`);
    await step(ctx, o, "finish");
    ctx.out(
      `Restored snapshot ${o.name}${memory ? " (the guests resumed, no boot)" : ""} in ${
        ((performance.now() - started) / 1000).toFixed(1)
      } s\n`,
    );
    return EXIT_OK;
  }, 10_000);
}

export async function snapshotCommand(ctx: CommandContext, o: SnapshotOptions): Promise<number> {
  if (!(ACTIONS as readonly string[]).includes(o.action)) {
    throw new UsageError(`Unknown snapshot action "${o.action}" (${ACTIONS.join(", ")})`);
  }
  if (o.action !== "list") {
    if (o.name === undefined) throw new UsageError(`snapshot ${o.action} needs a NAME`);
    checkName(o.name);
  }
  if (o.memory && o.action !== "save") throw new UsageError("--memory goes with snapshot save");
  if (o.diskOnly && o.action !== "restore") {
    throw new UsageError("--disk-only goes with snapshot restore");
  }
  if (o.phase !== undefined) {
    if (o.action !== "restore" || !(PHASES as readonly string[]).includes(o.phase)) {
      throw new UsageError(`--phase is one step of a restore (${PHASES.join(", ")})`);
    }
    // Root never works on the service user's files itself: as that user again.
    return await step(ctx, o, o.phase as Phase);
  }
  if (o.action === "restore") return await restore(ctx, o);
  // Root never opens, copies or deletes in directories the service user can change.
  const args = [
    "snapshot",
    o.action,
    ...(o.name ? [o.name] : []),
    ...(o.json ? ["--json"] : []),
    ...(o.memory ? ["--memory"] : []),
  ];
  return await againAsServiceUser(args, serviceUserOf(ctx)) ?? await asOwner(ctx, o);
}

export const snapshotSpec: CommandSpec = {
  name: "snapshot",
  summary: "save, restore, list or delete a snapshot of the whole unit (every node at one instant)",
  group: "user",
  args: [
    { name: "<action>", description: "save, restore, list or delete" },
    { name: "[name]", description: "the snapshot's name (letters, digits, - and _)" },
  ],
  options: [
    { flags: "--json", description: "list: one JSON array" },
    {
      flags: "--memory",
      description:
        "save: every guest's RAM and devices too, at the same instant (the guests pause while it is written)",
    },
    {
      flags: "--disk-only",
      description: "restore: the disks alone, even from a snapshot with memory (the guests boot)",
    },
    { flags: "--phase <step>", description: "(internal) one step of a restore, as aos-unit" },
  ],
  examples: `
Examples:
  sudo aos-unit snapshot save provisioned      # guests pause for milliseconds
  sudo aos-unit snapshot save --memory live    # and their RAM: they pause while it is written
  sudo aos-unit snapshot restore provisioned   # powers down, swaps, starts: READY again
  sudo aos-unit snapshot restore live          # with memory: the guests resume, no boot
  sudo aos-unit snapshot list
  sudo aos-unit snapshot delete provisioned

Exit status: 0 done; 1 it failed (a restore leaves the unit as it was); 2 an unknown or
invalid name, a name taken, a snapshot made from another plan, or saved memory that
no longer fits (its memory size, CPUs, CPU model, accelerator or machine version).`,
  run: (ctx, call) =>
    snapshotCommand(ctx, {
      action: String(call.args[0]),
      name: call.args[1] === undefined ? undefined : String(call.args[1]),
      json: flag(call, "json"),
      memory: flag(call, "memory"),
      diskOnly: flag(call, "diskOnly"),
      phase: stringOpt(call, "phase"),
    }),
};
