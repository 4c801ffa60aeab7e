import assert from "node:assert/strict";
import { firstA, query } from "../lib/dns_probe.ts";

Deno.test("the tests' DNS probe builds a question and reads the first A record", () => {
  const q = query("main.aos-unit", 0x0102);
  assert.deepEqual([...q.subarray(0, 4)], [1, 2, 1, 0]);
  // An answer: the question, then one A record with a compressed name.
  const answer = new Uint8Array([
    ...q.subarray(0, 6),
    0,
    1,
    0,
    0,
    0,
    0,
    ...q.subarray(12),
    0xc0,
    12,
    0,
    1,
    0,
    1,
    0,
    0,
    0,
    60,
    0,
    4,
    10,
    200,
    1,
    100,
  ]);
  assert.equal(firstA(answer), "10.200.1.100");
});
