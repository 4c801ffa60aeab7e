/** `tests/run.sh --list`: the tier-3 scenario names, one per line. */

import { SCENARIOS } from "./scenarios/mod.ts";

for (const s of SCENARIOS) console.log(s.name);
