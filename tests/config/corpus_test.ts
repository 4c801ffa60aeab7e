/**
 * The bad-config corpus: every file in bad/ must be rejected with exactly the
 * diagnostics in its .err golden file (FILE:LINE:COLUMN: message), and the CLI
 * must exit 2. Regenerate: UPDATE_GOLDEN=1 deno task test:unit
 */

import assert from "node:assert/strict";
import { loadConfig } from "../../src/config/mod.ts";
import { ConfigError, formatDiagnostic } from "../../src/base/errors.ts";
import { assertGolden, assertNoUnusedGoldens } from "../lib/golden.ts";

const BAD = new URL("./bad", import.meta.url).pathname;

const cases = [...Deno.readDirSync(BAD)].filter((e) => e.name.endsWith(".yaml")).map((e) =>
  e.name.replace(/\.yaml$/, "")
).sort();

function read(path: string) {
  try {
    return { path, text: Deno.readTextFileSync(path) };
  } catch {
    return { path, missing: true as const };
  }
}

function diagnosticsOf(name: string): string {
  // Paths relative to bad/ so the golden files do not depend on the checkout.
  const runtime = read(`${BAD}/${name}.conf`);
  const unit = read(`${BAD}/${name}.yaml`);
  try {
    loadConfig(
      { ...runtime, path: `${name}.conf` },
      { ...unit, path: `${name}.yaml` } as { path: string; text: string },
    );
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected ConfigError, got ${error}`);
    assert.equal(error.exitCode, 2);
    return error.diagnostics.map(formatDiagnostic).join("\n") + "\n";
  }
  assert.fail(`${name}: the configuration was accepted`);
}

const used = new Set<string>();

Deno.test("loadConfig() rejects every config in the bad corpus with located messages", async (t) => {
  assert.ok(cases.length >= 30, `corpus has ${cases.length} cases, want >= 30`);
  for (const name of cases) {
    await t.step(name, () => {
      const text = diagnosticsOf(name);
      for (const line of text.trimEnd().split("\n")) {
        assert.match(line, /^[^:]+:\d+:\d+: /, `not FILE:LINE:COLUMN: ${line}`);
      }
      assertGolden(`${BAD}/${name}.err`, text, used);
    });
  }
  await t.step("no unused .err files", () => assertNoUnusedGoldens(BAD, used, /\.err$/));
});
