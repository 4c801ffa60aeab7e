/** `aos-unit console NODE`: attach to a node's live serial console; Ctrl-] detaches. */

import { EXIT_OK, RuntimeError, UsageError } from "../base/errors.ts";
import { isNodeName } from "../base/names.ts";
import { NODE_UNIT_PREFIX } from "../base/unit_identity.ts";
import { againAsServiceUser } from "../host/as_service_user.ts";
import { attachConsole } from "../vm/console.ts";
import { nodeRunDir } from "../plan/layout.ts";
import { serviceUserOf } from "./_context.ts";
import type { CommandContext } from "./_context.ts";
import type { CommandSpec } from "./_spec.ts";

export async function consoleCommand(ctx: CommandContext, node: string): Promise<number> {
  if (!isNodeName(node)) throw new UsageError(`"${node}" is not a node name`);
  // Root never connects to a socket path the service user can repoint.
  const again = await againAsServiceUser(["console", node], serviceUserOf(ctx));
  if (again !== undefined) return again;
  const socket = `${ctx.paths.runtimeDir}/${node}.serial`;
  const own = `${nodeRunDir(ctx.paths, node)}/serial`;
  let real: string;
  try {
    real = Deno.realPathSync(socket);
  } catch {
    throw new RuntimeError(`Node ${node} has no serial console (${socket} does not exist)`, {
      hint: `is the node running? systemctl list-units '${NODE_UNIT_PREFIX}*'`,
    });
  }
  // The node owns its socket directory: its socket may have been made a link to another
  // node's console. Only its own socket, itself, is typed into.
  if (real !== own || !Deno.lstatSync(own).isSocket) {
    throw new RuntimeError(`Refusing ${socket}: it leads to ${real}, not to ${own}`);
  }
  ctx.err(
    `Connected to ${node}'s serial console (${socket}). Press Ctrl-] to detach; the VM keeps running.`,
  );
  const how = await attachConsole(own);
  const said = {
    detached: `Detached from ${node}.`,
    eof: `Input ended; detached from ${node}.`,
    closed: `Console of ${node} closed (the VM stopped).`,
  };
  ctx.err(`\r\n${said[how]}`);
  return EXIT_OK;
}

export const consoleSpec: CommandSpec = {
  name: "console",
  summary: "attach to a node's live serial console (Ctrl-] detaches; the VM keeps running)",
  group: "user",
  args: [{ name: "<node>", description: "node name from unit_config.yaml" }],
  nodeOperand: true,
  examples: `
Examples:
  sudo aos-unit console main
  (press Ctrl-] to detach; the serial log in /var/log/aos-unit/main-serial.log keeps growing)`,
  run: (ctx, call) => consoleCommand(ctx, String(call.args[0])),
};
