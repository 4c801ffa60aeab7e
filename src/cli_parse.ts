/**
 * The command line's grammar, from the command specs (commands/_spec.ts): which
 * subcommand, its operands and options, or the help, version or error to print.
 * Pure: argv in, a value out (cli.ts prints and dispatches).
 *
 * Written here rather than taken from commander: commander is CommonJS, and any
 * CommonJS package makes a bundle load Deno's Node compatibility layer, about
 * 8 MiB of the resident manager and 25 ms of every cold start (aos-unit(8),
 * FOOTPRINT). Its conventions are kept: `-c DIR`, `--config-dir DIR`,
 * `--config-dir=DIR`, `--no-X` (X false), `--` ends the options, `help [command]`.
 */

import type { ArgSpec, CommandSpec, OptionSpec } from "./commands/_spec.ts";

/** What the program gives, before any command runs. */
export interface ProgramSpec {
  name: string;
  description: string;
  version: string;
  /** Help text after the command list (examples, exit codes). */
  epilogue: string;
  /** The heading of the internal commands' group. */
  internalHeading: string;
  commands: readonly CommandSpec[];
}

export type Parsed =
  | { kind: "command"; spec: CommandSpec; args: unknown[]; opts: Record<string, unknown> }
  /** Asked for: printed to stdout, exit 0. */
  | { kind: "help" | "version"; text: string }
  /** No subcommand: the program's help to stderr, exit 2. */
  | { kind: "bare"; text: string }
  /** Printed to stderr with a pointer to --help, exit 2. */
  | { kind: "error"; text: string };

/** One option as the parser sees it. */
interface Option {
  short?: string;
  long: string;
  /** The opts key: camelCase of the long name without "no-". */
  key: string;
  /** Takes a value ("--timeout <sec>"). */
  value: boolean;
  negate: boolean;
  flags: string;
  description: string;
  default?: string;
  repeatable: boolean;
}

const camel = (name: string) => name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

function optionOf(o: OptionSpec): Option {
  const m = /^(?:-([A-Za-z]), )?--([a-z][a-z0-9-]*)(?: <[^>]+>)?$/.exec(o.flags);
  if (!m) throw new Error(`unparsable option flags: ${o.flags}`);
  const long = m[2]!;
  const negate = long.startsWith("no-");
  return {
    ...(m[1] ? { short: m[1] } : {}),
    long,
    key: camel(negate ? long.slice(3) : long),
    value: o.flags.includes("<"),
    negate,
    flags: o.flags,
    description: o.description,
    ...(o.default !== undefined ? { default: o.default } : {}),
    repeatable: o.repeatable ?? false,
  };
}

/** Every option a command takes, in help order: its own, then the ones every command has. */
function optionsOf(spec: CommandSpec): Option[] {
  const all: OptionSpec[] = [];
  if (spec.configDir) {
    all.push({
      flags: "-c, --config-dir <dir>",
      description: "read the configuration from DIR instead of /etc/aos-unit",
    });
  }
  // Every command works for one unit; dnsmasq's argv (lease-hook) has no room for it.
  if (!spec.passThrough) {
    all.push({
      flags: "-u, --unit <name>",
      description:
        "work for unit NAME (aos-unit@NAME.service, /etc/aos-unit/units/NAME) instead of the default unit",
    });
  }
  all.push(...(spec.options ?? []));
  return all.map(optionOf);
}

const HELP: Option = {
  short: "h",
  long: "help",
  key: "help",
  value: false,
  negate: false,
  flags: "-h, --help",
  description: "show help",
  repeatable: false,
};

/** Two columns, the second wrapped at 80 characters under itself. */
function table(rows: [string, string][]): string[] {
  const width = Math.max(...rows.map(([left]) => left.length)) + 2;
  return rows.map(([left, right]) => {
    const lines: string[] = [];
    let line = "";
    for (const word of right.split(" ")) {
      if (line && width + 2 + line.length + 1 + word.length > 80) {
        lines.push(line);
        line = word;
      } else line = line ? `${line} ${word}` : word;
    }
    lines.push(line);
    return `  ${left.padEnd(width)}${lines.join(`\n  ${" ".repeat(width)}`)}`;
  });
}

function usageOf(spec: CommandSpec): string {
  return [spec.name, "[options]", ...(spec.args ?? []).map((a) => a.name)].join(" ");
}

export function commandHelp(program: ProgramSpec, spec: CommandSpec): string {
  const options = [...optionsOf(spec), HELP].map((o): [string, string] => [
    o.flags,
    o.default !== undefined ? `${o.description} (default: "${o.default}")` : o.description,
  ]);
  const args = (spec.args ?? []).map((a): [string, string] => [bare(a), a.description]);
  return [
    `Usage: ${program.name} ${usageOf(spec)}`,
    "",
    spec.summary,
    ...(args.length > 0 ? ["", "Arguments:", ...table(args)] : []),
    "",
    "Options:",
    ...table(options),
  ].join("\n") + "\n" + spec.examples;
}

