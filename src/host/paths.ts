/**
 * Where a unit lives. systemd hands each service its directories (ConfigurationDirectory=
 * and the like); without them the FHS defaults apply. A named unit (aos-unit@NAME) lives
 * in `units/NAME` below each of the four roots; the images (the state root) and root's
 * host-wide records are shared by every unit.
 */

import type { Paths, UnitDirs } from "../plan/types.ts";
import { rootsOf, unitDirsOf } from "../plan/layout.ts";

export { rootsOf };

/** The default unit's four directories: the roots every named unit lives below. */
const FHS_DIRS: UnitDirs = {
  configDir: "/etc/aos-unit",
  stateDir: "/var/lib/aos-unit",
  logsDir: "/var/log/aos-unit",
  runtimeDir: "/run/aos-unit",
};

/** Environment variables systemd sets for ConfigurationDirectory= & co. */
export const DIRECTORY_ENV = {
  configDir: "CONFIGURATION_DIRECTORY",
  stateDir: "STATE_DIRECTORY",
  logsDir: "LOGS_DIRECTORY",
  runtimeDir: "RUNTIME_DIRECTORY",
} as const satisfies Record<keyof UnitDirs, string>;

export { UNIT_NAME_ENV } from "../base/unit_files.ts";

const KEYS = Object.keys(DIRECTORY_ENV) as (keyof UnitDirs)[];

/**
 * Unit `unit`'s paths from directories that are either the roots or already the unit's
 * own (plan/layout.ts, unitDirsOf: as systemd hands them to aos-unit@NAME and its transient
 * units). Without a unit: the default unit, whose directories are the roots.
 */
export function unitPaths(dirs: UnitDirs, unit?: string): Paths {
  const roots = rootsOf(dirs, unit);
  return {
    ...unitDirsOf(roots, unit),
    unit,
    imagesDir: roots.stateDir,
    hostDir: `${roots.runtimeDir}-root`,
  };
}

/** The default unit's paths in the package. */
export const FHS_PATHS: Paths = unitPaths(FHS_DIRS);

/**
 * Resolves unit `unit`'s paths from an environment (systemd may pass several
 * colon-separated paths; the first is ours) and an optional --config-dir, which is the
 * unit's configuration directory itself.
 */
export function resolvePaths(
  env: (name: string) => string | undefined,
  configDir?: string,
  unit?: string,
): Paths {
  const pick = (key: keyof UnitDirs): string => {
    const value = env(DIRECTORY_ENV[key])?.split(":")[0];
    return value && value !== "" ? value.replace(/\/+$/, "") : FHS_DIRS[key];
  };
  const dirs = Object.fromEntries(KEYS.map((k) => [k, pick(k)])) as unknown as UnitDirs;
  const paths = unitPaths(dirs, unit);
  return configDir === undefined ? paths : { ...paths, configDir: configDir.replace(/\/+$/, "") };
}

export function configFiles(paths: Paths): { runtime: string; unit: string } {
  return {
    runtime: `${paths.configDir}/runtime.conf`,
    unit: `${paths.configDir}/unit_config.yaml`,
  };
}
