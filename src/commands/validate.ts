/** `aos-unit validate`: check both files, list every problem, exit 0 or 2. */

import { loadConfig } from "../config/mod.ts";
import { ConfigError, type Diagnostic, EXIT_CONFIG, EXIT_OK, formatDiagnostic } from "../errors.ts";
import { readConfigFile } from "../host/config_files.ts";
import { findEmulators, findFirmware, hostArch, listImages } from "../host/facts.ts";
import { configFiles } from "../host/paths.ts";
import { makePlan } from "../plan/mod.ts";
import type { CommandContext } from "./context.ts";

/** Any machine-id will do: validation does not depend on the bridge name. */
const PLACEHOLDER_MACHINE_ID = "0".repeat(32);

export function summary(diagnostics: readonly Diagnostic[]): string {
  const errors = diagnostics.filter((d) => d.severity === "error").length;
  const warnings = diagnostics.length - errors;
  const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? "" : "s"}`;
  return `${plural(errors, "error")}, ${plural(warnings, "warning")}`;
}

export function validateCommand(ctx: CommandContext): number {
  const files = configFiles(ctx.paths);
  try {
    const { config, warnings } = loadConfig(
      readConfigFile(files.runtime),
      readConfigFile(files.unit),
    );
    const plan = makePlan(config, {
      machineId: PLACEHOLDER_MACHINE_ID,
      hostArch: hostArch(),
      kvmUsable: false,
      firmware: findFirmware(),
      emulators: findEmulators(),
      images: listImages(ctx.paths.stateDir),
      serviceUser: "aos-unit",
      executable: "aos-unit",
      leaseHook: "lease-hook",
      nodeStopHook: "node-stop",
      nodeStoppedHook: "node-stopped",
      systemdVersion: 0,
      uplinks: [],
    }, ctx.paths);
    const all = [...warnings, ...plan.warnings];
    for (const d of all) ctx.err(formatDiagnostic(d));
    const names = config.unit.nodes.map((n) => n.name).join(", ");
    ctx.out(
      `${files.unit}: valid: ${config.unit.nodes.length} node${
        config.unit.nodes.length === 1 ? "" : "s"
      } (${names}), network ${plan.network.cidr}, bridge address ${plan.network.bridgeIp}${
        all.length > 0 ? ` (${summary(all)})` : ""
      }`,
    );
    return EXIT_OK;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    for (const d of error.diagnostics) ctx.err(formatDiagnostic(d));
    ctx.err(`${files.unit}: invalid configuration: ${summary(error.diagnostics)}`);
    return EXIT_CONFIG;
  }
}
