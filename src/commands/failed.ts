/**
 * `aos-unit failed NODE [--final]`: the forensic handler. Runs as the node
 * unit's ExecStopPost= after EVERY stop (and records only failures: systemd's
 * OnFailure= fires only when the restart limit is hit), and as
 * aos-unit-vm-failed@NODE.service (--final) when systemd gives up.
 */

import { EXIT_OK } from "../errors.ts";
import { createRunner } from "../host/runner.ts";
import { logger } from "../log.ts";
import { TOOLS } from "../permissions.ts";
import { nodeUnitName } from "../plan/units.ts";
import { connectSystemBus } from "../systemd/bus.ts";
import { Systemd } from "../systemd/systemd1.ts";
import { appendFailure, type FailureRecord, tailLines } from "../vm/failures.ts";
import type { CommandContext } from "./context.ts";

export interface FailedOptions {
  final: boolean;
}

export async function failedCommand(
  ctx: CommandContext,
  node: string,
  options: FailedOptions,
): Promise<number> {
  const log = logger("failed");
  const unit = nodeUnitName(node);
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
  try {
    const bus = await connectSystemBus(undefined, 1500);
    try {
      const state = await (await Systemd.open(bus)).unitState(unit);
      restarts = state?.nRestarts ?? null;
      result ??= state?.result;
    } finally {
      bus.disconnect();
    }
  } catch (error) {
    log.debug(`No unit state from systemd: ${(error as Error).message}`);
  }

  let journal: string[] = [];
  try {
    const r = await createRunner().run(
      [TOOLS.journalctl, "-u", unit, "-n", "30", "-o", "short-iso", "--no-pager", "-q"],
      { okCodes: [0, 1], timeoutMs: 5000 },
    );
    journal = r.stdout.trimEnd().split("\n").filter(Boolean);
  } catch (error) {
    journal = [`(journal unavailable: ${(error as Error).message})`];
  }

  const record: FailureRecord = {
    time: new Date().toISOString(),
    node,
    unit,
    result: result ?? "unknown",
    exit_code: env("EXIT_CODE") ?? null,
    exit_status: env("EXIT_STATUS") ?? null,
    restarts,
    final: options.final,
    journal,
    serial_tail: tailLines(`${ctx.paths.logsDir}/${node}-serial.log`, 30),
  };
  appendFailure(ctx.paths.logsDir, record);
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
