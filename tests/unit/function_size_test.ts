/**
 * No function in src/ grows past 120 lines: a function that long holds several
 * phases (lima's 555-line Cmdline is the cautionary tale), and each phase reads
 * and tests better on its own. Functions are found by a small scanner that
 * skips strings, template literals, comments and regular expressions and
 * matches braces; a brace block counts as a function when the code before it
 * is a function, an arrow, a method or an accessor.
 */

import assert from "node:assert/strict";

const SRC = new URL("../../src/", import.meta.url).pathname;
export const MAX_LINES = 120;

export interface FunctionSpan {
  name: string;
  line: number;
  lines: number;
}

/** Characters after which a "/" starts a regular expression, not a division. */
const REGEX_AFTER = new Set([..."(,=:[!&|?{};+-*%<>~^", ""]);
const REGEX_KEYWORDS = /(?:^|[^\w$])(?:return|typeof|case|do|else|in|of|void|yield|await)$/;

function isFunctionHeader(header: string): string | undefined {
  const h = header.replace(/\s+/g, " ").trim();
  if (/=>\s*$/.test(h)) {
    return /(\w+)\s*(?::[^=]*)?=\s*(?:async\s*)?\(?[^=]*=>\s*$/.exec(h)?.[1] ?? "=>";
  }
  const fn = /function\s*\*?\s*([\w$]*)\s*(?:<[^>]*>)?\s*\([^]*\)[^{]*$/.exec(h);
  if (fn) return fn[1] || "function";
  const method =
    /(?:^|[;{}]\s*|\s)(?:(?:static|async|get|set|private|public|protected|override|readonly)\s+)*(#?[\w$]+)\s*(?:<[^>]*>)?\s*\([^()]*(?:\([^()]*\)[^()]*)*\)\s*(?::\s*[^{]+)?$/
      .exec(h);
  if (method && !["if", "for", "while", "switch", "catch", "with"].includes(method[1]!)) {
    return method[1];
  }
  return undefined;
}

/** Every function-like brace block of a TypeScript source, with its length in lines. */
export function functionSpans(source: string): FunctionSpan[] {
  const spans: FunctionSpan[] = [];
  const stack: { line: number; name: string | undefined; template?: boolean }[] = [];
  let line = 1;
  let header = "";
  let last = ""; // last significant character of code
  let i = 0;
  const n = source.length;
  const advance = (to: number) => {
    for (; i < to; i++) if (source[i] === "\n") line++;
  };
  const templateStack: number[] = []; // brace depth at which each open template resumes
  const skipTemplate = () => {
    // i is just after "`" or after the "}" that closes a ${...}
    while (i < n) {
      const c = source[i]!;
      if (c === "\\") {
        advance(i + 2);
        continue;
      }
      if (c === "`") {
        advance(i + 1);
        last = "a";
        return;
      }
      if (c === "$" && source[i + 1] === "{") {
        advance(i + 2);
        templateStack.push(stack.length);
        stack.push({ line, name: undefined, template: true });
        last = "{";
        return;
      }
      advance(i + 1);
    }
  };
  while (i < n) {
    const c = source[i]!;
    const next = source[i + 1];
    if (c === "/" && next === "/") {
      const end = source.indexOf("\n", i);
      advance(end === -1 ? n : end);
      continue;
    }
    if (c === "/" && next === "*") {
      const end = source.indexOf("*/", i + 2);
      advance(end === -1 ? n : end + 2);
      continue;
    }
    if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < n && source[j] !== c && source[j] !== "\n") j += source[j] === "\\" ? 2 : 1;
      advance(j + 1);
      header += "s";
      last = "a";
      continue;
    }
    if (c === "`") {
      advance(i + 1);
      header += "s";
      skipTemplate();
      continue;
    }
    if (c === "/" && (REGEX_AFTER.has(last) || REGEX_KEYWORDS.test(header.trimEnd()))) {
      let j = i + 1;
      let inClass = false;
      while (j < n && source[j] !== "\n") {
        const d = source[j]!;
        if (d === "\\") j++;
        else if (d === "[") inClass = true;
        else if (d === "]") inClass = false;
        else if (d === "/" && !inClass) break;
        j++;
      }
      j++;
      while (j < n && /[a-z]/.test(source[j]!)) j++;
      advance(j);
      header += "r";
      last = "a";
      continue;
    }
    if (c === "{") {
      stack.push({ line, name: isFunctionHeader(header) });
      header = "";
      last = "{";
      advance(i + 1);
      continue;
    }
    if (c === "}") {
      const open = stack.pop();
      if (open?.template) {
        templateStack.pop();
        advance(i + 1);
        skipTemplate();
        continue;
      }
      if (open?.name !== undefined) {
        spans.push({ name: open.name, line: open.line, lines: line - open.line + 1 });
      }
      header = "";
      last = "}";
      advance(i + 1);
      continue;
    }
    if (c === ";") header = "";
    else header += c;
    if (header.length > 400) header = header.slice(-400);
    if (!/\s/.test(c)) last = /[\w$)\]]/.test(c) ? "a" : c;
    advance(i + 1);
  }
  return spans;
}

function walk(dir: string, prefix = ""): string[] {
  const files: string[] = [];
  for (const entry of Deno.readDirSync(dir)) {
    const rel = prefix + entry.name;
    if (entry.isDirectory) files.push(...walk(`${dir}${entry.name}/`, `${rel}/`));
    else if (entry.name.endsWith(".ts") && !entry.name.endsWith("_test.ts")) files.push(rel);
  }
  return files.sort();
}

Deno.test("functionSpans() measures functions, arrows and methods, not strings or regexes", () => {
  const source = [
    "const re = /{/g; // {",
    "function one() {",
    "  const t = `${'{'} ${`x${1}`}`;",
    "  return t;",
    "}",
    "class A {",
    "  async m(a: number): Promise<void> {",
    "    if (a) { return; }",
    "  }",
    "}",
    "const f = (x: number) => {",
    "  return x;",
    "};",
  ].join("\n");
  const spans = functionSpans(source).map((s) => `${s.name}:${s.line}:${s.lines}`);
  assert.deepEqual(spans, ["one:2:4", "m:7:3", "f:11:3"]);
});

Deno.test(`no function in src/ is over ${MAX_LINES} lines`, () => {
  const long: string[] = [];
  for (const file of walk(SRC)) {
    for (const span of functionSpans(Deno.readTextFileSync(SRC + file))) {
      if (span.lines > MAX_LINES) {
        long.push(`${file}:${span.line} ${span.name}: ${span.lines} lines`);
      }
    }
  }
  assert.deepEqual(long, [], `split these into phases:\n${long.join("\n")}`);
});

if (import.meta.main) {
  // deno run tests/unit/function_size_test.ts: the longest functions of src/.
  const all = walk(SRC).flatMap((file) =>
    functionSpans(Deno.readTextFileSync(SRC + file)).map((s) => ({ file, ...s }))
  );
  for (const s of all.sort((a, b) => b.lines - a.lines).slice(0, 15)) {
    console.log(`${String(s.lines).padStart(4)}  ${s.file}:${s.line} ${s.name}`);
  }
}
