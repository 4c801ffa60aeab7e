import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { md5Hex, sha256Hex } from "./hash.ts";

const TEXTS = [
  "",
  "a",
  "abc",
  "aos-unit pool main",
  "aos-unit link lab1 0123456789abcdef0123456789abcdef",
  "é ünïcødé ✓",
  "x".repeat(55),
  "x".repeat(56),
  "x".repeat(63),
  "x".repeat(64),
  "x".repeat(65),
  "y".repeat(1000),
  JSON.stringify({ a: [1, 2, 3], b: "ExecStart" }).repeat(40),
];

Deno.test("md5Hex and sha256Hex agree with node:crypto, at every padding boundary", () => {
  for (const text of TEXTS) {
    assert.equal(md5Hex(text), createHash("md5").update(text).digest("hex"), text);
    assert.equal(sha256Hex(text), createHash("sha256").update(text).digest("hex"), text);
  }
});
