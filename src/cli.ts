/**
 * The command line: cli_parse.ts parses, dispatch narrows permissions, then one
 * subcommand runs. `main()` returns the exit code instead of exiting, so it
 * can be tested.
 */

import { parseArgv, type Parsed, type ProgramSpec } from "./cli_parse.ts";
import type { Subcommand } from "./base/subcommands.ts";
import type { CommandSpec, Invocation } from "./commands/_spec.ts";
import { EXAMPLES_DIR as SAMPLE_CONFIG_DIR } from "./base/host_files.ts";
import {
  ConfigError,
  EXIT_CONFIG,
  EXIT_OK,
  EXIT_RUNTIME,
  exitCodeOf,
  formatDiagnostic,
  RuntimeError,
} from "./base/errors.ts";
import { exists } from "./host/facts.ts";
import { resolvePaths, UNIT_NAME_ENV } from "./host/paths.ts";
import { failedInstanceOf, isUnitName, MAX_UNIT_NAME } from "./base/unit_identity.ts";
import { logToFileOnly, setupLogging } from "./log.ts";
import {
  denoFlags,
  DISPATCH_ENV,
  hasBlanketGrant,
  narrowTo,
  NOTIFY_SOCKET_DEFAULT,
  type PermissionContext,
  type PermissionSet,
  permissionsFor,
  unionPermissions,
} from "./permissions.ts";
import { FHS_PATHS } from "./host/paths.ts";
import { VERSION } from "./base/version.ts";

export interface Io {
  out(text: string): void;
  err(text: string): void;
}

const encoder = new TextEncoder();
export const STDIO: Io = {
  out: (t) => void Deno.stdout.writeSync(encoder.encode(t.endsWith("\n") ? t : t + "\n")),
  err: (t) => void Deno.stderr.writeSync(encoder.encode(t.endsWith("\n") ? t : t + "\n")),
};

/** The subcommands one entry point offers (main.ts: all of them, COMMANDS). */
export type CommandTable = Readonly<Partial<Record<Subcommand, CommandSpec>>>;

/** A parsed invocation: which subcommand, and what it was given. */
interface Selected {
  spec: CommandSpec;
  call: Invocation;
  configDir?: string | undefined;
  /** --unit NAME: the unit this invocation works for (undefined: the default unit). */
  unit?: string | undefined;
  /** The node argument of `console` and `powerdown`: names the one socket they may open. */
  node?: string | undefined;
}

const EXAMPLES = `
Examples:
  aos-unit validate                      check /etc/aos-unit, list every problem
  aos-unit plan                          show the network, each node's QEMU command line and units
  aos-unit plan --json | jq .network     the same as JSON
  aos-unit plan --config-dir ${SAMPLE_CONFIG_DIR}
                                         plan the shipped sample configuration

The unit itself is started by systemd: systemctl start aos-unit
Exit codes: 0 success, 1 runtime failure, 2 configuration error.
See aos-unit(8) and aos-unit.conf(5).`;

function programOf(commands: CommandTable): ProgramSpec {
  return {
    name: "aos-unit",
    description: "Run an AosEdge unit (main + secondary nodes as QEMU VMs) under systemd",
    version: VERSION,
    epilogue: EXAMPLES,
    internalHeading: "Internal commands (run by the systemd units; see aos-unit(8)):",
    commands: Object.values(commands).filter((s) => s !== undefined),
  };
}

/** The invocation to run, or the exit code once help, the version or an error is printed. */
function selectedOf(parsed: Parsed, io: Io): Selected | number {
  switch (parsed.kind) {
    case "help":
    case "version":
      io.out(parsed.text);
      return EXIT_OK;
    case "bare":
      io.err(parsed.text);
      return EXIT_CONFIG;
    case "error":
      io.err(parsed.text);
      io.err("Run 'aos-unit --help' for the commands and their options.");
      return EXIT_CONFIG;
  }
  const { spec, args, opts } = parsed;
  return {
    spec,
    call: { args, opts },
    configDir: typeof opts.configDir === "string" ? opts.configDir : undefined,
    unit: typeof opts.unit === "string" ? opts.unit : undefined,
    node: spec.nodeOperand && typeof args[0] === "string" ? args[0] : undefined,
  };
}

function readEnv(): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {};
  for (const name of DISPATCH_ENV) {
    try {
      env[name] = Deno.env.get(name);
    } catch {
      env[name] = undefined;
    }
  }
  return env;
}

/** Permissions the launch could have granted: the union for FHS paths and for these paths. */
function grantedUnion(ctx: PermissionContext): PermissionSet {
  const fhs = unionPermissions({ paths: FHS_PATHS, notifySocket: NOTIFY_SOCKET_DEFAULT });
  const here = unionPermissions(ctx);
  const out = { ...fhs };
  for (const key of Object.keys(out) as (keyof PermissionSet)[]) {
    out[key] = [...new Set([...fhs[key], ...here[key]])];
  }
  return out;
}

/** Entries of `needed` this process does not hold (e.g. --config-dir outside the build's paths). */
function missingGrants(needed: PermissionSet): string[] {
  const missing: string[] = [];
  for (const path of needed.read) {
    if (Deno.permissions.querySync({ name: "read", path }).state !== "granted") {
      missing.push(`read ${path}`);
    }
  }
  for (const path of needed.write) {
    if (Deno.permissions.querySync({ name: "write", path }).state !== "granted") {
      missing.push(`write ${path}`);
    }
  }
  for (const host of needed.net) {
    if (host === "*") continue;
    if (Deno.permissions.querySync({ name: "net", host }).state !== "granted") {
      missing.push(`connect to ${host}`);
    }
  }
  return missing;
}

