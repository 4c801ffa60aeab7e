/**
 * Tier 2 snapshot steps on running stock-like guests (QEMU as the node units run it,
 * no systemd): a save at one instant, a round trip through reboots, failures injected
 * (a file size limit for a full disk, a missing file), bad names, another plan. The
 * systemd side of a restore (stop, swap, start) is tier 3's.
 */

import assert from "node:assert/strict";
import type { Plan } from "../../src/plan/types.ts";
import type { DevUnit } from "./aos.ts";
import { run } from "./proc.ts";
import type { SerialConsole } from "./serial.ts";

export interface SnapshotBed {
  unit: DevUnit;
  work: string;
  consoles: Map<string, SerialConsole>;
  boot(): Promise<void>;
  powerOff(): Promise<void>;
  plan(): Plan;
}

const NODES = ["main", "secondary"];

/** Both guests' sequence numbers, read at (nearly) the same moment: main minus secondary. */
async function seqDifference(b: SnapshotBed): Promise<number> {
  const [a, c] = await Promise.all(NODES.map(async (n) => {
    const m = await b.consoles.get(n)!.probe(
      `echo "AOSTEST seq now=$(aos-probe seq-read)"`,
      /AOSTEST seq now=(\d+)/,
    );
    return Number(m[1]);
  }));
  return a! - c!;
}

/** What a restore changes on disk, to show that a failed one changed nothing. */
function fingerprint(plan: Plan): string {
  return plan.nodes.map((n) => {
    const o = Deno.statSync(n.overlay);
    return `${n.name}:${o.size}:${o.mtime?.getTime()}:${o.ino}`;
  }).join(" ");
}

function leftovers(plan: Plan): string[] {
  return plan.nodes.flatMap((n) =>
    [...Deno.readDirSync(n.dir)].map((e) => e.name).filter((f) =>
      /\.(restore|pre-restore|tmp)$|pending/.test(f)
    ).map((f) => `${n.name}/${f}`)
  );
}

