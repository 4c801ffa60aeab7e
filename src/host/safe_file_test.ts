import assert from "node:assert/strict";
import {
  openAppend,
  OpenBlockedError,
  openWithin,
  readSmallFile,
  readSmallFileAsync,
  UnsafeFileError,
} from "./safe_file.ts";

/** What each kind of planted file gives: "ok:<text>" or the error's name. */
const PROBE = `
import { openAppend, readSmallFile } from ${JSON.stringify(import.meta.resolve("./safe_file.ts"))};
const dir = Deno.args[0];
const out = {};
for (const name of ["plain", "link", "fifo", "hard"]) {
  try {
    out["read " + name] = "ok:" + readSmallFile(dir + "/" + name, 1024);
  } catch (error) {
    out["read " + name] = error.name;
  }
  try {
    const f = openAppend(dir + "/" + name);
    f.close();
    out["append " + name] = "ok";
  } catch (error) {
    out["append " + name] = error.name;
  }
}
console.log(JSON.stringify(out));
`;

function plant(dir: string, secret: string): void {
  Deno.writeTextFileSync(`${dir}/plain`, "mine");
  Deno.symlinkSync(secret, `${dir}/link`);
  // Another file of one name, so that the link case is not caught by the name count.
  Deno.writeTextFileSync(`${secret}-2`, "SECRET");
  Deno.linkSync(`${secret}-2`, `${dir}/hard`);
  new Deno.Command("mkfifo", { args: [`${dir}/fifo`] }).outputSync();
}

const EXPECTED = {
  "read plain": "ok:mine",
  "append plain": "ok",
  "read link": "UnsafeFileError",
  "append link": "UnsafeFileError",
  "read fifo": "UnsafeFileError",
  "append fifo": "UnsafeFileError",
  "read hard": "UnsafeFileError",
  "append hard": "UnsafeFileError",
};

/** A directory with every kind of planted file, and a secret outside it. */
function plantedDir(): { top: string; dir: string; secret: string } {
  const top = Deno.makeTempDirSync();
  const dir = `${top}/dir`;
  Deno.mkdirSync(dir);
  // Outside the directory the child may read and write: what a link would leak.
  const secret = `${top}/secret`;
  Deno.writeTextFileSync(secret, "SECRET");
  plant(dir, secret);
  return { top, dir, secret };
}

Deno.test("safe files: links, FIFOs and hard links are refused, with path-scoped Deno permissions too", () => {
  const { top, dir, secret } = plantedDir();
  try {
    const probe = `${top}/probe.ts`;
    Deno.writeTextFileSync(probe, PROBE);
    for (
      const permissions of [
        ["-A"],
        // The case that matters: Deno resolves links itself when permissions name paths.
        [`--allow-read=${dir},${probe},${import.meta.dirname}/..`, `--allow-write=${dir}`],
      ]
    ) {
      const r = new Deno.Command(Deno.execPath(), {
        args: ["run", "-q", "--no-lock", ...permissions, probe, dir],
        stdout: "piped",
        stderr: "piped",
      }).outputSync();
      const stderr = new TextDecoder().decode(r.stderr);
      assert.equal(r.code, 0, stderr);
      const seen = JSON.parse(new TextDecoder().decode(r.stdout));
      assert.deepEqual(seen, EXPECTED, `with ${permissions.join(" ")}`);
    }
    assert.equal(Deno.readTextFileSync(secret), "SECRET", "the secret is untouched");
    // In this process too (tests run with -A).
    assert.equal(readSmallFile(`${dir}/plain`, 1024), "mine");
    assert.throws(() => openAppend(`${dir}/hard`), /hard link/);
  } finally {
    Deno.removeSync(top, { recursive: true });
  }
});

Deno.test("readSmallFileAsync: the same refusals; an open that blocks is refused in time", async () => {
  const { top, dir } = plantedDir();
  try {
    assert.equal(await readSmallFileAsync(`${dir}/plain`, 1024), "mine");
    assert.equal(await readSmallFileAsync(`${dir}/none`, 1024), undefined);
    for (const name of ["link", "fifo", "hard"]) {
      await assert.rejects(readSmallFileAsync(`${dir}/${name}`, 1024), UnsafeFileError, name);
    }
    await assert.rejects(readSmallFileAsync(`${dir}/plain`, 2), /more than 2/);
    // What a FIFO swapped in between the look and the open does to the open itself.
    const started = performance.now();
    await assert.rejects(openWithin(`${dir}/fifo`), OpenBlockedError);
    assert.ok(performance.now() - started < 5000, "refused at its deadline");
    // A writer releases the blocked open (its thread), which then closes what it got.
    const writer = await Deno.open(`${dir}/fifo`, { write: true });
    writer.close();
  } finally {
    Deno.removeSync(top, { recursive: true });
  }
});
