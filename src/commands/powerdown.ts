/**
 * `aos-unit powerdown NODE [--timeout SEC]` (the node unit's ExecStop=): asks
 * the guest to shut down over QMP and waits for QEMU to exit, so that every
 * path that stops a node (a manual `systemctl stop aos-node-X`, the broker
 * replacing a changed node, the host shutting down) is an ACPI powerdown
 * first. Only when the guest does not react in time does systemd signal QEMU.
 * Needs no configuration: a node removed from it is powered down the same way.
 */

import { EXIT_OK, UsageError } from "../errors.ts";
import { logger } from "../log.ts";
import { nodeRunDir } from "../plan/layout.ts";
import { NODE_NAME } from "../permissions.ts";
import { powerdownAndWait } from "../vm/qmp.ts";
import type { CommandContext } from "./context.ts";

export async function powerdownCommand(
  ctx: CommandContext,
  name: string,
  timeoutSec: number,
): Promise<number> {
  if (!NODE_NAME.test(name)) throw new UsageError(`"${name}" is not a node name`);
  const log = logger("powerdown");
  const socket = `${nodeRunDir(ctx.paths, name)}/qmp`;
  const started = performance.now();
  const result = await powerdownAndWait(socket, timeoutSec * 1000);
  const ms = Math.round(performance.now() - started);
  if (result === "exited") log.info(`Node ${name} powered down in ${ms} ms`);
  else if (result === "timeout") {
    log.warning(`Node ${name} did not power down within ${timeoutSec} s; systemd stops it now`);
  } else log.info(`Node ${name}: nothing answers on ${socket}; systemd stops it`);
  return EXIT_OK;
}
