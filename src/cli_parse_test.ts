import assert from "node:assert/strict";
import type { CommandSpec } from "./commands/_spec.ts";
import { parseArgv, type ProgramSpec } from "./cli_parse.ts";

const spec = (s: Partial<CommandSpec> & Pick<CommandSpec, "name">): CommandSpec => ({
  summary: `${s.name} things`,
  group: "user",
  examples: "\nExample:\n  aos-unit x",
  run: () => 0,
  ...s,
});

const PROGRAM: ProgramSpec = {
  name: "aos-unit",
  description: "Run a unit",
  version: "1.2.3",
  epilogue: "\nExit codes: 0, 1, 2.",
  internalHeading: "Internal commands:",
  commands: [
    spec({ name: "plan", configDir: true, options: [{ flags: "--json", description: "JSON" }] }),
    spec({
      name: "powerdown",
      args: [{ name: "<node>", description: "node name" }],
      options: [{ flags: "--timeout <sec>", description: "how long", default: "60" }],
    }),
    spec({
      name: "export",
      args: [{ name: "<target>", description: "what" }],
      options: [{ flags: "--image <node=source>", description: "images", repeatable: true }],
    }),
    spec({
      name: "startup",
      group: "internal",
      options: [{ flags: "--no-units", description: "network only" }],
    }),
    spec({
      name: "lease-hook",
      group: "internal",
      passThrough: true,
      args: [{ name: "[event...]", description: "dnsmasq's" }],
    }),
    spec({
      name: "snapshot",
      args: [{ name: "<action>", description: "a" }, { name: "[name]", description: "n" }],
    }),
  ],
};

const parse = (...argv: string[]) => parseArgv(PROGRAM, argv);
const command = (...argv: string[]) => {
  const p = parse(...argv);
  assert.equal(p.kind, "command", JSON.stringify(p));
  return p as Extract<typeof p, { kind: "command" }>;
};
const error = (...argv: string[]) => {
  const p = parse(...argv);
  assert.equal(p.kind, "error");
  return (p as { text: string }).text;
};

Deno.test("cli_parse: options in every spelling, defaults, negation, lists", () => {
  assert.deepEqual(command("plan", "-c", "/x", "--json").opts, { configDir: "/x", json: true });
  assert.deepEqual(command("plan", "--config-dir=/x", "-u", "lab1").opts, {
    configDir: "/x",
    unit: "lab1",
  });
  assert.deepEqual(command("powerdown", "main").opts, { timeout: "60" });
  assert.deepEqual(command("powerdown", "--timeout", "5", "main").args, ["main"]);
  assert.deepEqual(command("startup").opts, { units: true });
  assert.deepEqual(command("startup", "--no-units").opts, { units: false });
  assert.deepEqual(
    command("export", "kubevirt", "--image", "a=b", "--image=c=d").opts,
    { image: ["a=b", "c=d"] },
  );
  assert.deepEqual(command("snapshot", "list").args, ["list", undefined]);
  assert.deepEqual(command("snapshot", "save", "--", "-odd").args, ["save", "-odd"]);
});

Deno.test("cli_parse: the lease hook takes dnsmasq's argv as it comes", () => {
  const p = command("lease-hook", "add", "52:54:00:00:00:01", "10.0.0.2", "--weird");
  assert.deepEqual(p.args, [["add", "52:54:00:00:00:01", "10.0.0.2", "--weird"]]);
  assert.deepEqual(command("lease-hook", "-u", "x").args, [["-u", "x"]]);
});

Deno.test("cli_parse: errors say what is wrong, and near misses get a suggestion", () => {
  assert.equal(error("plna"), "error: unknown command 'plna'\n(Did you mean plan?)");
  assert.equal(error("zzzzzz"), "error: unknown command 'zzzzzz'");
  assert.equal(error("plan", "--bogus"), "error: unknown option '--bogus'");
  assert.equal(error("--bogus"), "error: unknown option '--bogus'");
  assert.equal(error("powerdown"), "error: missing required argument 'node'");
  assert.match(error("powerdown", "a", "b"), /too many arguments for 'powerdown'/);
  assert.equal(
    error("powerdown", "a", "--timeout"),
    "error: option '--timeout <sec>' argument missing",
  );
  assert.equal(error("plan", "--json=1"), "error: option '--json' takes no value");
});

Deno.test("cli_parse: help, version and no command", () => {
  assert.deepEqual(parse("-V"), { kind: "version", text: "1.2.3" });
  const top = parse("--help");
  assert.equal(top.kind, "help");
  const text = (top as { text: string }).text;
  assert.match(text, /^Usage: aos-unit \[options\] \[command\]/);
  assert.ok(text.indexOf("  plan [options]") < text.indexOf("Internal commands:"));
  assert.ok(text.indexOf("  startup [options]") > text.indexOf("Internal commands:"));
  assert.match(text, /Exit codes: 0, 1, 2\.$/);
  assert.equal(parse().kind, "bare");
  for (const argv of [["powerdown", "--help"], ["help", "powerdown"], ["powerdown", "x", "-h"]]) {
    const p = parse(...argv);
    assert.equal(p.kind, "help");
    const help = (p as { text: string }).text;
    assert.match(help, /^Usage: aos-unit powerdown \[options\] <node>/);
    assert.match(help, /--timeout <sec> +how long \(default: "60"\)/);
    assert.ok(help.endsWith("Example:\n  aos-unit x"), help);
  }
  assert.equal(parse("help", "nope").kind, "error");
});
