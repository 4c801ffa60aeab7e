/** Tier 3's split of (release, scenario) runs over its lanes (tests/system/scenario.ts). */

import assert from "node:assert/strict";
import { chosenSuites, expectedSeconds, type Run, splitLanes } from "../system/scenario.ts";

function run(suite: Run["suite"], name: string, index: number): Run {
  return { suite, scenario: { name }, index };
}

Deno.test("longest first, each onto the lane with the least work: both lanes end together", () => {
  const seconds: Record<string, number> = {
    "bookworm a": 300,
    "trixie a": 250,
    "bookworm b": 200,
    "trixie b": 150,
    "bookworm c": 100,
    "trixie c": 100,
  };
  const runs = ["bookworm", "trixie"].flatMap((suite) =>
    ["a", "b", "c"].map((name, i) => run(suite as Run["suite"], name, i))
  );
  const lanes = splitLanes(runs, 2, (r) => expectedSeconds(r, seconds));
  assert.deepEqual(
    lanes.map((l) => l.map((r) => `${r.suite} ${r.scenario.name}`)),
    [
      ["bookworm a", "trixie b", "bookworm c"],
      ["trixie a", "bookworm b", "trixie c"],
    ],
  );
  const sums = lanes.map((l) =>
    l.reduce((s, r) => s + seconds[`${r.suite} ${r.scenario.name}`]!, 0)
  );
  assert.deepEqual(sums, [550, 550]);
});

Deno.test("every run goes to exactly one lane; one run leaves the other lane empty", () => {
  const one = splitLanes([run("trixie", "units", 8)], 2, () => 60);
  assert.deepEqual(one.map((l) => l.length), [1, 0]);
  const runs = Array.from({ length: 9 }, (_, i) => run("bookworm", `s${i}`, i));
  const lanes = splitLanes(runs, 2, (r) => expectedSeconds(r, {}));
  assert.equal(lanes.flat().length, 9);
  assert.equal(new Set(lanes.flat()).size, 9);
});

Deno.test("the releases: both by default, those named, an unknown one an error", () => {
  assert.deepEqual(chosenSuites(""), ["bookworm", "trixie"]);
  assert.deepEqual(chosenSuites("trixie"), ["trixie"]);
  assert.throws(() => chosenSuites("sid"), /no release sid/);
});
