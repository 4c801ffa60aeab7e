import assert from "node:assert/strict";
import { quoteArgv } from "../base/quote.ts";
import { CommandError, createRunner, MissingToolError } from "./runner.ts";

const DENO = Deno.execPath();

Deno.test("runner: returns stdout of a successful command and records it", async () => {
  const runner = createRunner();
  const r = await runner.run([DENO, "eval", "console.log('hi')"]);
  assert.equal(r.stdout, "hi\n");
  assert.equal(runner.history.length, 1);
});

Deno.test("runner: a non-zero exit throws with argv, code and the tail of stderr", async () => {
  const runner = createRunner();
  await assert.rejects(
    runner.run([DENO, "eval", "console.error('boom'); Deno.exit(3)"]),
    (e: unknown) => {
      assert.ok(e instanceof CommandError);
      assert.match(e.message, /^Command failed: .*deno eval .* exited with code 3: boom$/);
      assert.equal(e.exitCode, 1);
      return true;
    },
  );
});

Deno.test("runner: accepted exit codes do not throw", async () => {
  const r = await createRunner().run([DENO, "eval", "Deno.exit(1)"], { okCodes: [0, 1] });
  assert.equal(r.code, 1);
});

Deno.test("runner: a timeout kills the process and reports 124", async () => {
  await assert.rejects(
    createRunner().run([DENO, "eval", "setTimeout(() => {}, 60000)"], { timeoutMs: 300 }),
    (e: unknown) =>
      e instanceof CommandError && e.result.code === 124 &&
      /timed out after \d+ ms/.test(e.message),
  );
});

Deno.test("runner: a missing tool names the Debian package and is permanent (exit 2)", async () => {
  await assert.rejects(
    createRunner().run(["/nonexistent/sbin/nft", "list", "ruleset"]),
    (e: unknown) =>
      e instanceof MissingToolError && e.exitCode === 2 &&
      e.message ===
        'Cannot run /nonexistent/sbin/nft: not installed (install the Debian package "nftables")',
  );
});

Deno.test("runner: stdin is passed and output is read while waiting (no pipe deadlock)", async () => {
  const big = "x".repeat(1 << 20);
  const r = await createRunner().run([
    DENO,
    "eval",
    "const t = await new Response(Deno.stdin.readable).text(); console.log(t.length); console.error('e'.repeat(1<<20))",
  ], { stdin: big });
  assert.equal(r.stdout.trim(), String(1 << 20));
});

Deno.test("quoteArgv() quotes only what needs it", () => {
  assert.equal(quoteArgv(["ip", "link", "set", "a b", "it's"]), `ip link set 'a b' 'it'\\''s'`);
});
