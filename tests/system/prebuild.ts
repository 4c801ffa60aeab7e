/**
 * Builds what every tier-3 suite needs (the two package builds, the test guests) once,
 * before the suites run in parallel: `deno run -A tests/system/prebuild.ts DIR` prints
 * the JSON for AOS_UNIT_TEST_ARTIFACTS (tests/run.sh).
 */

import { buildArtifacts } from "./system_bed.ts";

const dir = Deno.args[0];
if (!dir) throw new Error("usage: prebuild.ts DIR");
await Deno.mkdir(dir, { recursive: true });
console.log(JSON.stringify(await buildArtifacts(dir)));
