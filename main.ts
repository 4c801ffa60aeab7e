/**
 * aos-unit: one executable, many subcommands. Dispatch only: parse argv,
 * narrow permissions, run one command, exit with its code.
 */

import { main } from "./src/cli.ts";
import { COMMANDS } from "./src/command_table.ts";

if (import.meta.main) {
  Deno.exit(await main(Deno.args, COMMANDS));
}
