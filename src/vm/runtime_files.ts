/** Files `run` writes before starting the sidecar and the nodes. */

import type { Runner } from "../host/runner.ts";
import { TOOLS } from "../permissions.ts";
import type { Plan } from "../plan/types.ts";

function writeAtomic(path: string, content: string): void {
  const tmp = `${path}.tmp`;
  Deno.writeTextFileSync(tmp, content);
  Deno.renameSync(tmp, path);
}

/**
 * dnsmasq.conf in the runtime directory, and the documented
 * /run/aos-unit/dnsmasq.leases pointing at the persistent lease file.
 */
export async function writeSidecarFiles(runner: Runner, plan: Plan): Promise<void> {
  Deno.mkdirSync(plan.paths.runtimeDir, { recursive: true });
  Deno.mkdirSync(plan.paths.stateDir, { recursive: true });
  Deno.mkdirSync(plan.paths.logsDir, { recursive: true });
  writeAtomic(plan.dnsmasq.confPath, plan.dnsmasq.conf);
  // Deno allows symlink() only with unscoped read+write permissions: ln(1) does it instead.
  await runner.run([TOOLS.ln, "-sfn", plan.dnsmasq.leaseFile, plan.dnsmasq.leaseLink]);
}
