/** What every subcommand gets from dispatch: directories, the environment it read, output. */

import { EXECUTABLE } from "../base/host_files.ts";
import { unitNames } from "../base/unit_identity.ts";
import { UNIT_NAME_ENV } from "../host/paths.ts";
import type { Paths } from "../plan/types.ts";

export interface CommandContext {
  paths: Paths;
  /** The environment dispatch read before permissions were narrowed. */
  env: Readonly<Record<string, string | undefined>>;
  out(text: string): void;
  err(text: string): void;
}

/**
 * The unit's service user (aos-unit, or aos-unit-NAME for unit NAME), which its manager runs
 * as and which owns its files, and the executable to run as it (overridable in tests and
 * development),
 * with the environment to give it: this one, naming the unit this command works for (it
 * may have come from --unit).
 */
export function serviceUserOf(ctx: CommandContext): {
  executable: string;
  serviceUser: string;
  env: CommandContext["env"];
} {
  return {
    executable: ctx.env.AOS_UNIT_EXECUTABLE ?? EXECUTABLE,
    serviceUser: ctx.env.AOS_UNIT_SERVICE_USER ?? unitNames(ctx.paths.unit).serviceUser,
    env: { ...ctx.env, [UNIT_NAME_ENV]: ctx.paths.unit },
  };
}
