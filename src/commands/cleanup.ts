/**
 * `aos-unit cleanup [--after-failure]`: take the unit down - every node
 * (ACPI powerdown through its ExecStop=), the dnsmasq sidecar, the bridge,
 * taps, nft tables, resolved link settings and runtime files aos-unit made,
 * nothing else. Works from whatever it finds (even with a broken config);
 * safe to run twice.
 *
 * With --after-failure (aos-unit.service's ExecStopPost= hook, when `run` did
 * not exit cleanly) it does this only when systemd is stopping the unit; after
 * a crash it keeps everything, because the next `run` adopts the guests.
 */

import { EXIT_OK, RuntimeError } from "../base/errors.ts";
import { readMachineId } from "../host/facts.ts";
import { createRunner } from "../host/runner.ts";
import { type Logger, logger } from "../log.ts";
import { recordedBridge, teardownNetwork } from "../net/apply.ts";
import { releaseNamespace } from "../net/isolation.ts";
import { envOverrides, loadAndPlan } from "../host/load.ts";
import { readLeaseState } from "../host/leases.ts";
import { answers, READY_PORT } from "../net/probe.ts";
import { NODE_UNIT_PREFIX, unitIdentity, unitNames } from "../base/unit_identity.ts";
import { contains, parseIpv4 } from "../base/ipv4.ts";
import { leaseStateFile, nodeRunDir } from "../plan/layout.ts";
import { powerDownNode } from "../vm/shutdown.ts";
import { openSystemd } from "../systemd/connect.ts";
import type { Systemd } from "../systemd/systemd1.ts";
import type { CommandContext } from "./_context.ts";
import { type CommandSpec, flag } from "./_spec.ts";

/** The stop timeout when the configuration cannot be read (runtime.conf's default). */
const DEFAULT_STOP_TIMEOUT_SEC = 60;

/**
 * Powers every node unit down as the manager would (works from the units it
 * finds, even with a broken configuration), then stops dnsmasq.
 * @returns the node units stopped
 */
async function stopUnits(ctx: CommandContext, systemd: Systemd, log: Logger): Promise<string[]> {
  // Where each node lives: the plan's address (dnsmasq hands out only that one), else a
  // lease record (the service user's file: only an address in the unit's subnet is probed).
  let planned = new Map<string, string>();
  let inSubnet = (_ip: string) => false;
  let stopTimeoutSec = DEFAULT_STOP_TIMEOUT_SEC;
  try {
    const { plan, config } = loadAndPlan(ctx.paths, envOverrides(ctx.env));
    planned = new Map(plan.nodes.map((n) => [n.name, n.address]));
    inSubnet = (ip) => contains(config.runtime.subnet, parseIpv4(ip) ?? -1);
    stopTimeoutSec = config.runtime.stopTimeoutSec;
  } catch (error) {
    log.warning(`Reading the configuration: ${(error as Error).message}; using defaults`);
  }
  const leases = readLeaseState(leaseStateFile(ctx.paths)).leases;
  // Only this unit's node units: another unit's are never touched.
  const names = unitNames(ctx.paths.unit);
  const units = (await systemd.listUnits([`${NODE_UNIT_PREFIX}*.service`]))
    .filter((u) => names.ownsNodeUnit(u.name));
  await Promise.all(units.map(async ({ name: unit }) => {
    const name = names.nodeOfUnit(unit)!;
    const state = await systemd.unitState(unit);
    if (state?.activeState === "failed" || state?.activeState === "inactive") {
      // On systemd < 254 a crash passes through "failed" on its way to a restart: a stop
      // cancels that restart, so no QEMU boots onto a network being removed.
      if (state.activeState === "failed") await systemd.stopUnit(unit, 10_000).catch(() => {});
      await systemd.resetFailed(unit).catch(() => {});
      return;
    }
    const leased = leases[names.node(name).mac]?.ip;
    const ip = planned.get(name) ?? (leased && inSubnet(leased) ? leased : undefined);
    const phase = state?.subState === "auto-restart"
      ? "restarting"
      : ip && await answers(ip, READY_PORT, 400)
      ? "up"
      : "booting";
    await powerDownNode(
      systemd,
      { name, unit, qmpSocket: `${nodeRunDir(ctx.paths, name)}/qmp`, phase },
      stopTimeoutSec,
      log,
    );
    await systemd.resetFailed(unit).catch(() => {});
  }));
  await systemd.stopUnit(names.dnsmasqUnit, 10_000).catch((e) =>
    log.warning(`Cannot stop ${names.dnsmasqUnit}: ${(e as Error).message}`)
  );
  await systemd.resetFailed(names.dnsmasqUnit).catch(() => {});
  return units.map((u) => u.name);
}

/**
 * Without the bus no node can be stopped: taking the network away from guests that run
 * would leave them on deleted taps (and the next start would adopt them so).
 * @throws {RuntimeError} when a node's QMP socket shows a QEMU still there
 */
