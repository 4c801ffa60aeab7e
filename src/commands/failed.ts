/**
 * `aos-unit failed NODE [--final]`: the forensic handler. Runs as the node
 * unit's ExecStopPost= after EVERY stop (and records only failures: systemd's
 * OnFailure= fires only when the restart limit is hit), and as
 * aos-unit-vm-failed@NODE.service (--final) when systemd gives up. In the
 * node's sandbox the record goes to the node's own spool, which the manager
 * (or the final handler) moves into vm-failures.log.
 */

import { EXIT_OK, UsageError } from "../base/errors.ts";
import { createRunner } from "../host/runner.ts";
import { logger } from "../log.ts";
import { TOOLS } from "../base/tools.ts";
import { failedInstanceOf, unitNames } from "../base/unit_identity.ts";
import { withSystemd } from "../systemd/connect.ts";
import { nodeFailureSpool } from "../plan/layout.ts";
import {
  appendFailure,
  collectSpooled,
  type FailureRecord,
  spoolFailure,
  tailLines,
} from "../vm/failures.ts";
import type { CommandContext } from "./_context.ts";
import { type CommandSpec, flag } from "./_spec.ts";

export interface FailedOptions {
  final: boolean;
}

export async function failedCommand(
  ctx: CommandContext,
  operand: string,
  options: FailedOptions,
): Promise<number> {
  const log = logger("failed");
  // aos-unit-vm-failed@NAME_NODE.service (a named unit's node) names its unit in its
  // instance, from which dispatch took the unit (failedSpec.unitInOperand).
  const instance = failedInstanceOf(operand);
  if (instance.unit !== undefined && instance.unit !== ctx.paths.unit) {
    throw new UsageError(`${operand} is a node of unit ${instance.unit}, not of this one`);
  }
  const node = instance.node;
  const unit = unitNames(ctx.paths.unit).node(node).unit;
  const env = (name: string) => {
    try {
      return Deno.env.get(name);
    } catch {
      return undefined;
    }
  };
  let result = env("SERVICE_RESULT");
  if (!options.final && (result === undefined || result === "success")) return EXIT_OK;

  let restarts: number | null = null;
  let journal: string[] = [];
  if (options.final) {
    // Only the final handler (aos-unit-vm-failed@.service) reads the bus and the journal.
    try {
      const state = await withSystemd((systemd) => systemd.unitState(unit));
      if (state && ["active", "activating", "reloading"].includes(state.activeState)) {
        // systemd >= 254 without RestartMode=direct runs OnFailure= on every crash.
        log.info(`Node ${node} is ${state.activeState} again: systemd has not given up`);
        return EXIT_OK;
      }
      restarts = state?.nRestarts ?? null;
      result = state?.result ?? result;
    } catch (error) {
      log.debug(`No unit state from systemd: ${(error as Error).message}`);
    }
    try {
      const r = await createRunner().run(
        [TOOLS.journalctl, "-u", unit, "-n", "30", "-o", "short-iso", "--no-pager", "-q"],
        { okCodes: [0, 1], timeoutMs: 5000 },
      );
      journal = r.stdout.trimEnd().split("\n").filter(Boolean);
    } catch (error) {
      journal = [`(journal unavailable: ${(error as Error).message})`];
    }
  }

  const record: FailureRecord = {
    time: new Date().toISOString(),
    node,
    unit,
    result: result ?? "unknown",
    exit_code: options.final ? null : env("EXIT_CODE") ?? null,
    exit_status: options.final ? null : env("EXIT_STATUS") ?? null,
    restarts,
    final: options.final,
    journal,
    serial_tail: tailLines(`${ctx.paths.logsDir}/${node}-serial.log`, 30),
  };
  const spool = nodeFailureSpool(ctx.paths, node);
  if (options.final && ctx.paths.unit !== undefined) {
    // A named unit's files are its own user's (aos-unit-NAME): the final handler, which
    // runs as aos-unit for every unit, can only add to the node's spool (0660, the group's),
    // from which the unit's manager moves it into the log with the rest. The node can write
    // there too, so the log keeps what a node's own record may hold: not the journal tail,
    // nor that systemd gave up (that one is in the journal of this unit).
    spoolFailure(spool, record);
  } else if (options.final) {
    // The crash records first, so that the log stays in order; the final record whatever.
    try {
      collectSpooled(spool, ctx.paths.logsDir, node, unit);
    } catch (error) {
      log.warning(`Cannot move node ${node}'s crash records: ${(error as Error).message}`);
    }
    appendFailure(ctx.paths.logsDir, record);
  } else {
    spoolFailure(spool, record);
  }
  log.warning(
    `${
      options.final ? "Gave up on" : "Recorded failure of"
    } node ${node}: result ${record.result}` +
      `${record.exit_code ? `, ${record.exit_code} ${record.exit_status ?? ""}` : ""}` +
      `${
        restarts === null ? "" : `, ${restarts} restart(s)`
      } (see ${ctx.paths.logsDir}/vm-failures.log)`,
  );
  return EXIT_OK;
}

export const failedSpec: CommandSpec = {
  name: "failed",
  summary: "forensic handler: append a record of a node failure to vm-failures.log",
  group: "internal",
  args: [{ name: "<node>", description: "node name (UNIT_NODE for a named unit's node)" }],
  unitInOperand: true,
  options: [{
    flags: "--final",
    description: "systemd gave up restarting the node (run by aos-unit-vm-failed@.service)",
  }],
  examples:
    "\nExamples:\n  ExecStopPost=-/usr/bin/aos-unit failed main\n  jq . /var/log/aos-unit/vm-failures.log",
  run: (ctx, call) => failedCommand(ctx, String(call.args[0]), { final: flag(call, "final") }),
};
