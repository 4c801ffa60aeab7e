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

/**
 * Leaves the error for the manager (a whole-file replacement; never follows a link), as the
 * service user's file: the manager removes it when it reads it.
 */
export function leaveStartupError(
  runtimeDir: string,
  text: string,
  owner?: { uid: number; gid: number },
): void {
  Deno.mkdirSync(runtimeDir, { recursive: true });
  writeFileAtomic(startupErrorFile(runtimeDir), text + "\n", 0o644, owner);
}

/** Removes an earlier start's error (the broker, as root, at every start). */
export function clearStartupError(runtimeDir: string): void {
  try {
    Deno.removeSync(startupErrorFile(runtimeDir));
  } catch { /* none */ }
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
  try {
    Deno.removeSync(file);
  } catch { /* root's (its owner was unknown): the next start replaces it */ }
  return text;
}
