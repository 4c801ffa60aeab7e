/**
 * The root broker's runtime directory (src/host/runtime_dir.ts), as root: root's and sticky,
 * with a nodes/ of root's own, whatever the service user left in its place.
 */

import assert from "node:assert/strict";
import { ensureRuntimeDirs } from "../../src/host/runtime_dir.ts";
import { unitPaths } from "../../src/host/paths.ts";

const GID = 4242;

async function withDir(fn: (dir: string) => void | Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "aosu-rundir-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const pathsIn = (dir: string) =>
  unitPaths({ configDir: dir, stateDir: dir, logsDir: dir, runtimeDir: `${dir}/run` });

Deno.test({
  name: "ensureRuntimeDirs(): root's sticky directory, root's nodes/, nothing planted followed",
  ignore: Deno.uid() !== 0,
  fn: async (t) => {
    await t.step("made anew", () =>
      withDir((dir) => {
        ensureRuntimeDirs(pathsIn(dir), GID);
        const run = Deno.lstatSync(`${dir}/run`);
        assert.deepEqual([run.uid, run.gid, (run.mode ?? 0) & 0o7777], [0, GID, 0o1775]);
        const nodes = Deno.lstatSync(`${dir}/run/nodes`);
        assert.deepEqual([nodes.uid, nodes.gid, (nodes.mode ?? 0) & 0o7777], [0, 0, 0o755]);
      }));
    await t.step(
      "a link planted as nodes/ is moved aside, its target untouched",
      () =>
        withDir((dir) => {
          const target = `${dir}/precious`;
          Deno.mkdirSync(target, { mode: 0o700 });
          Deno.writeTextFileSync(`${target}/file`, "x");
          Deno.mkdirSync(`${dir}/run`);
          Deno.symlinkSync(target, `${dir}/run/nodes`);
          ensureRuntimeDirs(pathsIn(dir), GID);
          assert.ok(Deno.lstatSync(`${dir}/run/nodes`).isDirectory);
          assert.equal((Deno.statSync(target).mode ?? 0) & 0o777, 0o700);
          assert.equal(Deno.readTextFileSync(`${target}/file`), "x");
          const aside = [...Deno.readDirSync(`${dir}/run`)].map((e) => e.name).filter((n) =>
            n.startsWith(".nodes-")
          );
          assert.equal(aside.length, 1);
          assert.ok(Deno.lstatSync(`${dir}/run/${aside[0]}`).isSymlink);
        }),
    );
    await t.step(
      "a nodes/ of another owner is replaced; root's, with the guests' inside, kept",
      () =>
        withDir((dir) => {
          Deno.mkdirSync(`${dir}/run/nodes`, { recursive: true });
          Deno.chownSync(`${dir}/run/nodes`, 4243, 4243);
          ensureRuntimeDirs(pathsIn(dir), GID);
          assert.equal(Deno.lstatSync(`${dir}/run/nodes`).uid, 0);
          Deno.mkdirSync(`${dir}/run/nodes/main`);
          Deno.chownSync(`${dir}/run/nodes/main`, 61000, GID);
          ensureRuntimeDirs(pathsIn(dir), GID);
          assert.equal(Deno.lstatSync(`${dir}/run/nodes/main`).uid, 61000, "a node's own kept");
        }),
    );
    await t.step(
      "an older release's runtime directory (the service user's) is taken over in place",
      () =>
        withDir((dir) => {
          Deno.mkdirSync(`${dir}/run`);
          Deno.chownSync(`${dir}/run`, 4243, 4243);
          Deno.writeTextFileSync(`${dir}/run/readiness.json`, "{}");
          ensureRuntimeDirs(pathsIn(dir), GID);
          const run = Deno.lstatSync(`${dir}/run`);
          assert.deepEqual([run.uid, run.gid], [0, GID]);
          assert.equal(Deno.readTextFileSync(`${dir}/run/readiness.json`), "{}");
        }),
    );
  },
});
