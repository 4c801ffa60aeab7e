/** The dnsmasq configuration and the documented paths that point into private places. */

import { writeFileAtomic } from "../host/atomic.ts";
import type { Runner } from "../host/runner.ts";
import { TOOLS } from "../base/tools.ts";
import type { Plan } from "../plan/types.ts";

/** dnsmasq.conf in the runtime directory, checked by dnsmasq itself before it is used. */
export async function writeDnsmasqConf(runner: Runner, plan: Plan): Promise<void> {
  writeFileAtomic(plan.dnsmasq.confPath, plan.dnsmasq.conf);
  await runner.run([TOOLS.dnsmasq, "--test", `--conf-file=${plan.dnsmasq.confPath}`]);
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
