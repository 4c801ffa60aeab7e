/**
 * `aos-unit lease-hook add|old|del MAC IP [HOSTNAME]`: dnsmasq's dhcp-script.
 * Records who has which address since when in leases.json (atomically, by
 * rename) for `run` and `status`, and logs the event. Must start fast and
 * needs no network and no writable cache.
 */

import { EXIT_OK } from "../base/errors.ts";
import { type LeaseEvent, recordLease } from "../host/leases.ts";
import { logger } from "../log.ts";
import { dhcpDir } from "../plan/layout.ts";
import type { CommandContext } from "./_context.ts";
import type { CommandSpec } from "./_spec.ts";

export function leaseHookCommand(ctx: CommandContext, args: string[]): number {
  const started = performance.now();
  const [action, mac, ip, hostname] = args;
  const log = logger("lease-hook");
  if (action !== "add" && action !== "old" && action !== "del") {
    // dnsmasq also calls with init/tftp/arp events we do not use.
    return EXIT_OK;
  }
  if (!mac || !ip) {
    log.warning(`Ignoring "${args.join(" ")}": expected add|old|del MAC IP [HOSTNAME]`);
    return EXIT_OK;
  }
  const event: LeaseEvent = {
    action,
    mac: mac.toLowerCase(),
    ip,
    hostname,
    at: new Date().toISOString(),
  };
  recordLease(`${dhcpDir(ctx.paths)}/leases.json`, event);
  log.info(
    `DHCP ${action} ${event.mac} ${ip}${event.hostname ? ` ${event.hostname}` : ""} (recorded in ${
      (performance.now() - started).toFixed(1)
    } ms)`,
  );
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
