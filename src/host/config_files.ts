/** Reads the two configuration files for the (pure) config loader. */

import type { Diagnostic } from "../base/errors.ts";
import { type Config, type FileText, loadConfig } from "../config/mod.ts";
import type { Paths } from "../plan/types.ts";
import { configFiles } from "./paths.ts";

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
