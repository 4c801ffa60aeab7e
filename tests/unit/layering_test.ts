/**
 * The layering of src/, read from its imports. Data flows one way: files and
 * host facts -> config -> plan -> apply; each layer may import only the layers
 * below it:
 *
 *   main.ts -> cli.ts -> commands/ -> net/ vm/ systemd/ -> host/ log.ts -> config/ plan/ -> base/
 *
 * Why each rule:
 * - base/ is the leaf every layer shares (tools and their Debian packages, the node-name
 *   rule, IPv4 arithmetic, identities, argv quoting, the config types, errors): it imports
 *   nothing of aos-unit's, so a shared rule is written once and cannot drift.
 * - config/ and plan/ are pure peers: they take values and return values (no I/O, no
 *   processes, no clock), so every plan can be compared with a golden file. config/ never
 *   imports plan/ and plan/ never imports config/: what both need lives in base/.
 * - host/ is the only door to the machine (facts, the command runner, paths): it knows
 *   nothing of what the services above do with it.
 * - net/, vm/ and systemd/ apply parts of a plan; they may use each other, never a
 *   command, and never permissions.ts (only dispatch narrows permissions).
 * - commands/ holds one file per subcommand; a command never imports another (shared
 *   behaviour moves down, or into a `_`-prefixed helper of that folder).
 * - permissions.ts is dispatch's table: only cli.ts imports it (and packaging/).
 */

import assert from "node:assert/strict";

const SRC = new URL("../../src/", import.meta.url).pathname;

/** Rank of a layer: an import may only go to the same rank or lower. */
const RANK: Record<string, number> = {
  base: 0,
  config: 1,
  plan: 1,
  host: 2,
  "log.ts": 2,
  net: 3,
  vm: 3,
  systemd: 3,
  commands: 4,
  "permissions.ts": 5,
  "cli.ts": 6,
  // The command line's grammar (pure): cli.ts's parser, over the command specs.
  "cli_parse.ts": 6,
  // The lease hook's own small entry point (the bundle flavour's lease-hook.js): like cli.ts,
  // an entry that dispatches to one command.
  "lease_hook_entry.ts": 6,
  // The whole program's command table (main.ts), and the entries with one command each
  // (startup.js, run.js, prepare.js): dispatch, like cli.ts.
  "command_table.ts": 6,
  "startup_entry.ts": 6,
  "run_entry.ts": 6,
  "prepare_entry.ts": 6,
};

/** The layer of a path relative to src/: its folder, or the file itself at the top. */
export function layerOf(relative: string): string {
  return relative.includes("/") ? relative.split("/")[0]! : relative;
}

function isCommandFile(relative: string): boolean {
  const name = relative.split("/").pop()!;
  return relative.startsWith("commands/") && !name.startsWith("_") && !name.endsWith("_test.ts");
}

/** The relative imports of one file's text (static, re-exports and dynamic). */
export function importsOf(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/(?:from|import)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g)) {
    out.push(m[1]!);
  }
  return out;
}

/** Every rule an import from `from` to `to` (both relative to src/) breaks. */
export function violations(from: string, to: string): string[] {
  const a = layerOf(from);
  const b = layerOf(to);
  const out: string[] = [];
  const rankA = RANK[a];
  const rankB = RANK[b];
  if (rankA === undefined || rankB === undefined) {
    out.push(`${from} -> ${to}: unknown layer (add it to RANK with its reason)`);
    return out;
  }
  if (rankB > rankA) out.push(`${from} -> ${to}: upward import (${a} below ${b})`);
  if ((a === "config" && b === "plan") || (a === "plan" && b === "config")) {
    out.push(`${from} -> ${to}: config/ and plan/ are peers; share through base/`);
  }
  if (b === "permissions.ts" && a !== "cli.ts") {
    out.push(`${from} -> ${to}: only cli.ts imports permissions.ts`);
  }
  if (isCommandFile(from) && isCommandFile(to)) {
    out.push(`${from} -> ${to}: a command imports another command`);
  }
  if (
    from.startsWith("commands/") && !isCommandFile(from) && isCommandFile(to) &&
    !from.endsWith("_test.ts")
  ) {
    out.push(`${from} -> ${to}: a commands/ helper imports a command`);
  }
  return out;
}

