/**
 * The manual pages and shell completions: mandoc lints both pages clean, they
 * render, and they (and the completions) cover every subcommand and every
 * configuration key the code knows.
 */

import assert from "node:assert/strict";
import { NODE_KEYS, RUNTIME_KEYS } from "../../src/config/mod.ts";
import { SUBCOMMANDS } from "../../src/permissions.ts";

const ROOT = new URL("../../", import.meta.url);
const path = (relative: string) => new URL(relative, ROOT).pathname;

const PAGE_8 = "man/aos-unit.8";
const PAGE_5 = "man/aos-unit.conf.5";
const BASH_COMPLETION = "packaging/completions/aos-unit.bash";
const ZSH_COMPLETION = "packaging/completions/_aos-unit";

interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(program: string, args: string[]): Promise<Output> {
  const output = await new Deno.Command(program, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { LC_ALL: "C.UTF-8" },
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** Rendered once per page: `mandoc -Tutf8`, wide enough that no word is split across lines. */
const rendered = new Map<string, Promise<string>>();
function render(page: string): Promise<string> {
  let text = rendered.get(page);
  if (!text) {
    text = run("mandoc", ["-Tutf8", "-O", "width=400", path(page)]).then((r) => {
      assert.equal(r.code, 0, `mandoc -Tutf8 ${page} failed:\n${r.stderr}`);
      return r.stdout;
    });
    rendered.set(page, text);
  }
  return text;
}

/** Terminal bold: each character overstruck with itself (`c\bc`). */
function bold(word: string): string {
  return [...word].map((c) => `${c}\b${c}`).join("");
}

/** The text without overstrike: a backspace removes the character before it. */
function plain(text: string): string {
  const chars: string[] = [];
  for (const c of text) {
    if (c === "\b") chars.pop();
    else chars.push(c);
  }
  return chars.join("");
}

function hasWord(text: string, word: string): boolean {
  const escaped = word.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`(^|[^A-Za-z0-9_-])${escaped}($|[^A-Za-z0-9_-])`, "m").test(text);
}

/** Source lines that open a list entry for `name`, e.g. `.It Cm validate Op ...` or `.It Ic mem`. */
function hasEntry(source: string, macro: string, name: string): boolean {
  return source.split("\n").some((line) => {
    const words = line.trim().split(/\s+/);
    return words[0] === ".It" && words[1] === macro && words[2] === name;
  });
}

for (const page of [PAGE_8, PAGE_5]) {
  Deno.test(`${page}: mandoc -Tlint -W warning prints nothing`, async () => {
    const r = await run("mandoc", ["-Tlint", "-W", "warning", path(page)]);
    const report = (r.stdout + r.stderr).trim();
    assert.equal(report, "", `mandoc -Tlint -W warning ${page} reported:\n${report}`);
    assert.equal(r.code, 0, `mandoc -Tlint -W warning ${page} exited with ${r.code}`);
  });

  Deno.test(`${page}: renders to text`, async () => {
    const text = plain(await render(page));
    assert.ok(text.trim().length > 0, `mandoc -Tutf8 ${page} rendered nothing`);
    for (const section of ["NAME", "DESCRIPTION", "SEE ALSO"]) {
      assert.ok(hasWord(text, section), `${page} renders without a ${section} section`);
    }
  });
}

Deno.test(`${PAGE_8}: every subcommand is documented as a bold command name`, async () => {
  const source = await Deno.readTextFile(path(PAGE_8));
  const text = await render(PAGE_8);
  const notBold = SUBCOMMANDS.filter((c) => !text.includes(bold(c)));
  assert.deepEqual(notBold, [], `${PAGE_8} never shows these subcommands in bold: ${notBold}`);
  const noEntry = SUBCOMMANDS.filter((c) => !hasEntry(source, "Cm", c));
  assert.deepEqual(
    noEntry,
    [],
    `${PAGE_8} has no ".It Cm NAME" entry (COMMANDS) for: ${noEntry.join(", ")}`,
  );
});

Deno.test(`${PAGE_5}: every runtime.conf key and node key is documented`, async () => {
  const source = await Deno.readTextFile(path(PAGE_5));
  const text = plain(await render(PAGE_5));
  for (const [what, keys] of [["runtime.conf", RUNTIME_KEYS], ["node", NODE_KEYS]] as const) {
    const missing = keys.filter((k) => !hasWord(text, k));
    assert.deepEqual(missing, [], `${PAGE_5} never mentions these ${what} keys: ${missing}`);
    const noEntry = keys.filter((k) => !hasEntry(source, "Ic", k));
    assert.deepEqual(
      noEntry,
      [],
      `${PAGE_5} has no ".It Ic KEY" entry for these ${what} keys: ${noEntry.join(", ")}`,
    );
  }
});

/** Runs the bash completion for COMP_WORDS = words (completing the last one); returns COMPREPLY. */
async function completeBash(words: string[], config?: string): Promise<string[]> {
  const script = [
    `source ${JSON.stringify(path(BASH_COMPLETION))}`,
    ...(config ? [`_aos_unit_config=${JSON.stringify(config)}`] : []),
    `COMP_WORDS=(${words.map((w) => JSON.stringify(w)).join(" ")})`,
    `COMP_CWORD=${words.length - 1}`,
    "_aos_unit",
    'printf "%s\\n" "${COMPREPLY[@]}"',
  ].join("\n");
  const r = await run("bash", ["-c", script]);
  assert.equal(r.code, 0, `bash completion failed:\n${r.stderr}`);
  return r.stdout.split("\n").filter(Boolean);
}

Deno.test(`${BASH_COMPLETION}: completes every subcommand`, async () => {
  const offered = await completeBash(["aos-unit", ""]);
  const missing = SUBCOMMANDS.filter((c) => !offered.includes(c));
  assert.deepEqual(missing, [], `${BASH_COMPLETION} does not offer: ${missing.join(", ")}`);
  assert.deepEqual(await completeBash(["aos-unit", "con"]), ["console"]);
  assert.ok(
    (await completeBash(["aos-unit", "reset", "-"])).includes("--efivars"),
    `${BASH_COMPLETION} does not offer reset --efivars`,
  );
});

Deno.test(`${BASH_COMPLETION}: completes node names in block and flow style`, async () => {
  const dir = await Deno.makeTempDir({ prefix: "aos-unit-completion-" });
  try {
    const config = `${dir}/unit_config.yaml`;
    await Deno.writeTextFile(
      config,
      [
        "unit:",
        "  node_configs:",
        "    - name: main  # reserved",
        "      cpu: 4",
        "      mem: 8G",
        "    - { name: secondary, cpu: 2, mem: 4G }",
        "    # - name: commented",
        "",
      ].join("\n"),
    );
    assert.deepEqual(await completeBash(["aos-unit", "console", ""], config), [
      "main",
      "secondary",
    ]);
    assert.deepEqual(await completeBash(["aos-unit", "reset", "--efivars", "s"], config), [
      "secondary",
    ]);
    assert.deepEqual(await completeBash(["aos-unit", "console", "main", ""], config), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test(`${ZSH_COMPLETION}: lists every subcommand`, async () => {
  const source = await Deno.readTextFile(path(ZSH_COMPLETION));
  assert.ok(source.startsWith("#compdef aos-unit"), `${ZSH_COMPLETION} lacks "#compdef aos-unit"`);
  const missing = SUBCOMMANDS.filter((c) => !new RegExp(`['"]${c}:`).test(source));
  assert.deepEqual(missing, [], `${ZSH_COMPLETION} does not describe: ${missing.join(", ")}`);
});