export function programHelp(program: ProgramSpec): string {
  const row = (c: CommandSpec): [string, string] => [usageOf(c), c.summary];
  const user = program.commands.filter((c) => c.group === "user").map(row);
  const internal = program.commands.filter((c) => c.group === "internal").map(row);
  // One table (one entry per row), so that both groups line up.
  const rows = table([...user, ["help [command]", "show help for a command"], ...internal]);
  return [
    `Usage: ${program.name} [options] [command]`,
    "",
    program.description,
    "",
    "Options:",
    ...table([["-V, --version", "print the version"], [HELP.flags, HELP.description]]),
    "",
    "Commands:",
    ...rows.slice(0, user.length + 1),
    "",
    program.internalHeading,
    ...rows.slice(user.length + 1),
  ].join("\n") + "\n" + program.epilogue;
}

/** "<node>" -> "node", "[event...]" -> "event". */
function bare(arg: ArgSpec): string {
  return arg.name.slice(1, -1).replace("...", "");
}

/** The closest command name within two edits, for "Did you mean ...?". */
function suggestion(word: string, names: readonly string[]): string | undefined {
  const distance = (a: string, b: string): number => {
    let row = Array.from({ length: b.length + 1 }, (_, i) => i);
    for (let i = 1; i <= a.length; i++) {
      const next = [i];
      for (let j = 1; j <= b.length; j++) {
        next[j] = Math.min(
          row[j]! + 1,
          next[j - 1]! + 1,
          row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
        );
      }
      row = next;
    }
    return row[b.length]!;
  };
  const best = names.map((n) => [n, distance(word, n)] as const).sort((x, y) => x[1] - y[1])[0];
  return best && best[1] <= 2 ? best[0] : undefined;
}

/** The operands checked against the spec's arguments, or the error. */
function operands(spec: CommandSpec, given: string[]): unknown[] | string {
  const specs = spec.args ?? [];
  const out: unknown[] = [];
  for (const [i, arg] of specs.entries()) {
    const variadic = arg.name.includes("...");
    if (variadic) out.push(given.slice(i));
    else if (i < given.length) out.push(given[i]);
    else if (arg.name.startsWith("<")) return `error: missing required argument '${bare(arg)}'`;
    else out.push(undefined);
  }
  const variadic = specs.some((a) => a.name.includes("..."));
  if (!variadic && given.length > specs.length) {
    return `error: too many arguments for '${spec.name}'. Expected ${specs.length} argument${
      specs.length === 1 ? "" : "s"
    } but got ${given.length}.`;
  }
  return out;
}

/** Parses one subcommand's argv (after its name). */
function parseCommand(program: ProgramSpec, spec: CommandSpec, argv: string[]): Parsed {
  const options = optionsOf(spec);
  const opts: Record<string, unknown> = {};
  for (const o of options) {
    if (o.repeatable) opts[o.key] = [];
    else if (o.default !== undefined) opts[o.key] = o.default;
    else if (o.negate) opts[o.key] = true;
  }
  const given: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]!;
    if (word === "--") {
      given.push(...argv.slice(i + 1));
      break;
    }
    if (!word.startsWith("-") || word === "-") {
      given.push(word);
      continue;
    }
    const [name, inline] = word.startsWith("--") && word.includes("=")
      ? [word.slice(0, word.indexOf("=")), word.slice(word.indexOf("=") + 1)]
      : [word, undefined];
    if (name === "-h" || name === "--help") {
      return { kind: "help", text: commandHelp(program, spec) };
    }
    const option = options.find((o) => name === `--${o.long}` || name === `-${o.short}`);
    if (!option) {
      if (spec.passThrough) {
        given.push(word);
        continue;
      }
      return { kind: "error", text: `error: unknown option '${word}'` };
    }
    if (!option.value) {
      if (inline !== undefined) {
        return { kind: "error", text: `error: option '${option.flags}' takes no value` };
      }
      opts[option.key] = !option.negate;
      continue;
    }
    const value = inline ?? argv[++i];
    if (value === undefined) {
      return { kind: "error", text: `error: option '${option.flags}' argument missing` };
    }
    opts[option.key] = option.repeatable ? [...(opts[option.key] as string[]), value] : value;
  }
  const args = operands(spec, given);
  return typeof args === "string"
    ? { kind: "error", text: args }
    : { kind: "command", spec, args, opts };
}

/** Parses a whole command line (without the program's name). */
export function parseArgv(program: ProgramSpec, argv: readonly string[]): Parsed {
  const [first, ...rest] = argv;
  if (first === undefined) return { kind: "bare", text: programHelp(program) };
  if (first === "-V" || first === "--version") return { kind: "version", text: program.version };
  if (first === "-h" || first === "--help") return { kind: "help", text: programHelp(program) };
  const find = (name: string | undefined) => program.commands.find((c) => c.name === name);
  if (first === "help") {
    const spec = find(rest[0]);
    if (rest[0] !== undefined && !spec) return unknownCommand(program, rest[0]);
    return { kind: "help", text: spec ? commandHelp(program, spec) : programHelp(program) };
  }
  if (first.startsWith("-")) return { kind: "error", text: `error: unknown option '${first}'` };
  const spec = find(first);
  return spec ? parseCommand(program, spec, rest) : unknownCommand(program, first);
}

function unknownCommand(program: ProgramSpec, word: string): Parsed {
  const near = suggestion(word, program.commands.map((c) => c.name));
  return {
    kind: "error",
    text: `error: unknown command '${word}'${near ? `\n(Did you mean ${near}?)` : ""}`,
  };
}
