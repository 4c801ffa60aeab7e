/**
 * `aos-unit prepare`: the files the nodes need before they boot, made as the
 * service user (the root broker starts it with the user's uid and gid, so
 * root never writes in directories the service user can change): the nodes'
 * directories, overlays and UEFI variables, the base-image records, the
 * serial logs, the DHCP directory and the failure log. What to make comes on
 * stdin, from the plan the broker made (plan/preparation.ts): this process
 * loads no configuration and plans nothing.
 */

import { EXIT_OK, UsageError } from "../base/errors.ts";
import { createRunner } from "../host/runner.ts";
import { logger } from "../log.ts";
import { parsePreparation } from "../plan/preparation.ts";
import { prepareFiles } from "../vm/prepare.ts";
import { againAsServiceUser } from "../host/as_service_user.ts";
import { type CommandContext, serviceUserOf } from "./_context.ts";
import type { CommandSpec } from "./_spec.ts";

async function readStdin(): Promise<string> {
  return await new Response(Deno.stdin.readable).text();
}

export async function prepareCommand(ctx: CommandContext): Promise<number> {
  // It changes modes and groups in directories the service user writes: never as root,
  // which would follow a link planted there (by hand: sudo aos-unit prepare).
  const again = await againAsServiceUser(["prepare"], serviceUserOf(ctx));
  if (again !== undefined) return again;
  const preparation = parsePreparation(await readStdin());
  if (typeof preparation === "string") {
    throw new UsageError(
      `prepare reads what to make from stdin, as the broker (aos-unit startup) sends it: ${preparation}`,
    );
  }
  await prepareFiles(createRunner(), preparation, logger("prepare"));
  return EXIT_OK;
}

export const prepareSpec: CommandSpec = {
  name: "prepare",
  summary:
    "make the nodes' files (overlays, UEFI variables, serial logs) as the service user; run by startup",
  group: "internal",
  examples:
    "\nExample (the broker sends the JSON of plan/preparation.ts on stdin):\n  sudo -u aos-unit aos-unit prepare < preparation.json",
  run: (ctx) => prepareCommand(ctx),
};
