/** `aos-unit console NODE`: attach to a node's live serial console; Ctrl-] detaches. */

import { EXIT_OK, RuntimeError, UsageError } from "../errors.ts";
import { NODE_NAME } from "../permissions.ts";
import { attachConsole } from "../vm/console.ts";
import type { CommandContext } from "./context.ts";

export async function consoleCommand(ctx: CommandContext, node: string): Promise<number> {
  if (!NODE_NAME.test(node)) throw new UsageError(`"${node}" is not a node name`);
  const socket = `${ctx.paths.runtimeDir}/${node}.serial`;
  try {
    Deno.statSync(socket);
  } catch {
    throw new RuntimeError(`Node ${node} has no serial console (${socket} does not exist)`, {
      hint: "is the node running? systemctl list-units 'aos-node-*'",
    });
  }
  ctx.err(
    `Connected to ${node}'s serial console (${socket}). Press Ctrl-] to detach; the VM keeps running.`,
  );
  const how = await attachConsole(socket);
  const said = {
    detached: `Detached from ${node}.`,
    eof: `Input ended; detached from ${node}.`,
    closed: `Console of ${node} closed (the VM stopped).`,
  };
  ctx.err(`\r\n${said[how]}`);
  return EXIT_OK;
}