function refuseWithGuestsRunning(ctx: CommandContext): void {
  let running: string[] = [];
  try {
    running = [...Deno.readDirSync(`${ctx.paths.runtimeDir}/nodes`)].map((e) => e.name).filter(
      (name) => {
        try {
          return Deno.lstatSync(`${ctx.paths.runtimeDir}/nodes/${name}/qmp`).isSocket;
        } catch {
          return false;
        }
      },
    );
  } catch { /* no node ever ran */ }
  if (running.length > 0) {
    throw new RuntimeError(
      `Cannot stop ${
        running.join(", ")
      } without the system bus; the network stays, so they keep it`,
      { hint: "systemctl start dbus, then run aos-unit cleanup again" },
    );
  }
}

/** When to take the unit down: always (by hand), after a failure, or when it ended stopped. */
export type CleanupWhen = "always" | "after-failure" | "if-stopped";

/**
 * Whether the manager's end leaves anything to take down.
 * @returns why to leave everything as it is, or undefined to go on
 */
async function reasonToKeep(
  ctx: CommandContext,
  systemd: Systemd | undefined,
  when: CleanupWhen,
): Promise<string | undefined> {
  if (when === "always") return undefined;
  const manager = unitNames(ctx.paths.unit).managerUnit;
  const job = await systemd?.jobType(manager).catch(() => undefined);
  if (when === "after-failure") {
    return job === "stop"
      ? undefined
      : `The manager ended without a stop (${
        ctx.env.SERVICE_RESULT ?? "unknown result"
      }): the guests and their network stay for the next start to adopt`;
  }
  if (!systemd) return "No system bus: cannot tell whether aos-unit.service runs again";
  const state = await systemd.unitState(manager);
  const active = state?.activeState ?? "inactive";
  if (job !== undefined || !["inactive", "failed"].includes(active)) {
    return `${manager} is ${active}${job ? ` with a ${job} job` : ""}: nothing to take down`;
  }
  return undefined;
}

/**
 * Root's part of a named unit's stop: its namespace, once no node or sidecar runs in it (a
 * manager's crash or restart leaves them running there, for the next start to adopt).
 */
export async function releaseCommand(ctx: CommandContext): Promise<number> {
  const log = logger("cleanup");
  const ns = unitNames(ctx.paths.unit).namespace;
  if (ns && await releaseNamespace(createRunner(), ns)) log.info(`Removed namespace ${ns}`);
  return EXIT_OK;
}

export async function cleanupCommand(ctx: CommandContext, when: CleanupWhen): Promise<number> {
  const log = logger("cleanup");
  const started = performance.now();
  const names = unitNames(ctx.paths.unit);
  const connection = await openSystemd();
  const systemd = connection.systemd;
  if (connection.problem) log.warning(`No systemd to stop units with: ${connection.problem}`);
  try {
    const keep = await reasonToKeep(ctx, systemd, when);
    if (keep) {
      log.info(keep);
      return EXIT_OK;
    }
    if (when === "after-failure") {
      log.warning("The manager ended while the unit was being stopped: taking the unit down");
    } else if (when === "if-stopped") {
      log.warning(`${names.managerUnit} ended stopped: taking down what is left`);
    }
    if (!systemd) refuseWithGuestsRunning(ctx);
    const stopped = systemd ? await stopUnits(ctx, systemd, log) : [];
    const bridges: string[] = [];
    const recorded = recordedBridge(ctx.paths.runtimeDir);
    if (recorded) bridges.push(recorded);
    try {
      bridges.push(unitIdentity(ctx.paths.unit, readMachineId()).bridge);
    } catch (error) {
      log.warning(`Cannot derive the bridge name: ${(error as Error).message}`);
    }
    const removed = await teardownNetwork(
      createRunner(),
      { runtimeDir: ctx.paths.runtimeDir, names },
      bridges,
      log,
    );
    const all = [...stopped.map((u) => `unit ${u}`), ...removed];
    log.info(
      all.length === 0
        ? `Nothing to clean up (${Math.round(performance.now() - started)} ms)`
        : `Removed ${all.join(", ")} in ${Math.round(performance.now() - started)} ms`,
    );
    return EXIT_OK;
  } finally {
    connection.bus?.disconnect();
  }
}

export const cleanupSpec: CommandSpec = {
  name: "cleanup",
  summary:
    "take the unit down: power the nodes down, remove dnsmasq, bridge, taps, nft tables, runtime files",
  group: "internal",
  options: [
    {
      flags: "--after-failure",
      description:
        "ExecStopPost hook: only when systemd is stopping the unit (a crash keeps the guests)",
    },
    {
      flags: "--if-stopped",
      description:
        "aos-unit-stopped.service: only when aos-unit.service is inactive with no job (a stop that raced a restart)",
    },
    {
      flags: "--release-namespace",
      description:
        "ExecStopPost=+ of aos-unit@NAME.service: delete the unit's network namespace once nothing runs in it",
    },
  ],
  examples:
    "\nSafe to run twice; touches nothing aos-unit did not create.\nExample:\n  sudo aos-unit cleanup",
  run: (ctx, call) =>
    flag(call, "releaseNamespace") ? releaseCommand(ctx) : cleanupCommand(
      ctx,
      flag(call, "afterFailure")
        ? "after-failure"
        : flag(call, "ifStopped")
        ? "if-stopped"
        : "always",
    ),
};
