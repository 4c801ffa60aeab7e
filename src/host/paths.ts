/** The four directories: injected by systemd, FHS defaults otherwise. */

import type { Paths } from "../plan/types.ts";

export const FHS_PATHS: Paths = {
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
} as const satisfies Record<keyof Paths, string>;

/**
 * Resolves the directories from an environment (systemd may pass several
 * colon-separated paths; the first is ours) and an optional --config-dir.
 */
export function resolvePaths(env: (name: string) => string | undefined, configDir?: string): Paths {
  const pick = (key: keyof Paths): string => {
    const value = env(DIRECTORY_ENV[key])?.split(":")[0];
    return value && value !== "" ? value.replace(/\/+$/, "") : FHS_PATHS[key];
  };
  return {
    configDir: configDir?.replace(/\/+$/, "") ?? pick("configDir"),
    stateDir: pick("stateDir"),
    logsDir: pick("logsDir"),
    runtimeDir: pick("runtimeDir"),
  };
}

export function configFiles(paths: Paths): { runtime: string; unit: string } {
  return {
    runtime: `${paths.configDir}/runtime.conf`,
    unit: `${paths.configDir}/unit_config.yaml`,
  };
}
