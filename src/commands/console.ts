/** `aos-unit console NODE`: attach to a node's live serial console; Ctrl-] detaches. */

import { EXIT_OK, RuntimeError } from "../errors.ts";
import { attachConsole } from "../vm/console.ts";
import type { CommandContext } from "./context.ts";

export async function consoleCommand(ctx: CommandContext, node: string): Promise<number> {
  if (!/^[A-Za-z0-9-]{1,63}$/.test(node)) throw new RuntimeError(`"${node}" is not a node name`);
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
