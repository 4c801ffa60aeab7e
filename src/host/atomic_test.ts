import assert from "node:assert/strict";
import { isSymlink, writeFileAtomic } from "./atomic.ts";

Deno.test("writeFileAtomic() replaces the file whole and leaves no temporary file", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const file = `${dir}/leases.json`;
    writeFileAtomic(file, "one\n");
    writeFileAtomic(file, "two\n", 0o640);
    assert.equal(Deno.readTextFileSync(file), "two\n");
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["leases.json"]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("writeFileAtomic() never writes through a planted symlink", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const victim = `${dir}/victim`;
    Deno.writeTextFileSync(victim, "precious\n");
    Deno.symlinkSync(victim, `${dir}/network.conf`);
    assert.ok(isSymlink(`${dir}/network.conf`));
    writeFileAtomic(`${dir}/network.conf`, "BRIDGE_NAME=aosbr\n");
    assert.equal(Deno.readTextFileSync(victim), "precious\n", "the symlink's target is untouched");
    assert.ok(!isSymlink(`${dir}/network.conf`), "the link itself was replaced");
    assert.equal(Deno.readTextFileSync(`${dir}/network.conf`), "BRIDGE_NAME=aosbr\n");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
