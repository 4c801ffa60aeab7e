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

import { EXIT_OK } from "../errors.ts";
import { readMachineId } from "../host/facts.ts";
import { createRunner } from "../host/runner.ts";
import { type Logger, logger } from "../log.ts";
import { recordedBridge, teardownNetwork } from "../net/apply.ts";
import { bridgeName } from "../plan/identity.ts";
import { DNSMASQ_UNIT, MANAGER_UNIT, NODE_UNIT_PREFIX } from "../plan/units.ts";
import { connectSystemBus } from "../systemd/bus.ts";
import { Systemd } from "../systemd/systemd1.ts";
import type { CommandContext } from "./context.ts";

/** Generous: each node's ExecStop= gives its guest STOP_TIMEOUT_SEC, in parallel. */
const UNITS_STOP_TIMEOUT_MS = 150_000;

async function stopUnits(systemd: Systemd, log: Logger): Promise<string[]> {
  const nodes = (await systemd.listUnits([`${NODE_UNIT_PREFIX}*.service`])).map((u) => u.name);
  await Promise.all([...nodes, DNSMASQ_UNIT].map(async (name) => {
    await systemd.stopUnit(name, UNITS_STOP_TIMEOUT_MS).catch((e) =>
      log.warning(`Cannot stop ${name}: ${(e as Error).message}`)
    );
    await systemd.resetFailed(name).catch(() => {});
  }));
  return nodes;
}

export async function cleanupCommand(ctx: CommandContext, afterFailure: boolean): Promise<number> {
  const log = logger("cleanup");
  const started = performance.now();
  let systemd: Systemd | undefined;
  try {
    systemd = await Systemd.open(await connectSystemBus(undefined, 2000));
  } catch (error) {
    log.warning(`No systemd to stop units with: ${(error as Error).message}`);
  }
  try {
    if (afterFailure) {
      const job = await systemd?.jobType(MANAGER_UNIT).catch(() => undefined);
      if (job !== "stop") {
        log.info(
          `The manager ended without a stop (${
            ctx.env.SERVICE_RESULT ?? "unknown result"
          }): the guests and their network stay for the next start to adopt`,
        );
        return EXIT_OK;
      }
      log.warning("The manager ended while the unit was being stopped: taking the unit down");
    }
    const stopped = systemd ? await stopUnits(systemd, log) : [];
    const bridges: string[] = [];
    const recorded = recordedBridge(ctx.paths.runtimeDir);
    if (recorded) bridges.push(recorded);
    try {
      bridges.push(bridgeName(readMachineId()));
    } catch (error) {
      log.warning(`Cannot derive the bridge name: ${(error as Error).message}`);
    }
    const removed = await teardownNetwork(createRunner(), ctx.paths.runtimeDir, bridges, log);
    const all = [...stopped.map((u) => `unit ${u}`), ...removed];
    log.info(
      all.length === 0
        ? `Nothing to clean up (${Math.round(performance.now() - started)} ms)`
        : `Removed ${all.join(", ")} in ${Math.round(performance.now() - started)} ms`,
    );
    return EXIT_OK;
  } finally {
    systemd?.bus.disconnect();
  }
}
