/** Loads the two configuration files into a validated Config, or a ConfigError listing every problem. */

import { ConfigError, type Diagnostic } from "../base/errors.ts";
import { parseRuntimeConf } from "./runtime_conf.ts";
import type { Config } from "../base/config_types.ts";
import { parseUnitConfig } from "./unit_config.ts";
import { crossCheck } from "./validate.ts";

export type {
  Arch,
  Config,
  NodeConfig,
  RuntimeConfig,
  SourceLocation,
  UnitConfig,
} from "../base/config_types.ts";
export { RUNTIME_DEFAULTS, RUNTIME_KEYS } from "./runtime_conf.ts";
export { NODE_KEYS } from "./unit_config.ts";

/** The text of a configuration file, or why it could not be read. */
export type FileText =
  | { path: string; text: string }
  | { path: string; missing: true }
  | { path: string; unreadable: string };

function fileProblem(file: FileText, what: string): Diagnostic | undefined {
  if ("missing" in file) {
    return {
      severity: "error",
      file: file.path,
      line: 1,
      column: 1,
      message: `Cannot read ${what}: no such file`,
    };
  }
  if ("unreadable" in file) {
    return {
      severity: "error",
      file: file.path,
      line: 1,
      column: 1,
      message: `Cannot read ${what}: ${file.unreadable}`,
    };
  }
  return undefined;
}

/**
 * Parses and validates both files.
 * @param runtimeFile runtime.conf (missing is fine: every key has a default)
 * @param unitFile unit_config.yaml (required)
 * @returns the config and its warnings
 * @throws {ConfigError} with every error and warning when any error was found
 */
export function loadConfig(
  runtimeFile: FileText,
  unitFile: FileText,
): { config: Config; warnings: Diagnostic[] } {
  const diagnostics: Diagnostic[] = [];
  const runtimeProblem = "missing" in runtimeFile
    ? undefined
    : fileProblem(runtimeFile, "runtime.conf");
  if (runtimeProblem) diagnostics.push(runtimeProblem);
  const runtime = parseRuntimeConf(
    runtimeFile.path,
    "text" in runtimeFile ? runtimeFile.text : undefined,
  );
  diagnostics.push(...runtime.diagnostics);

  const unitProblem = fileProblem(unitFile, "unit_config.yaml");
  if (unitProblem) diagnostics.push(unitProblem);
  const unit = parseUnitConfig(unitFile.path, "text" in unitFile ? unitFile.text : "");
  if (!unitProblem) diagnostics.push(...unit.diagnostics);

  const subnetValid = !runtime.diagnostics.some((d) =>
    d.severity === "error" && d.message.startsWith("DHCP_CIDR")
  );
  diagnostics.push(...crossCheck(runtime.config, unit.config, unit.ipAt, subnetValid));

  const sorted = sortDiagnostics(diagnostics);
  if (sorted.some((d) => d.severity === "error")) throw new ConfigError(sorted);
  return { config: { runtime: runtime.config, unit: unit.config }, warnings: sorted };
}

/** By file, then line, then column; stable otherwise. */
export function sortDiagnostics(list: readonly Diagnostic[]): Diagnostic[] {
  return [...list].sort((a, b) =>
    a.file.localeCompare(b.file) || a.line - b.line || a.column - b.column
  );
}
