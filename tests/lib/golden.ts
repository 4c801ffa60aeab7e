/**
 * Golden files, libvirt style: expected output lives in plain files next to the
 * cases; `UPDATE_GOLDEN=1` rewrites mismatched or missing files. Review every
 * regenerated file before committing it.
 */

import assert from "node:assert/strict";

export const UPDATING = Deno.env.get("UPDATE_GOLDEN") === "1";

function lineDiff(expected: string, actual: string): string {
  const a = expected.split("\n");
  const b = actual.split("\n");
  const out: string[] = [];
  for (let i = 0; i < Math.max(a.length, b.length) && out.length < 40; i++) {
    if (a[i] === b[i]) continue;
    if (a[i] !== undefined) out.push(`  line ${i + 1} - ${a[i]}`);
    if (b[i] !== undefined) out.push(`  line ${i + 1} + ${b[i]}`);
  }
  return out.join("\n");
}

/** Compares `actual` with the file at `path` (or writes it when updating). */
export function assertGolden(path: string, actual: string, used?: Set<string>): void {
  used?.add(path);
  let expected: string | undefined;
  try {
    expected = Deno.readTextFileSync(path);
  } catch {
    expected = undefined;
  }
  if (expected === actual) return;
  if (UPDATING) {
    Deno.writeTextFileSync(path, actual);
    return;
  }
  const relative = path.replace(`${Deno.cwd()}/`, "");
  assert.fail(
    expected === undefined
      ? `Golden file ${relative} is missing. Create it with:\n  UPDATE_GOLDEN=1 deno task test:unit`
      : `Golden file ${relative} differs:\n${
        lineDiff(expected, actual)
      }\nIf the change is intended:\n  UPDATE_GOLDEN=1 deno task test:unit   (then review the diff)`,
  );
}

/** Fails on files in `dir` (matching `pattern`) that no case used: stale goldens. */
export function assertNoUnusedGoldens(dir: string, used: Set<string>, pattern = /./): void {
  const unused = [...Deno.readDirSync(dir)]
    .filter((e) => e.isFile && pattern.test(e.name))
    .map((e) => `${dir}/${e.name}`)
    .filter((p) => !used.has(p));
  if (unused.length > 0 && UPDATING) {
    for (const p of unused) Deno.removeSync(p);
    return;
  }
  assert.deepEqual(unused, [], `Golden files no case uses (delete them or add the case)`);
}
