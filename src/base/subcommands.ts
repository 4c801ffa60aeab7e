/**
 * The subcommands, in the order help lists them. The command table (cli.ts),
 * the permission table (permissions.ts), the completions and the manual page
 * tests are all keyed by these names.
 */

export const SUBCOMMANDS = [
  "validate",
  "plan",
  "list",
  "status",
  "doctor",
  "console",
  "reset",
  "export",
  "snapshot",
  "startup",
  "prepare",
  "run",
  "monitor",
  "powerdown",
  "lease-hook",
  "failed",
  "cleanup",
] as const;

export type Subcommand = typeof SUBCOMMANDS[number];

/** What systemd passes to ExecStopPost= that `failed` reads. */
export const STOP_POST_ENV = ["SERVICE_RESULT", "EXIT_CODE", "EXIT_STATUS"] as const;
