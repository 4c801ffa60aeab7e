/**
 * The command line: commander parses, dispatch narrows permissions, then one
 * subcommand runs. `main()` returns the exit code instead of exiting, so it
 * can be tested.
 */

import { Command, CommanderError, Option } from "commander";
import type { CommandContext } from "./commands/context.ts";
import { cleanupCommand } from "./commands/cleanup.ts";
import { consoleCommand } from "./commands/console.ts";
import { doctorCommand } from "./commands/doctor.ts";
import { failedCommand } from "./commands/failed.ts";
import { resetCommand } from "./commands/reset.ts";
import { runCommand } from "./commands/run.ts";
import { statusCommand } from "./commands/status.ts";
import { leaseHookCommand } from "./commands/lease_hook.ts";
import { monitorCommand } from "./commands/monitor.ts";
import { planCommand, SAMPLE_CONFIG_DIR } from "./commands/plan.ts";
import { startupDeferringErrors } from "./commands/startup.ts";
import { prepareCommand } from "./commands/prepare.ts";
import { powerdownCommand } from "./commands/powerdown.ts";
import { validateCommand } from "./commands/validate.ts";
import {
  ConfigError,
  EXIT_CONFIG,
  EXIT_OK,
  EXIT_RUNTIME,
  exitCodeOf,
  formatDiagnostic,
  RuntimeError,
} from "./errors.ts";
import { exists } from "./host/facts.ts";
import { resolvePaths } from "./host/paths.ts";
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
  type Subcommand,
  unionPermissions,
} from "./permissions.ts";
import { FHS_PATHS } from "./host/paths.ts";
import { VERSION } from "./version.ts";

export interface Io {
  out(text: string): void;
  err(text: string): void;
}

const encoder = new TextEncoder();
export const STDIO: Io = {
  out: (t) => void Deno.stdout.writeSync(encoder.encode(t.endsWith("\n") ? t : t + "\n")),
  err: (t) => void Deno.stderr.writeSync(encoder.encode(t.endsWith("\n") ? t : t + "\n")),
};

