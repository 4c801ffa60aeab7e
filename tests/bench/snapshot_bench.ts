/**
 * Snapshot benchmark (root; in namespaces it creates): save of a running unit of 1, 2
 * and 4 stock-like test guests (the whole command, and the guests' pause), the restore's
 * file steps (stage, swap, finish) with the guests off, the boot after it, and the disk
 * 10 snapshots of the 2-node unit take. Prints numbers only. The systemd side of a
 * restore (stop and start of aos-unit.service) is in tier 3's output.
 */

import { preparationOf } from "../../src/plan/preparation.ts";
import { createRunner } from "../../src/host/runner.ts";
import { logger } from "../../src/log.ts";
import { snapshotsDir } from "../../src/plan/snapshot.ts";
import type { Plan } from "../../src/plan/types.ts";
import { prepareFiles } from "../../src/vm/prepare.ts";
import { systemPowerdown } from "../../src/vm/qmp.ts";
import { buildGuests } from "../lib/aos.ts";
import { NetBed } from "../lib/netbed.ts";
import { type Background, run } from "../lib/proc.ts";
import { SerialConsole } from "../lib/serial.ts";

const NAMES = ["main", "secondary", "third", "fourth"];

function config(n: number): string {
  return "unit:\n  node_configs:\n" +
    NAMES.slice(0, n).map((name) => `    - { name: ${name}, cpu: 1, mem: 256M }\n`).join("");
}

async function timed(argv: string[]): Promise<[number, string]> {
  const started = performance.now();
  const r = await run(argv);
  if (r.code !== 0) throw new Error(`${argv.join(" ")}: ${r.code} ${r.stderr}`);
  return [Math.round(performance.now() - started), r.stdout];
}

/** One unit of `n` guests: boots them and returns what the measurements need. */
async function withUnit(n: number, images: string, fn: (u: Running) => Promise<void>) {
  const bed = await NetBed.open("snapb", config(n), `ENABLE_KVM="false"\n`);
  const procs: Background[] = [];
  const consoles: SerialConsole[] = [];
  try {
    for (const name of NAMES.slice(0, n)) {
      await Deno.copyFile(
        `${images}/aos-vm-${name === "main" ? "main" : "secondary"}-amd64-stock.qcow2`,
        `${bed.unit.stateDir}/aos-vm-${name}-amd64.qcow2`,
      );
    }
    const r = await bed.unit.cli("startup", "--no-units");
    if (r.code !== 0) throw new Error(r.stderr);
    const plan = await bed.unit.plan();
    await prepareFiles(createRunner(), preparationOf(plan), logger("bench"));
    const boot = async () => {
      const started = performance.now();
      await Promise.all(plan.nodes.map(async (node) => {
        Deno.mkdirSync(node.runDir, { recursive: true });
        procs.push(bed.topo.procs.start(bed.topo.inNs(bed.topo.host, node.qemu), "/dev/null"));
        const c = await SerialConsole.connect(node.serialSocket);
        consoles.push(c);
        await c.expect(/^AOSTEST boot name=/, 120_000);
      }));
      return Math.round(performance.now() - started);
    };
    const off = async () => {
      for (const node of plan.nodes) await systemPowerdown(node.qmpSocket).catch(() => {});
      for (const p of procs.splice(0)) await bed.topo.procs.stop(p);
      for (const c of consoles.splice(0)) c.close();
      for (const node of plan.nodes) Deno.removeSync(node.runDir, { recursive: true });
    };
    await boot();
    await fn({ bed, plan, boot, off });
    await off();
  } finally {
    for (const c of consoles) c.close();
    await bed.close();
  }
}

interface Running {
  bed: NetBed;
  plan: Plan;
  boot(): Promise<number>;
  off(): Promise<void>;
}

const work = await Deno.makeTempDir({ prefix: "aosu-snapbench-" });
try {
  await buildGuests(`${work}/images`, ["main", "secondary"]);
  for (const n of [1, 2, 4]) {
    await withUnit(n, `${work}/images`, async ({ bed, plan, boot, off }) => {
      await new Promise((r) => setTimeout(r, 3000)); // the guests settle after boot
      const [saveMs, out] = await timed(bed.unit.argv(["snapshot", "save", "s0"]));
      const pause = /paused (\d+) ms/.exec(out)?.[1];
      await off();
      const started = performance.now();
      for (const phase of ["stage", "swap", "finish"]) {
        await timed(bed.unit.argv(["snapshot", "restore", "s0", "--phase", phase]));
      }
      const filesMs = Math.round(performance.now() - started);
      const bootMs = await boot();
      console.log(
        `${n} node(s): save ${saveMs} ms (guests paused ${pause} ms); restore files ${filesMs} ms, boot ${bootMs} ms`,
      );
      if (n !== 2) return;
      for (let i = 1; i <= 10; i++) {
        await timed(bed.unit.argv(["snapshot", "save", `s${i}`]));
      }
      const du = await run(["du", "-sk", snapshotsDir(plan.paths)]);
      const kib = du.stdout.trim().split("\n").reduce(
        (sum, l) => sum + Number(l.split("\t")[0]),
        0,
      );
      const overlays = plan.nodes.reduce(
        (sum, node) => sum + (Deno.statSync(node.overlay).blocks ?? 0) / 2,
        0,
      );
      console.log(
        `2 nodes, 11 snapshots: ${(kib / 1024).toFixed(1)} MiB on disk (${
          (kib / 11 / 1024).toFixed(1)
        } MiB each; the overlays ${(overlays / 1024).toFixed(1)} MiB; base images never copied)`,
      );
    });
  }
} finally {
  await Deno.remove(work, { recursive: true }).catch(() => {});
}