function walk(dir: string, prefix = ""): string[] {
  const files: string[] = [];
  for (const entry of Deno.readDirSync(dir)) {
    const rel = prefix + entry.name;
    if (entry.isDirectory) files.push(...walk(`${dir}${entry.name}/`, `${rel}/`));
    else if (entry.name.endsWith(".ts")) files.push(rel);
  }
  return files.sort();
}

function normalize(fromRel: string, spec: string): string {
  const parts = fromRel.split("/").slice(0, -1);
  for (const piece of spec.split("/")) {
    if (piece === "..") parts.pop();
    else if (piece !== ".") parts.push(piece);
  }
  return parts.join("/");
}

Deno.test("src/ keeps its layering: no upward import, no command importing another", () => {
  const problems: string[] = [];
  for (const file of walk(SRC)) {
    if (file.endsWith("_test.ts")) continue;
    for (const spec of importsOf(Deno.readTextFileSync(SRC + file))) {
      const target = normalize(file, spec);
      if (target.startsWith("..")) {
        problems.push(`${file} -> ${spec}: imports from outside src/`);
        continue;
      }
      problems.push(...violations(file, target));
    }
  }
  assert.deepEqual(problems, [], `layering broken:\n${problems.join("\n")}`);
});

Deno.test("violations() names each kind of broken rule", () => {
  assert.match(violations("plan/qemu.ts", "host/runner.ts")[0]!, /upward import/);
  assert.match(violations("config/validate.ts", "plan/network.ts")[0]!, /peers/);
  assert.match(violations("host/facts.ts", "net/links.ts")[0]!, /upward/);
  assert.match(violations("net/apply.ts", "permissions.ts").join(" "), /only cli.ts/);
  assert.match(violations("commands/run.ts", "commands/startup.ts")[0]!, /another command/);
  assert.deepEqual(violations("commands/run.ts", "commands/_context.ts"), []);
  assert.deepEqual(violations("net/apply.ts", "systemd/bus.ts"), []);
  assert.deepEqual(violations("cli.ts", "permissions.ts"), []);
});

Deno.test("the lease hook's entry loads no node: module and no package (a cold start each ACK)", () => {
  const seen = new Set<string>();
  const packages: string[] = [];
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = Deno.readTextFileSync(SRC + file);
    // Type-only imports vanish from the bundle.
    for (const m of text.matchAll(/^import (?!type )[^;]*?from\s*["']([^"']+)["']/gm)) {
      const spec = m[1]!;
      if (spec.startsWith(".")) visit(normalize(file, spec));
      else packages.push(`${file} -> ${spec}`);
    }
  };
  visit("lease_hook_entry.ts");
  assert.deepEqual(packages, [], `the hook's bundle would load:\n${packages.join("\n")}`);
  assert.ok(seen.has("host/lease_file.ts"), [...seen].join(" "));
});

Deno.test("no bundle imports a node: module (the Node compatibility layer: 8 MiB, 25 ms a start)", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    for (const entry of ["../main.ts", "run_entry.ts", "startup_entry.ts", "prepare_entry.ts"]) {
      const out = `${dir}/bundle.js`;
      // As packaging/build_package.sh bundles.
      const r = await new Deno.Command(Deno.execPath(), {
        args: ["bundle", "--quiet", "--platform=browser", "-o", out, SRC + entry],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
      const imports = Deno.readTextFileSync(out).match(/(from |require\(|import\()"node:[^"]*"/g);
      assert.deepEqual(imports, null, `${entry}'s bundle loads Node compatibility`);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
