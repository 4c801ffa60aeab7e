import assert from "node:assert/strict";
import { Waker } from "./waker.ts";

// A lost wake shows as a wait that runs to its long timeout (60 s); a kept one ends at once.
// The bound between them (30 s) holds however busy the machine is.
const LONG = 60_000;
const PROMPT = 30_000;

Deno.test("Waker: a wake ends the wait, or the next one when it came in between", async () => {
  const w = new Waker();
  const t0 = performance.now();
  setTimeout(() => w.wake(), 20);
  await w.wait(LONG);
  assert.ok(performance.now() - t0 < PROMPT);
  w.wake();
  const t1 = performance.now();
  await w.wait(LONG);
  assert.ok(performance.now() - t1 < PROMPT, "a wake before the wait is not lost");
  const t2 = performance.now();
  await w.wait(30);
  assert.ok(performance.now() - t2 >= 25, "without a wake, the time passes");
});

Deno.test("Waker: one wake ends every concurrent wait", async () => {
  const w = new Waker();
  const t0 = performance.now();
  setTimeout(() => w.wake(), 20);
  await Promise.all([w.wait(LONG), w.wait(LONG), w.wait(LONG)]);
  assert.ok(performance.now() - t0 < PROMPT, "no wait was left to its timeout");
  // A timed-out wait does not take a later waiter's registration with it.
  const short = w.wait(10);
  const long = w.wait(LONG);
  await short;
  const t1 = performance.now();
  setTimeout(() => w.wake(), 10);
  await long;
  assert.ok(performance.now() - t1 < PROMPT);
});
