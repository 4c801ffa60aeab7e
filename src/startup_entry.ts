/**
 * The startup command's own entry point (the bundle flavour ships it as startup.js; the
 * launcher starts `aos-unit startup` with it): the broker (ExecStartPre=+, root): it loads on every start, before the first node unit. The same dispatch and
 * permissions as the whole program's, with only this command in the table.
 */

import { main } from "./cli.ts";
import { startupSpec } from "./commands/startup.ts";

if (import.meta.main) Deno.exit(await main(Deno.args, { startup: startupSpec }));
