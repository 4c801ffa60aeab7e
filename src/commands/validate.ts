/** `aos-unit validate`: check both files, list every problem, exit 0 or 2. */

import { ConfigError, EXIT_CONFIG, EXIT_OK, formatDiagnostic, summarize } from "../base/errors.ts";
import { sortDiagnostics } from "../config/mod.ts";
import {
  configuredUnits,
  loadConfigFiles,
  otherUnitsNodes,
  readConfigFile,
} from "../host/config_files.ts";
import type { Config, RuntimeConfig } from "../base/config_types.ts";
import { crossUnitForwardClashes } from "../config/forwards.ts";
import { unitLabel } from "../base/unit_identity.ts";
import type { Diagnostic } from "../base/errors.ts";
import { formatCidr, overlaps } from "../base/ipv4.ts";
import { parseRuntimeConf } from "../config/runtime_conf.ts";
import { inspectImages } from "../host/image/inspect.ts";
import { findEmulators, findFirmware, hostArch, listImages } from "../host/facts.ts";
import { configFiles, rootsOf, unitPaths } from "../host/paths.ts";
import { makePlan } from "../plan/mod.ts";
import type { CommandContext } from "./_context.ts";
import type { CommandSpec } from "./_spec.ts";

/**
 * Other configured units whose subnet overlaps this one's: in this release they cannot run
 * at the same time (the second to start is refused).
 */
function overlapWarnings(ctx: CommandContext, runtime: RuntimeConfig): Diagnostic[] {
  const roots = rootsOf(ctx.paths, ctx.paths.unit);
  return configuredUnits(roots.configDir).filter((u) => u.unit !== ctx.paths.unit).flatMap(
    (u) => {
      const file = configFiles(unitPaths(roots, u.unit)).runtime;
      const text = readConfigFile(file);
      const other = parseRuntimeConf(file, "text" in text ? text.text : undefined).config;
      if (!overlaps(runtime.subnet, other.subnet)) return [];
      const name = unitLabel(u.unit);
      return [{
        severity: "warning" as const,
        ...runtime.subnetAt,
        message: `DHCP_CIDR ${formatCidr(runtime.subnet)} overlaps ${name}'s ${
          formatCidr(other.subnet)
        } (${file}): the two cannot run at the same time`,
      }];
    },
  );
}

/**
 * Host ports this unit and another configured unit both forward: errors at both lines (the
 * two could not run together). A unit whose configuration does not load is skipped: its
 * own validate reports it.
 */
function forwardClashes(ctx: CommandContext, config: Config): Diagnostic[] {
  return crossUnitForwardClashes(
    { label: unitLabel(ctx.paths.unit), nodes: config.unit.nodes },
    otherUnitsNodes(ctx.paths),
  );
}

/** Any machine-id will do: validation does not depend on the bridge name. */
const PLACEHOLDER_MACHINE_ID = "0".repeat(32);

export function validateCommand(ctx: CommandContext): number {
  const files = configFiles(ctx.paths);
  try {
    const { config, warnings } = loadConfigFiles(ctx.paths);
    const images = listImages(ctx.paths.imagesDir);
    const plan = makePlan(config, {
      machineId: PLACEHOLDER_MACHINE_ID,
      hostArch: hostArch(),
      kvmUsable: false,
      firmware: findFirmware(),
      emulators: findEmulators(),
      images,
      imageNetworks: inspectImages(ctx.paths.imagesDir, images, ctx.paths),
      serviceUser: "aos-unit",
      executable: "aos-unit",
      leaseHook: "lease-hook",
      nodeStopHook: "node-stop",
      nodeStoppedHook: "node-stopped",
      systemdVersion: 0,
      uplinks: [],
    }, ctx.paths);
    const all = sortDiagnostics([
      ...warnings,
      ...plan.warnings,
      ...overlapWarnings(ctx, config.runtime),
      ...forwardClashes(ctx, config),
    ]);
    // What the images expect is checked against the plan: its errors are the config's.
    if (all.some((d) => d.severity === "error")) throw new ConfigError(all);
    for (const d of all) ctx.err(formatDiagnostic(d));
    const names = config.unit.nodes.map((n) => n.name).join(", ");
    ctx.out(
      `${files.unit}: valid: ${config.unit.nodes.length} node${
        config.unit.nodes.length === 1 ? "" : "s"
      } (${names}), network ${plan.network.cidr}, bridge address ${plan.network.bridgeIp}${
        all.length > 0 ? ` (${summarize(all)})` : ""
      }`,
    );
    return EXIT_OK;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    for (const d of error.diagnostics) ctx.err(formatDiagnostic(d));
    ctx.err(`${files.unit}: invalid configuration: ${summarize(error.diagnostics)}`);
    return EXIT_CONFIG;
  }
}

export const validateSpec: CommandSpec = {
  name: "validate",
  summary: "check unit_config.yaml and runtime.conf; list every problem as FILE:LINE:COLUMN",
  group: "user",
  configDir: true,
  examples: `
Examples:
  aos-unit validate
  aos-unit validate --config-dir ./my-unit

Exit status: 0 when valid (warnings may be printed), 2 when any error was found.`,
  run: (ctx) => validateCommand(ctx),
};
