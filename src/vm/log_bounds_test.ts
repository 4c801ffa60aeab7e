import assert from "node:assert/strict";
import { boundLog } from "./log_bounds.ts";

Deno.test("boundLog() keeps the log and its one old copy under the cap", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const log = `${dir}/main-serial.log`;
    const line = "AOSTEST flood 0123456789abcdef\n";
    Deno.writeTextFileSync(log, line.repeat(10));
    assert.equal(boundLog(log, 4096), false, "small logs stay");
    Deno.writeTextFileSync(log, line.repeat(200)); // 6.4 KB
    assert.equal(boundLog(log, 4096), true);
    assert.equal(Deno.statSync(log).size, 0);
    const old = Deno.readTextFileSync(`${log}.1`);
    assert.ok(old.length <= 4096 && old.length > 0);
    assert.ok(old.endsWith(line) && old.startsWith("AOSTEST"), "whole lines, the newest kept");
    // Appending goes on at the start, as QEMU's O_APPEND writes do.
    Deno.writeTextFileSync(log, "after\n", { append: true });
    assert.equal(Deno.readTextFileSync(log), "after\n");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