export async function snapshotSteps(t: Deno.TestContext, b: SnapshotBed): Promise<void> {
  const { unit } = b;
  const limited = (fsize: number, ...args: string[]) =>
    run(["prlimit", `--fsize=${fsize}`, "--", ...unit.argv(args)]);
  let before = 0;
  let after = 0;

  await t.step("snapshot save on the running unit: both guests at one instant", async () => {
    for (const n of NODES) {
      const c = b.consoles.get(n)!;
      assert.equal(
        (await c.probe("aos-probe efivar saved", /AOSTEST efivar value=(\S+)/))[1],
        "saved",
      );
      await c.probe("aos-probe seq-start", /AOSTEST seq started/);
    }
    await new Promise((r) => setTimeout(r, 1500));
    before = await seqDifference(b);
    const r = await unit.cli("snapshot", "save", "provisioned");
    assert.equal(r.code, 0, r.stderr);
    console.log(r.stdout.trim());
    assert.match(
      r.stdout,
      /Saved snapshot provisioned: 2 node\(s\), running \(guests paused \d+ ms\)/,
    );
    after = await seqDifference(b);
    assert.deepEqual(leftovers(b.plan()), [], "the pending overlays are committed back");
    const list = await unit.cli("snapshot", "list", "--json");
    const [s] = JSON.parse(list.stdout);
    assert.equal(s.name, "provisioned");
    assert.equal(s.nodes, 2);
    assert.ok(s.diskBytes > 0);
    assert.equal((await unit.cli("snapshot", "save", "provisioned")).code, 2, "a name taken");
    assert.equal((await unit.cli("snapshot", "save", "../x")).code, 2, "an invalid name");
  });

  await t.step("a save that runs out of space leaves nothing and the guests running", async () => {
    const r = await limited(64 * 1024, "snapshot", "save", "too-big");
    assert.equal(r.code, 1, `exit 1: ${r.stderr}`);
    assert.equal(JSON.parse((await unit.cli("snapshot", "list", "--json")).stdout).length, 1);
    assert.deepEqual(leftovers(b.plan()), []);
    const snapshots = [...Deno.readDirSync(`${unit.stateDir}/snapshots`)].map((e) => e.name);
    assert.deepEqual(snapshots.filter((f) => f !== ".lock"), ["provisioned"]);
    for (const n of b.plan().nodes) {
      const m = await b.consoles.get(n.name)!.probe(
        `echo "AOSTEST seq now=$(aos-probe seq-read)"`,
        /AOSTEST seq now=(\d+)/,
      );
      assert.ok(Number(m[1]) > 0, `${n.name} still writes`);
    }
  });

  await t.step("the guests go on (reboots, a new UEFI value), then power off", async () => {
    for (const n of NODES) {
      const c = b.consoles.get(n)!;
      await c.probe("aos-probe seq-stop", /AOSTEST seq stopped/);
      await c.probe("aos-probe efivar later", /AOSTEST efivar value=later/);
      await c.probe("aos-probe reboot", /AOSTEST boot name=\S+ count=2$/, 90_000);
      // Up again (acpid runs before the network comes up): the power button works.
      await c.expect(n === "main" ? /^AOSTEST static ip=/ : /^AOSTEST lease ip=/, 60_000);
    }
    await b.powerOff();
  });

  await t.step(
    "a restore that fails midway (disk full, a missing file) changes nothing",
    async () => {
      const plan = b.plan();
      const was = fingerprint(plan);
      const full = await limited(
        64 * 1024,
        "snapshot",
        "restore",
        "provisioned",
        "--phase",
        "stage",
      );
      assert.equal(full.code, 1, `a full disk: exit 1: ${full.stderr}`);
      const disk = `${unit.stateDir}/snapshots/provisioned/secondary.qcow2`;
      Deno.renameSync(disk, `${disk}.away`);
      try {
        const r = await unit.cli("snapshot", "restore", "provisioned", "--phase", "stage");
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, /lacks .*secondary\.qcow2/);
      } finally {
        Deno.renameSync(`${disk}.away`, disk);
      }
      assert.equal(fingerprint(plan), was, "the current disks are untouched");
      assert.deepEqual(leftovers(plan), []);
      for (const name of ["nothing-here", "no/such"]) {
        assert.equal((await unit.cli("snapshot", "restore", name, "--phase", "stage")).code, 2);
      }
    },
  );

  await t.step(
    "a snapshot from another plan (an image replaced) is refused with exit 2",
    async () => {
      const image = b.plan().nodes[0]!.image.path;
      const st = Deno.statSync(image);
      Deno.utimeSync(image, st.atime!, new Date(st.mtime!.getTime() + 1000));
      try {
        const r = await unit.cli("snapshot", "restore", "provisioned", "--phase", "stage");
        assert.equal(r.code, 2, r.stderr);
        assert.match(r.stderr, /node main: image .* changed since the snapshot/);
      } finally {
        Deno.utimeSync(image, st.atime!, st.mtime!);
      }
    },
  );

  await t.step("restore: both boot as saved (counters, UEFI, one instant, addresses)", async () => {
    for (const phase of ["stage", "swap", "finish"]) {
      const r = await unit.cli("snapshot", "restore", "provisioned", "--phase", phase);
      assert.equal(r.code, 0, `${phase}: ${r.stderr}`);
    }
    assert.deepEqual(leftovers(b.plan()), []);
    await b.boot();
    const seq = new Map<string, number>();
    for (const n of NODES) {
      const c = b.consoles.get(n)!;
      await c.expect(new RegExp(`^AOSTEST boot name=${n} count=2$`), 90_000, `${n}'s boot`);
      await c.expect(/^AOSTEST efivar value=saved$/, 10_000, `${n}'s UEFI variable`);
      seq.set(n, Number((await c.expect(/^AOSTEST seq value=(\d+)$/, 10_000))[1]));
    }
    const restored = seq.get("main")! - seq.get("secondary")!;
    console.log(
      `seq difference main - secondary: ${before} before the save, ${after} after, ${restored} restored`,
    );
    assert.ok(
      restored >= Math.min(before, after) - 1 && restored <= Math.max(before, after) + 1,
      `captured at one instant: ${restored} within ${before}..${after} (one write either way)`,
    );
    await b.consoles.get("main")!.expect(/^AOSTEST static ip=10\.0\.0\.100 /, 60_000);
    await b.consoles.get("secondary")!.expect(
      /^AOSTEST main-reached ok ip=10\.0\.0\.100 /,
      60_000,
      "the secondary reaching main again",
    );
    const del = await unit.cli("snapshot", "delete", "provisioned");
    assert.equal(del.code, 0, del.stderr);
    assert.deepEqual(
      [...Deno.readDirSync(`${unit.stateDir}/snapshots`)].map((e) => e.name),
      [".lock"],
    );
    assert.equal((await unit.cli("snapshot", "delete", "provisioned")).code, 2, "gone");
  });
}
