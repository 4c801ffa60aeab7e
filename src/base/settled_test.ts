import assert from "node:assert/strict";
import { allSettledOrThrow } from "./settled.ts";

Deno.test("allSettledOrThrow: every promise settles before the first failure is thrown", async () => {
  assert.deepEqual(await allSettledOrThrow([Promise.resolve(1), Promise.resolve(2)]), [1, 2]);
  let slowDone = false;
  const slow = new Promise<number>((r) => setTimeout(() => (slowDone = true, r(3)), 30));
  await assert.rejects(
    allSettledOrThrow([Promise.reject(new Error("first")), slow, Promise.reject(new Error("b"))]),
    /first/,
  );
  assert.ok(slowDone, "the slow one had settled");
});