/** A parsed invocation: which subcommand, and the function that runs it. */
interface Selected {
  command: Subcommand;
  configDir?: string | undefined;
  /** The node argument of `console` and `powerdown`: names the one socket they may open. */
  node?: string;
  /** Long-running subcommands also log to a file in the logs directory. */
  logFile?: boolean;
  run(ctx: CommandContext): Promise<number> | number;
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

function buildProgram(select: (s: Selected) => void, io: Io): Command {
  const program = new Command("aos-unit")
    .description("Run an AosEdge unit (main + secondary nodes as QEMU VMs) under systemd")
    .version(VERSION, "-V, --version", "print the version")
    .helpOption("-h, --help", "show help")
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({ writeOut: (t) => io.out(t.trimEnd()), writeErr: (t) => io.err(t.trimEnd()) })
    .addHelpText("after", EXAMPLES);
  program.configureHelp({ sortSubcommands: false });

  const configDir = new Option(
    "-c, --config-dir <dir>",
    "read the configuration from DIR instead of /etc/aos-unit",
  );

  program.command("validate")
    .description("check unit_config.yaml and runtime.conf; list every problem as FILE:LINE:COLUMN")
    .addOption(configDir)
    .addHelpText(
      "after",
      `
Examples:
  aos-unit validate
  aos-unit validate --config-dir ./my-unit

Exit status: 0 when valid (warnings may be printed), 2 when any error was found.`,
    )
    .action((opts: { configDir?: string }) =>
      select({ command: "validate", configDir: opts.configDir, run: (ctx) => validateCommand(ctx) })
    );

  program.command("plan")
    .description(
      "show what aos-unit would create: network, MACs, taps, QEMU argv, units, ruleset, dnsmasq config",
    )
    .addOption(configDir)
    .option("--json", "print the plan as JSON")
    .addHelpText(
      "after",
      `
Examples:
  aos-unit plan
  aos-unit plan --json | jq '.nodes[] | {name, mac, ip}'
  aos-unit plan --config-dir ${SAMPLE_CONFIG_DIR}

Needs no root and changes nothing.`,
    )
    .action((opts: { configDir?: string; json?: boolean }) =>
      select({
        command: "plan",
        configDir: opts.configDir,
        run: (ctx) => planCommand(ctx, { json: opts.json === true }),
      })
    );
  program.command("status")
    .description(
      "show every node: unit state, address, MAC, uptime, restarts, last failure; exit 1 if unhealthy",
    )
    .option("--json", "print the status as JSON")
    .addHelpText(
      "after",
      `
Examples:
  aos-unit status
  aos-unit status --json | jq '.nodes[] | {name, address}'

Exit status: 0 when the unit and every node are running with an address, 1 otherwise.`,
    )
    .action((opts: { json?: boolean }) =>
      select({ command: "status", run: (ctx) => statusCommand(ctx, opts.json === true) })
    );

  program.command("doctor")
    .description(
      "check every host prerequisite without changing anything: ok/warn/fail, with the fix for each problem",
    )
    .option("--json", "print the checks as JSON")
    .addHelpText(
      "after",
      `
Examples:
  sudo aos-unit doctor
  aos-unit doctor --json | jq '.checks[] | select(.status != "ok")'

Exit status: 0 when the unit can start (warnings allowed), 1 when a check failed.`,
    )
    .action((opts: { json?: boolean }) =>
      select({ command: "doctor", run: (ctx) => doctorCommand(ctx, opts.json === true) })
    );

  program.command("console")
    .description("attach to a node's live serial console (Ctrl-] detaches; the VM keeps running)")
    .argument("<node>", "node name from unit_config.yaml")
    .addHelpText(
      "after",
      `
Examples:
  sudo aos-unit console main
  (press Ctrl-] to detach; the serial log in /var/log/aos-unit/main-serial.log keeps growing)`,
    )
    .action((node: string) =>
      select({ command: "console", node, run: (ctx) => consoleCommand(ctx, node) })
    );

  program.command("reset")
    .description("discard a stopped node's overlay so it boots from its base image again")
    .argument("<node>", "node name from unit_config.yaml")
    .option("--efivars", "also discard the node's UEFI variables (boot order, A/B state)")
    .addHelpText(
      "after",
      `
Examples:
  sudo systemctl stop aos-unit && sudo aos-unit reset secondary
  sudo aos-unit reset main --efivars`,
    )
    .action((node: string, opts: { efivars?: boolean }) =>
      select({ command: "reset", run: (ctx) => resetCommand(ctx, node, opts.efivars === true) })
    );

  program.commandsGroup("Internal commands (run by the systemd units; see aos-unit(8)):");

  program.command("startup")
    .description(
      "ExecStartPre=+ (root): the broker; network, then the node and sidecar units from the root-owned config",
    )
    .addHelpText(
      "after",
      "\nExample (as systemd runs it):\n  ExecStartPre=+/usr/bin/aos-unit startup --defer-config-errors",
    )
    .option(
      "--defer-config-errors",
      "on a configuration error exit 0 and leave it for `run` to report with exit 2 (as the unit does)",
    )
    .option("--no-units", "set up the network only (bridge, taps, table, resolved), start no unit")
    .action((opts: { deferConfigErrors?: boolean; units?: boolean }) =>
      select({
        command: "startup",
        run: (ctx) =>
          startupDeferringErrors(ctx, opts.deferConfigErrors === true, {
            units: opts.units !== false,
          }),
      })
    );

  program.command("prepare")
    .description(
      "make the nodes' files (overlays, UEFI variables, serial logs) as the service user; run by startup",
    )
    .addHelpText("after", "\nExample:\n  sudo -u aos-unit aos-unit prepare")
    .action(() => select({ command: "prepare", run: (ctx) => prepareCommand(ctx) }));

  program.command("run")
    .description(
      "ExecStart, unprivileged: READY when the nodes are usable, STATUS, the route monitor; on stop, ACPI powerdown",
    )
    .addHelpText("after", "\nExample (as systemd runs it):\n  ExecStart=/usr/bin/aos-unit run")
    .action(() => select({ command: "run", logFile: true, run: (ctx) => runCommand(ctx) }));

  program.command("monitor")
    .description(
      "the route monitor (it runs inside `run`) in the foreground: follow default routes, keep NAT and the tables",
    )
    .addHelpText(
      "after",
      "\nExample:\n  sudo aos-unit monitor   (its log in the unit: journalctl -u aos-unit)",
    )
    .action(() => select({ command: "monitor", logFile: true, run: (ctx) => monitorCommand(ctx) }));

  program.command("powerdown")
    .description("a node unit's ExecStop: ACPI powerdown over QMP, then wait for QEMU to exit")
    .argument("<node>", "node name")
    .option("--timeout <sec>", "how long the guest gets before systemd signals QEMU", "60")
    .addHelpText("after", "\nExample:\n  ExecStop=/usr/bin/aos-unit powerdown main --timeout 60")
    .action((node: string, opts: { timeout: string }) =>
      select({
        command: "powerdown",
        node,
        run: (ctx) => powerdownCommand(ctx, node, Math.max(1, Number(opts.timeout) || 60)),
      })
    );

  program.command("lease-hook")
    .description("dnsmasq dhcp-script: record a lease event (add|old|del MAC IP [HOSTNAME])")
    .argument("[event...]", "what dnsmasq passes: add|old|del MAC IP [HOSTNAME]")
    .allowUnknownOption(true)
    .addHelpText(
      "after",
      "\nExample:\n  aos-unit lease-hook add 52:54:00:fa:d5:8d 10.200.1.10 main",
    )
    .action((event: string[]) =>
      select({ command: "lease-hook", run: (ctx) => leaseHookCommand(ctx, event) })
    );

  program.command("failed")
    .description("forensic handler: append a record of a node failure to vm-failures.log")
    .argument("<node>", "node name")
    .option("--final", "systemd gave up restarting the node (run by aos-unit-vm-failed@.service)")
    .addHelpText(
      "after",
      "\nExamples:\n  ExecStopPost=-/usr/bin/aos-unit failed main\n  jq . /var/log/aos-unit/vm-failures.log",
    )
    .action((node: string, opts: { final?: boolean }) =>
      select({
        command: "failed",
        run: (ctx) => failedCommand(ctx, node, { final: opts.final === true }),
      })
    );

  program.command("cleanup")
    .description(
      "take the unit down: power the nodes down, remove dnsmasq, bridge, taps, nft tables, runtime files",
    )
    .option(
      "--after-failure",
      "ExecStopPost hook: only when systemd is stopping the unit (a crash keeps the guests)",
    )
    .addHelpText(
      "after",
      "\nSafe to run twice; touches nothing aos-unit did not create.\nExample:\n  sudo aos-unit cleanup",
    )
    .action((opts: { afterFailure?: boolean }) =>
      select({
        command: "cleanup",
        run: (ctx) => cleanupCommand(ctx, opts.afterFailure === true),
      })
    );
  return program;
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
export async function main(args: string[], io: Io = STDIO): Promise<number> {
  let selected: Selected | undefined;
  const program = buildProgram((s) => (selected = s), io);
  try {
    await program.parseAsync(args, { from: "user" });
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === "commander.helpDisplayed" || error.code === "commander.version") {
        return EXIT_OK;
      }
      if (error.code === "commander.help") return EXIT_CONFIG;
      io.err("Run 'aos-unit --help' for the commands and their options.");
      return EXIT_CONFIG;
    }
    throw error;
  }
  if (!selected) {
    io.err(program.helpInformation().trimEnd());
    return EXIT_CONFIG;
  }
  const chosen: Selected = selected;
  const env = readEnv();
  const paths = resolvePaths((name) => env[name], chosen.configDir);
  const ctx: PermissionContext = {
    paths,
    notifySocket: env.NOTIFY_SOCKET ?? NOTIFY_SOCKET_DEFAULT,
    executable: env.AOS_UNIT_EXECUTABLE,
    node: chosen.node,
  };

