/**
 * The prepare command's own entry point (the bundle flavour ships it as prepare.js; the
 * launcher starts `aos-unit prepare` with it): prepare (run by the broker as the service user on a first start): it needs no D-Bus. The same dispatch and
 * permissions as the whole program's, with only this command in the table.
 */

import { main } from "./cli.ts";
import { prepareSpec } from "./commands/prepare.ts";

if (import.meta.main) Deno.exit(await main(Deno.args, { prepare: prepareSpec }));
