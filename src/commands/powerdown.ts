/**
 * `aos-unit powerdown NODE [--timeout SEC]` (the node unit's ExecStop=): asks
 * the guest to shut down over QMP and waits for QEMU to exit, so that every
 * path that stops a node (a manual `systemctl stop aos-node-X`, the broker
 * replacing a changed node, the host shutting down) is an ACPI powerdown
 * first. Only when the guest does not react in time does systemd signal QEMU.
 * Needs no configuration: a node removed from it is powered down the same way.
 */

import { EXIT_OK, UsageError } from "../base/errors.ts";
import { logger } from "../log.ts";
import { nodeRunDir } from "../plan/layout.ts";
import { isNodeName } from "../base/names.ts";
import { powerdownAndWait } from "../vm/qmp.ts";
import type { CommandContext } from "./_context.ts";
import { type CommandSpec, stringOpt } from "./_spec.ts";

export async function powerdownCommand(
  ctx: CommandContext,
  name: string,
  timeoutSec: number,
): Promise<number> {
  if (!isNodeName(name)) throw new UsageError(`"${name}" is not a node name`);
  const log = logger("powerdown");
  const socket = `${nodeRunDir(ctx.paths, name)}/qmp`;
  const started = performance.now();
  const result = await powerdownAndWait(socket, timeoutSec * 1000, undefined, name);
  const ms = Math.round(performance.now() - started);
  if (result === "exited") log.info(`Node ${name} powered down in ${ms} ms`);
  else if (result === "timeout") {
    log.warning(`Node ${name} did not power down within ${timeoutSec} s; systemd stops it now`);
  } else log.info(`Node ${name}: nothing answers on ${socket}; systemd stops it`);
  return EXIT_OK;
}

export const powerdownSpec: CommandSpec = {
  name: "powerdown",
  summary: "a node unit's ExecStop: ACPI powerdown over QMP, then wait for QEMU to exit",
  group: "internal",
  args: [{ name: "<node>", description: "node name" }],
  options: [{
    flags: "--timeout <sec>",
    description: "how long the guest gets before systemd signals QEMU",
    default: "60",
  }],
  nodeOperand: true,
  examples: "\nExample:\n  ExecStop=/usr/bin/aos-unit powerdown main --timeout 60",
  run: (ctx, call) =>
    powerdownCommand(
      ctx,
      String(call.args[0]),
      Math.max(1, Number(stringOpt(call, "timeout")) || 60),
    ),
};
