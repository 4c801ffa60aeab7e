/**
 * What a subcommand declares about itself: the command table (cli.ts) turns
 * these into the command line (cli_parse.ts), help and dispatch. A new subcommand is one
 * file exporting its spec, one line in the table and one permission case.
 */

import type { Subcommand } from "../base/subcommands.ts";
import type { CommandContext } from "./_context.ts";

export interface OptionSpec {
  /** Flags, e.g. "--json", "-c, --config-dir <dir>", "--timeout <sec>" or "--no-units". */
  flags: string;
  description: string;
  default?: string;
  /** May be given several times; the values collect in a list. */
  repeatable?: boolean;
}

export interface ArgSpec {
  /** "<node>" (required), "[name]" (optional), "[event...]" (optional, the rest). */
  name: string;
  description: string;
}

/** The parsed command line of one invocation. */
export interface Invocation {
  args: readonly unknown[];
  opts: Readonly<Record<string, unknown>>;
}

export interface CommandSpec {
  name: Subcommand;
  summary: string;
  /** "user": listed first in help; "internal": run by the systemd units. */
  group: "user" | "internal";
  args?: readonly ArgSpec[];
  options?: readonly OptionSpec[];
  /** Takes -c/--config-dir DIR (validate, plan, ...). */
  configDir?: boolean;
  /** Help text after the options: examples, exit status. */
  examples: string;
  /** The first argument is a node whose one socket the command may open (console, powerdown). */
  nodeOperand?: boolean;
  /**
   * The first argument may name the unit, as UNIT_NODE (`failed`, from the instance of
   * aos-unit-vm-failed@, which has no environment of the unit).
   */
  unitInOperand?: boolean;
  /** Long-running: also logs to aos-unit.log in the logs directory. */
  logFile?: boolean;
  /** Passes unknown options through as arguments (lease-hook gets dnsmasq's argv). */
  passThrough?: boolean;
  run(ctx: CommandContext, call: Invocation): Promise<number> | number;
}

/** The string value of an option (options with a value give strings). */
export function stringOpt(call: Invocation, name: string): string | undefined {
  const value = call.opts[name];
  return typeof value === "string" ? value : undefined;
}

export function flag(call: Invocation, name: string): boolean {
  return call.opts[name] === true;
}

/** The values of a repeatable option. */
export function listOpt(call: Invocation, name: string): string[] {
  const value = call.opts[name];
  return Array.isArray(value) ? value.map(String) : [];
}
