import assert from "node:assert/strict";
import { collectSpooled, type FailureRecord, lastFailures, spoolFailure } from "./failures.ts";
import { UnsafeFileError } from "../host/safe_file.ts";

function record(over: Partial<FailureRecord> = {}): FailureRecord {
  return {
    time: "2026-12-01T10:00:00.000Z",
    node: "secondary",
    unit: "aos-node-secondary.service",
    result: "signal",
    exit_code: "killed",
    exit_status: "KILL",
    restarts: null,
    final: false,
    journal: [],
    serial_tail: ["AOSTEST boot name=secondary count=1"],
    ...over,
  };
}

function logLines(dir: string): FailureRecord[] {
  return Deno.readTextFileSync(`${dir}/vm-failures.log`).trim().split("\n").map((l) =>
    JSON.parse(l)
  );
}

Deno.test("a node's spooled crash records move into vm-failures.log, naming that node only", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const spool = `${dir}/failures.spool`;
    assert.equal(collectSpooled(spool, dir, "secondary", "aos-node-secondary.service"), 0);
    spoolFailure(spool, record());
    // What a broken-out QEMU might write into its own spool: another node, a final record,
    // a journal, fields of any size, a torn line.
    const forged = {
      ...record({ node: "main", unit: "aos-node-main.service", final: true, restarts: 9 }),
      journal: ["forged"],
      result: "x".repeat(10_000),
      serial_tail: Array.from({ length: 40 }, () => "y".repeat(1200)),
      extra: "field",
    };
    Deno.writeTextFileSync(spool, JSON.stringify(forged) + '\n{"torn', { append: true });
    assert.equal(collectSpooled(spool, dir, "secondary", "aos-node-secondary.service"), 2);
    assert.ok(Deno.readTextFileSync(spool).length > 0, "a small spool stays; the read mark moves");
    const [first, second] = logLines(dir);
    assert.deepEqual(first, record());
    assert.equal(second!.node, "secondary");
    assert.equal(second!.unit, "aos-node-secondary.service");
    assert.equal(second!.final, false);
    assert.equal(second!.restarts, null);
    assert.deepEqual(second!.journal, []);
    assert.equal(second!.result.length, 64);
    assert.equal(second!.serial_tail.length, 30);
    assert.ok(second!.serial_tail.every((l) => l.length <= 1024));
    assert.equal("extra" in second!, false);
    assert.equal(lastFailures(dir).get("main"), undefined, "nothing recorded for main");
    assert.equal(collectSpooled(spool, dir, "secondary", "aos-node-secondary.service"), 0);
    // The torn line, completed later, and a new record: taken once each, in order.
    Deno.writeTextFileSync(spool, '"}\n', { append: true });
    spoolFailure(spool, record({ time: "next" }));
    assert.equal(collectSpooled(spool, dir, "secondary", "aos-node-secondary.service"), 1);
    assert.equal(logLines(dir).at(-1)!.time, "next");
    assert.equal(collectSpooled(spool, dir, "secondary", "aos-node-secondary.service"), 0);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a spool an older release left mid-move is finished; a link planted as the spool is refused unread", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const spool = `${dir}/failures.spool`;
    spoolFailure(`${spool}.collecting`, record({ time: "earlier" }));
    spoolFailure(spool, record({ time: "later" }));
    assert.equal(collectSpooled(spool, dir, "secondary", "aos-node-secondary.service"), 2);
    assert.equal(collectSpooled(spool, dir, "secondary", "aos-node-secondary.service"), 0);
    assert.deepEqual(logLines(dir).map((r) => r.time), ["earlier", "later"]);
    const secret = `${dir}/secret`;
    Deno.writeTextFileSync(secret, JSON.stringify(record({ time: "secret" })) + "\n");
    Deno.removeSync(spool);
    Deno.symlinkSync(secret, spool);
    assert.throws(
      () => collectSpooled(spool, dir, "secondary", "aos-node-secondary.service"),
      UnsafeFileError,
    );
    assert.throws(() => spoolFailure(spool, record()), UnsafeFileError);
    assert.equal(logLines(dir).length, 2);
    assert.ok(Deno.readTextFileSync(secret).includes("secret"), "the link's target is untouched");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a flooded spool gives at most five records a pass; a directory planted there is cleared", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const spool = `${dir}/failures.spool`;
    Deno.writeTextFileSync(spool, "{}\n".repeat(40_000));
    assert.equal(collectSpooled(spool, dir, "secondary", "aos-node-secondary.service"), 5);
    assert.equal(Deno.statSync(spool).size, 0, "read to its end past 64 KiB: emptied");
    Deno.mkdirSync(`${spool}.collecting/deeper`, { recursive: true });
    spoolFailure(spool, record());
    assert.equal(collectSpooled(spool, dir, "secondary", "aos-node-secondary.service"), 1);
    assert.equal(logLines(dir).length, 6);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