  if (hasBlanketGrant()) return await reexecNarrowed(ctx, args);
  const needed = permissionsFor(chosen.command, ctx);
  const missing = missingGrants(needed);
  if (missing.length > 0) {
    io.err(
      `aos-unit ${chosen.command}: this build of aos-unit may not ${missing.join(", ")}; ` +
        `use the configuration directory ${FHS_PATHS.configDir} or ${SAMPLE_CONFIG_DIR}`,
    );
    return EXIT_CONFIG;
  }
  narrowTo(grantedUnion(ctx), needed);

  const closeLog = await setupLogging({
    command: chosen.command,
    journal: env.JOURNAL_STREAM !== undefined,
    file: chosen.logFile ? `${paths.logsDir}/aos-unit.log` : undefined,
    debug: env.AOS_UNIT_DEBUG === "1",
  });
  try {
    return await chosen.run({ paths, env, out: io.out, err: io.err });
  } catch (error) {
    // Under systemd the final error keeps its priority in the journal (journalctl -p err).
    const errors: Io = env.JOURNAL_STREAM === undefined ? io : {
      out: io.out,
      err: (t) => io.err(t.split("\n").map((line) => `<3>${line}`).join("\n")),
    };
    const lines: string[] = [];
    const code = report(error, chosen.command, {
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
