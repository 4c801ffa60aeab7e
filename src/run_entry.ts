/**
 * The run command's own entry point (the bundle flavour ships it as run.js; the
 * launcher starts `aos-unit run` with it): the manager (ExecStart=): the one resident Deno process; what it loads, it keeps. The same dispatch and
 * permissions as the whole program's, with only this command in the table.
 */

import { main } from "./cli.ts";
import { runSpec } from "./commands/run.ts";

if (import.meta.main) Deno.exit(await main(Deno.args, { run: runSpec }));
