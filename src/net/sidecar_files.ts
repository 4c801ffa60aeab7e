/** The dnsmasq configuration and the documented paths that point into private places. */

import { TOOLS } from "../base/tools.ts";
import type { Runner } from "../host/runner.ts";
import type { Plan } from "../plan/types.ts";

/** The sidecar's options, checked by dnsmasq itself (`--test`) before its unit starts. */
export async function checkDnsmasqConfig(runner: Runner, plan: Plan): Promise<void> {
  const argv = dnsmasqExecStart(plan);
  await runner.run([
    argv[0]!,
    "--test",
    ...argv.slice(1).filter((a) => a !== "--keep-in-foreground"),
  ]);
}

/** The argv of the sidecar's ExecStart= in the plan. */
export function dnsmasqExecStart(plan: Plan): string[] {
  const exec = plan.dnsmasq.unit.properties.find(([n]) => n === "ExecStart")![2] as [
    string,
    string[],
    boolean,
  ][];
  return exec[0]![1];
}

/**
 * /run/aos-unit/dnsmasq.leases and /run/aos-unit/NAME.serial, the paths the
 * documentation names, as symlinks to the DHCP directory and the nodes' own
 * runtime directories.
 */
export async function linkDocumentedPaths(runner: Runner, plan: Plan): Promise<void> {
  // Deno allows symlink() only with unscoped read+write permissions: ln(1) does it instead.
  const links: [string, string][] = [
    [plan.dnsmasq.leaseFile, plan.dnsmasq.leaseLink],
    ...plan.nodes.map((n) => [n.serialSocket, n.serialLink] as [string, string]),
  ];
  for (const [target, link] of links) await runner.run([TOOLS.ln, "-sfn", target, link]);
}