/**
 * Started with a blanket grant (`deno run -A main.ts`, development and tests):
 * run again with exactly the union, so narrowing works as in the package.
 */
async function reexecNarrowed(ctx: PermissionContext, args: string[]): Promise<number> {
  const main = new URL(Deno.mainModule);
  const config = new URL("../deno.json", import.meta.url);
  const flags = [
    "run",
    "--quiet",
    "--unstable-net",
    // From the source tree the import map is in deno.json; a bundle needs none.
    ...(main.protocol === "file:" && config.protocol === "file:" && exists(config.pathname)
      ? ["--config", config.pathname]
      : ["--no-config"]),
    ...denoFlags(unionPermissions(ctx)),
    Deno.mainModule,
    ...args,
  ];
  const child = new Deno.Command(Deno.execPath(), {
    args: flags,
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  const forward = (signal: Deno.Signal) => () => {
    try {
      child.kill(signal);
    } catch { /* gone */ }
  };
  const handlers = (["SIGTERM", "SIGINT", "SIGHUP"] as const).map((s) => [s, forward(s)] as const);
  for (const [s, h] of handlers) Deno.addSignalListener(s, h);
  const status = await child.status;
  for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
  return status.code;
}

/** Turns any error into one message and an exit code. */
export function report(error: unknown, command: string, io: Io): number {
  if (error instanceof ConfigError) {
    if (error.diagnostics.length === 0) io.err(`aos-unit ${command}: ${error.message}`);
    for (const d of error.diagnostics) io.err(formatDiagnostic(d));
    return EXIT_CONFIG;
  }
  if (error instanceof Deno.errors.NotCapable) {
    io.err(
      `aos-unit ${command}: internal error: this subcommand stepped outside its permissions: ${error.message}`,
    );
    return EXIT_RUNTIME;
  }
  if (error instanceof RuntimeError) {
    io.err(`aos-unit ${command}: ${error.message}${error.hint ? `\n  hint: ${error.hint}` : ""}`);
    return error.exitCode;
  }
  const message = error instanceof Error ? error.message : String(error);
  io.err(`aos-unit ${command}: ${message}`);
  return exitCodeOf(error);
}

/**
 * Parses argv, narrows permissions to the chosen subcommand and runs it.
 * @returns the process exit code
 */
export async function main(
  args: string[],
  commands: CommandTable,
  io: Io = STDIO,
): Promise<number> {
  const selected = selectedOf(parseArgv(programOf(commands), args), io);
  if (typeof selected === "number") return selected;
  const chosen: Selected = selected;
  const command = chosen.spec.name;
  const env = readEnv();
  // --unit, else the unit's own units say which (AOS_UNIT_NAME), else an operand that names
  // it (UNIT_NODE), else the default unit.
  const operand = chosen.call.args[0];
  const unit = chosen.unit ?? (env[UNIT_NAME_ENV] || undefined) ??
    (chosen.spec.unitInOperand && typeof operand === "string"
      ? failedInstanceOf(operand).unit
      : undefined);
  if (unit !== undefined && !isUnitName(unit)) {
    io.err(
      `aos-unit ${command}: ${
        JSON.stringify(unit)
      } is not a unit name: a DNS label (a-z, 0-9, inner "-") of at most ${MAX_UNIT_NAME} characters, other than "default" (the default unit is the one without --unit) and "dnsmasq"`,
    );
    return EXIT_CONFIG;
  }
  const paths = resolvePaths((name) => env[name], chosen.configDir, unit);
  const ctx: PermissionContext = {
    paths,
    notifySocket: env.NOTIFY_SOCKET ?? NOTIFY_SOCKET_DEFAULT,
    executable: env.AOS_UNIT_EXECUTABLE,
    node: chosen.node,
  };

  if (hasBlanketGrant()) return await reexecNarrowed(ctx, args);
  const needed = permissionsFor(command, ctx);
  const missing = missingGrants(needed);
  if (missing.length > 0) {
    io.err(
      `aos-unit ${command}: this build of aos-unit may not ${missing.join(", ")}; ` +
        `use the configuration directory ${FHS_PATHS.configDir} or ${SAMPLE_CONFIG_DIR}`,
    );
    return EXIT_CONFIG;
  }
  narrowTo(grantedUnion(ctx), needed);

  const closeLog = await setupLogging({
    command,
    journal: env.JOURNAL_STREAM !== undefined,
    file: chosen.spec.logFile ? `${paths.logsDir}/aos-unit.log` : undefined,
    debug: env.AOS_UNIT_DEBUG === "1",
  });
  try {
    return await chosen.spec.run({ paths, env, out: io.out, err: io.err }, chosen.call);
  } catch (error) {
    // Under systemd the final error keeps its priority in the journal (journalctl -p err).
    const errors: Io = env.JOURNAL_STREAM === undefined ? io : {
      out: io.out,
      err: (t) => io.err(t.split("\n").map((line) => `<3>${line}`).join("\n")),
    };
    const lines: string[] = [];
    const code = report(error, command, {
      out: errors.out,
      err: (t) => {
        lines.push(t);
        errors.err(t);
      },
    });
    logToFileOnly(`${lines.join("\n")} (exit ${code})`);
    return code;
  } finally {
    await closeLog();
  }
}
