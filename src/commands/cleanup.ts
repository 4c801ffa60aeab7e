/**
 * `aos-unit cleanup` (ExecStopPost): remove the bridge, taps, nft table,
 * resolved link settings and runtime files aos-unit created - nothing else.
 * Works from whatever it finds (even with a broken config); safe to run twice.
 */

import { EXIT_OK } from "../errors.ts";
import { readMachineId } from "../host/facts.ts";
import { createRunner } from "../host/runner.ts";
import { logger } from "../log.ts";
import { recordedBridge, teardownNetwork } from "../net/apply.ts";
import { bridgeName } from "../plan/identity.ts";
import type { CommandContext } from "./context.ts";

export async function cleanupCommand(ctx: CommandContext): Promise<number> {
  const log = logger("cleanup");
  const started = performance.now();
  const bridges: string[] = [];
  const recorded = recordedBridge(ctx.paths.runtimeDir);
  if (recorded) bridges.push(recorded);
  try {
    bridges.push(bridgeName(readMachineId()));
  } catch (error) {
    log.warning(`Cannot derive the bridge name: ${(error as Error).message}`);
  }
  const removed = await teardownNetwork(createRunner(), ctx.paths.runtimeDir, bridges, log);
  log.info(
    removed.length === 0
      ? `Nothing to clean up (${Math.round(performance.now() - started)} ms)`
      : `Removed ${removed.join(", ")} in ${Math.round(performance.now() - started)} ms`,
  );
  return EXIT_OK;
}
