/**
 * The command table of the whole program (main.ts): every subcommand, in help order (the
 * order of SUBCOMMANDS). Completions, the manual page test and the permission table are
 * keyed by it. The broker, the manager and prepare have entry points of their own
 * (*_entry.ts) with only their command, so that what they load and keep is smaller.
 */

import type { Subcommand } from "./base/subcommands.ts";
import type { CommandSpec } from "./commands/_spec.ts";
import { cleanupSpec } from "./commands/cleanup.ts";
import { consoleSpec } from "./commands/console.ts";
import { doctorSpec } from "./commands/doctor.ts";
import { exportSpec } from "./commands/export.ts";
import { snapshotSpec } from "./commands/snapshot.ts";
import { failedSpec } from "./commands/failed.ts";
import { leaseHookSpec } from "./commands/lease_hook.ts";
import { listSpec } from "./commands/list.ts";
import { monitorSpec } from "./commands/monitor.ts";
import { planSpec } from "./commands/plan.ts";
import { powerdownSpec } from "./commands/powerdown.ts";
import { prepareSpec } from "./commands/prepare.ts";
import { resetSpec } from "./commands/reset.ts";
import { runSpec } from "./commands/run.ts";
import { startupSpec } from "./commands/startup.ts";
import { statusSpec } from "./commands/status.ts";
import { validateSpec } from "./commands/validate.ts";

export const COMMANDS: Readonly<Record<Subcommand, CommandSpec>> = {
  validate: validateSpec,
  plan: planSpec,
  list: listSpec,
  status: statusSpec,
  doctor: doctorSpec,
  console: consoleSpec,
  reset: resetSpec,
  export: exportSpec,
  snapshot: snapshotSpec,
  startup: startupSpec,
  prepare: prepareSpec,
  run: runSpec,
  monitor: monitorSpec,
  powerdown: powerdownSpec,
  "lease-hook": leaseHookSpec,
  failed: failedSpec,
  cleanup: cleanupSpec,
};
