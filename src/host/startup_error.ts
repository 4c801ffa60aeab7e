/**
 * The broker's permanent error, handed to the manager. RestartPreventExitStatus=
 * applies to the main process only, so a configuration error in ExecStartPre=
 * would be retried in a loop: with --defer-config-errors the broker leaves the
 * error here and exits 0, and `run` (ExecStart=) reports it and exits 2.
 */

import { writeFileAtomic } from "./atomic.ts";

export function startupErrorFile(runtimeDir: string): string {
  return `${runtimeDir}/startup-error`;
}

/** Leaves the error for the manager (a whole-file replacement; never follows a link). */
export function leaveStartupError(runtimeDir: string, text: string): void {
  Deno.mkdirSync(runtimeDir, { recursive: true });
  writeFileAtomic(startupErrorFile(runtimeDir), text + "\n");
}

/** The error the broker left, removed as it is read; undefined when there is none. */
export function takeStartupError(runtimeDir: string): string | undefined {
  const file = startupErrorFile(runtimeDir);
  let text: string;
  try {
    text = Deno.readTextFileSync(file).trim();
  } catch {
    return undefined;
  }
  Deno.removeSync(file);
  return text;
}
