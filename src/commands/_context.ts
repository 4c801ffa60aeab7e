/** What every subcommand gets from dispatch: directories, the environment it read, output. */

import type { Paths } from "../plan/types.ts";

export interface CommandContext {
  paths: Paths;
  /** The environment dispatch read before permissions were narrowed. */
  env: Readonly<Record<string, string | undefined>>;
  out(text: string): void;
  err(text: string): void;
}
