/** Reads the two configuration files for the (pure) config loader. */

import type { Diagnostic } from "../base/errors.ts";
import { type Config, type FileText, loadConfig } from "../config/mod.ts";
import type { Paths } from "../plan/types.ts";
import { isUnitName, unitLabel } from "../base/unit_identity.ts";
import type { NodeConfig } from "../base/config_types.ts";
import { ConfigError } from "../base/errors.ts";
import { configFiles, rootsOf, unitPaths } from "./paths.ts";

export function readConfigFile(path: string): FileText {
  try {
    return { path, text: Deno.readTextFileSync(path) };
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { path, missing: true };
    if (error instanceof Deno.errors.IsADirectory) return { path, unreadable: "it is a directory" };
    if (error instanceof Deno.errors.PermissionDenied || error instanceof Deno.errors.NotCapable) {
      return { path, unreadable: "permission denied" };
    }
    if (error instanceof TypeError || error instanceof Deno.errors.InvalidData) {
      return { path, unreadable: "not valid UTF-8 text" };
    }
    return { path, unreadable: (error as Error).message };
  }
}

/**
 * Reads and validates runtime.conf and unit_config.yaml of a configuration directory.
 * @throws {ConfigError} listing every problem when any is an error (exit 2)
 */
export function loadConfigFiles(paths: Paths): { config: Config; warnings: Diagnostic[] } {
  const files = configFiles(paths);
  return loadConfig(readConfigFile(files.runtime), readConfigFile(files.unit));
}

/**
 * The units configured below a configuration root: the default unit when the root holds a
 * unit_config.yaml, and each units/NAME/ that holds one (NAME a unit name; anything else
 * there is no unit).
 */
export function configuredUnits(root: string): { unit: string | undefined; config: string }[] {
  const dirs = { configDir: root, stateDir: "/", logsDir: "/", runtimeDir: "/" };
  const found: { unit: string | undefined; config: string }[] = [];
  const add = (unit: string | undefined) => {
    const config = configFiles(unitPaths(dirs, unit)).unit;
    try {
      if (Deno.statSync(config).isFile) found.push({ unit, config });
    } catch { /* not configured */ }
  };
  add(undefined);
  let names: string[] = [];
  try {
    names = [...Deno.readDirSync(`${root}/units`)].filter((e) => e.isDirectory).map((e) => e.name);
  } catch { /* no named unit */ }
  for (const name of names.filter(isUnitName).sort()) add(name);
  return found;
}

/**
 * The nodes of every configured unit but the one at `paths` (each with its label for
 * messages); a unit whose configuration does not load is left out: its own validate and
 * start report it.
 */
export function otherUnitsNodes(
  paths: Paths,
): { label: string; nodes: NodeConfig[] }[] {
  const roots = rootsOf(paths, paths.unit);
  return configuredUnits(roots.configDir).filter((u) => u.unit !== paths.unit).flatMap((u) => {
    try {
      return [{
        label: unitLabel(u.unit),
        nodes: loadConfigFiles(unitPaths(roots, u.unit)).config.unit.nodes,
      }];
    } catch (error) {
      if (error instanceof ConfigError) return [];
      throw error;
    }
  });
}
