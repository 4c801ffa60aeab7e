import assert from "node:assert/strict";
import { copyRegular } from "./snapshot_files.ts";

Deno.test("copyRegular(): the same bytes, holes kept; never from a link or a FIFO, never onto one", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const from = `${dir}/overlay.qcow2`;
    const data = new Uint8Array(3 * 1024 * 1024 + 123);
    data.set([1, 2, 3], 10);
    data.set([9], 2 * 1024 * 1024 + 5000);
    Deno.writeFileSync(from, data);
    copyRegular(from, `${dir}/copy`);
    assert.deepEqual(Deno.readFileSync(`${dir}/copy`), data);
    const blocks = (Deno.statSync(`${dir}/copy`).blocks ?? 0) * 512;
    assert.ok(blocks <= 64 * 1024, `sparse: ${blocks} bytes allocated`);

    Deno.symlinkSync(from, `${dir}/link`);
    assert.throws(() => copyRegular(`${dir}/link`, `${dir}/a`), /symbolic link/);
    new Deno.Command("mkfifo", { args: [`${dir}/fifo`] }).outputSync();
    assert.throws(() => copyRegular(`${dir}/fifo`, `${dir}/b`), /not a regular file/);
    // A link planted where the copy goes: refused (O_EXCL), its target untouched.
    Deno.writeTextFileSync(`${dir}/victim`, "victim");
    Deno.symlinkSync(`${dir}/victim`, `${dir}/planted`);
    assert.throws(() => copyRegular(from, `${dir}/planted`), /exists/);
    assert.equal(Deno.readTextFileSync(`${dir}/victim`), "victim");
    assert.throws(() => copyRegular(from, `${dir}/c`, 1024), /more than 1024/);
    assert.throws(() => Deno.lstatSync(`${dir}/c`), "nothing left");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
