/**
 * `aos-unit lease-hook add|old|del MAC IP [HOSTNAME]`: dnsmasq's dhcp-script.
 * Records who has which address since when in leases.json (atomically, by
 * rename) for `run` and `status`, and logs the event. Must start fast and
 * needs no network and no writable cache. The bundle flavour runs the same
 * record through a small entry of its own (src/lease_hook_entry.ts).
 */

import { EXIT_OK } from "../base/errors.ts";
import { leaseEventOf, recordedText, recordLeaseEvent } from "../host/lease_file.ts";
import { logger } from "../log.ts";
import { leaseStateFile } from "../plan/layout.ts";
import type { CommandContext } from "./_context.ts";
import type { CommandSpec } from "./_spec.ts";

export async function leaseHookCommand(ctx: CommandContext, args: string[]): Promise<number> {
  const started = performance.now();
  const log = logger("lease-hook");
  const event = leaseEventOf(args, new Date().toISOString());
  // dnsmasq also calls with init/tftp/arp events we do not use.
  if (event === "ignored") return EXIT_OK;
  if ("problem" in event) {
    log.warning(event.problem);
    return EXIT_OK;
  }
  await recordLeaseEvent(leaseStateFile(ctx.paths), event);
  log.info(recordedText(event, performance.now() - started));
  return EXIT_OK;
}

export const leaseHookSpec: CommandSpec = {
  name: "lease-hook",
  summary: "dnsmasq dhcp-script: record a lease event (add|old|del MAC IP [HOSTNAME])",
  group: "internal",
  args: [{ name: "[event...]", description: "what dnsmasq passes: add|old|del MAC IP [HOSTNAME]" }],
  passThrough: true,
  examples: "\nExample:\n  aos-unit lease-hook add 52:54:00:fa:d5:8d 10.200.1.10 main",
  run: (ctx, call) => leaseHookCommand(ctx, (call.args[0] ?? []) as string[]),
};
