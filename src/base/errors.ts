/**
 * Error types that know their exit code. One handler at the top of each
 * command turns any error into a message and an exit code.
 *
 * Exit codes (aos-unit(8)): 0 clean, 1 runtime failure (systemd restarts),
 * 2 configuration error (systemd does not restart: RestartPreventExitStatus=2).
 */

export const EXIT_OK = 0;
export const EXIT_RUNTIME = 1;
export const EXIT_CONFIG = 2;

/** A problem found in a file, located at a line and column (1-based). */
export interface Diagnostic {
  severity: "error" | "warning";
  file: string;
  line: number;
  column: number;
  message: string;
  /**
   * Warnings that `run` must treat as errors: it cannot boot a node without
   * its image or the UEFI firmware it needs.
   */
  blocksRun?: true;
  /** The doctor check this diagnostic belongs to, and the command that fixes it. */
  check?: string;
  fix?: string;
}

/** Formats a diagnostic as `FILE:LINE:COLUMN: message` (warnings say so). */
export function formatDiagnostic(d: Diagnostic): string {
  const where = `${d.file}:${d.line}:${d.column}`;
  return d.severity === "warning" ? `${where}: warning: ${d.message}` : `${where}: ${d.message}`;
}

/** `FILE:LINE:COLUMN: message` without the severity (for log lines that carry their own level). */
export function formatLocated(d: Diagnostic): string {
  return `${d.file}:${d.line}:${d.column}: ${d.message}`;
}

/** "2 errors, 1 warning" */
export function summarize(diagnostics: readonly Diagnostic[]): string {
  const errors = diagnostics.filter((d) => d.severity === "error").length;
  const warnings = diagnostics.length - errors;
  const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? "" : "s"}`;
  return `${plural(errors, "error")}, ${plural(warnings, "warning")}`;
}

/**
 * A problem a check found, in the shape every preflight and doctor check shares
 * (vm/file_access.ts's): which check, what is wrong (who, what, why), and the
 * command or change that fixes it.
 */
export interface Problem {
  check: string;
  message: string;
  fix: string;
}

/** The configuration is wrong: permanent, exit code 2. Carries every problem found. */
export class ConfigError extends Error {
  override name = "ConfigError";
  readonly exitCode = EXIT_CONFIG;
  readonly diagnostics: readonly Diagnostic[];

  constructor(diagnostics: readonly Diagnostic[], summary?: string) {
    const errors = diagnostics.filter((d) => d.severity === "error");
    super(
      summary ??
        (errors.length === 1 && errors[0]
          ? formatDiagnostic(errors[0])
          : `${errors.length} configuration errors`),
    );
    this.diagnostics = diagnostics;
  }
}

/** A configuration problem with no file position (a missing image, a bad flag). */
export class UsageError extends Error {
  override name = "UsageError";
  readonly exitCode = EXIT_CONFIG;
}

/** Something on the host failed: transient, exit code 1. */
export class RuntimeError extends Error {
  override name = "RuntimeError";
  /** 1 by default; 2 for host problems a restart cannot fix (a missing tool, a name clash). */
  readonly exitCode: number;
  /** What the operator can do about it, shown after the message. */
  readonly hint: string | undefined;

  constructor(message: string, options?: { hint?: string; cause?: unknown; permanent?: boolean }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.hint = options?.hint;
    this.exitCode = options?.permanent ? EXIT_CONFIG : EXIT_RUNTIME;
  }
}

/** Exit code for any thrown value: its own, or 1 for anything unexpected. */
export function exitCodeOf(error: unknown): number {
  if (error instanceof ConfigError || error instanceof UsageError) return EXIT_CONFIG;
  if (error instanceof RuntimeError) return error.exitCode;
  return EXIT_RUNTIME;
}

/**
 * For catch blocks that treat "cannot read" as "nothing there": a missing
 * grant (NotCapable) or a permission problem must not pass as "no data".
 * @param what the file or directory, for the message
 */
export function rethrowAccessErrors(error: unknown, what: string): void {
  if (error instanceof Deno.errors.NotCapable) throw error;
  if (error instanceof Deno.errors.PermissionDenied) {
    throw new RuntimeError(`Cannot read ${what}: permission denied`, {
      hint: "run as root (sudo) or as the aos-unit user",
    });
  }
}
