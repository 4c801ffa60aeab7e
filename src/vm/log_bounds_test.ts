import assert from "node:assert/strict";
import { createRunner } from "../host/runner.ts";
import { boundLog } from "./log_bounds.ts";

const line = "AOSTEST flood 0123456789abcdef\n";

Deno.test("boundLog() keeps the log and its one old copy under the cap", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const log = `${dir}/main-serial.log`;
    Deno.writeTextFileSync(log, line.repeat(10));
    assert.equal(await boundLog(createRunner(), log, 16384), undefined, "small logs stay");
    Deno.writeTextFileSync(log, line.repeat(1000)); // 31 KB
    const r = await boundLog(createRunner(), log, 16384);
    assert.ok(r, "rotated");
    assert.ok(Deno.statSync(log).size < 4096, `what is left is less than a block (${r.how})`);
    const old = Deno.readTextFileSync(`${log}.1`);
    assert.ok(old.length <= 8192 && old.length > 0);
    assert.ok(old.endsWith(line), "the newest kept");
    // Appending goes on, as QEMU's O_APPEND writes do.
    Deno.writeTextFileSync(log, "after\n", { append: true });
    assert.ok(Deno.readTextFileSync(log).endsWith("after\n"));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("boundLog() cuts even when the copy cannot be made, and never follows a link", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const log = `${dir}/main-serial.log`;
    Deno.writeTextFileSync(log, line.repeat(1000));
    // FILE.1 a directory: the copy's rename fails, as a full disk would fail its write.
    Deno.mkdirSync(`${log}.1/x`, { recursive: true });
    const r = await boundLog(createRunner(), log, 16384);
    assert.ok(r?.copyError, "the copy failed");
    assert.ok(Deno.statSync(log).size < 4096, "the cap held anyway");
    Deno.removeSync(log);
    Deno.symlinkSync("/etc/hostname", log);
    assert.equal(await boundLog(createRunner(), log, 1), undefined, "a link is left alone");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("boundLog() makes a deleted log again, empty (a node binds its serial log in)", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const log = `${dir}/main-serial.log`;
    assert.equal(await boundLog(createRunner(), log, 16384), undefined);
    assert.equal(Deno.lstatSync(log).size, 0);
    assert.equal(Deno.lstatSync(log).mode! & 0o777, 0o660, "the node's QEMU (the group) appends");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
