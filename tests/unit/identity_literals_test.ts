/**
 * Every name a unit owns comes from its record (src/base/unit_identity.ts, and
 * unit_files.ts for its files): no other module spells one, so no module can name
 * another unit's things by a prefix or a copy of a formula. Comments are not code.
 */

import assert from "node:assert/strict";

const SRC = new URL("../../src", import.meta.url).pathname;
const RECORD = new Set(["base/unit_identity.ts", "base/unit_files.ts"]);
const LITERALS = ["aos-node-", "aostap", "aosbr", "aos_unit", "aos-unit-dnsmasq", "leases.json"];

function* sources(dir: string, rel = ""): Generator<string> {
  for (const e of Deno.readDirSync(dir)) {
    const path = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory) yield* sources(`${dir}/${e.name}`, path);
    else if (e.name.endsWith(".ts") && !e.name.endsWith("_test.ts")) yield path;
  }
}

/** The code of a file: block comments, line comments and comment-only lines removed. */
export function codeOf(text: string): string {
  return text
    .replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, " "))
    .split("\n")
    .map((line) => line.replace(/(^|\s)\/\/.*$/, ""))
    .join("\n");
}

Deno.test("codeOf() keeps strings and drops comments", () => {
  assert.equal(
    codeOf('/** aosbr */\nconst a = "x"; // aostap\n// aos_unit\nconst u = "https://x";').trim(),
    'const a = "x";\n\nconst u = "https://x";',
  );
});

Deno.test("no module but the unit's record spells a name a unit owns", () => {
  const found: string[] = [];
  for (const path of sources(SRC)) {
    if (RECORD.has(path)) continue;
    codeOf(Deno.readTextFileSync(`${SRC}/${path}`)).split("\n").forEach((line, i) => {
      for (const literal of LITERALS) {
        if (line.includes(literal)) found.push(`src/${path}:${i + 1}: ${literal}`);
      }
    });
  }
  assert.deepEqual(found, [], found.join("\n"));
});
