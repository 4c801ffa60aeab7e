/**
 * Snapshots with memory (aos-unit(8), SNAPSHOTS): units of 1, 2 and 4 test-guest nodes
 * (512 MiB each) on the installed package in a test bed. For each it prints:
 * - `snapshot save --memory`: the longest pause a guest saw (as the command prints it),
 *   and the whole command;
 * - `snapshot restore` of it with the unit running before, from the command to READY
 *   (the command returns at READY), and that no guest booted;
 * - the snapshot's size on disk.
 * It asserts no time.
 *
 *   bash tests/bench/run.sh memsnap
 *   BENCH_SUITES=trixie BENCH_NODES=2 bash tests/bench/run.sh memsnap
 */

import { waitFor } from "../lib/proc.ts";
import { type BedShell, benchCounts, benchReleases } from "./bed_install.ts";

type Suite = "bookworm" | "trixie";
const SUITES = (Deno.env.get("BENCH_SUITES") ?? "bookworm,trixie").split(",") as Suite[];
const COUNTS = (Deno.env.get("BENCH_NODES") ?? "1,2,4").split(",").map(Number);
const NODES = ["n1", "n2", "n3", "n4"];

type Sh = BedShell;

function config(count: number): string {
  return "unit:\n  node_configs:\n" +
    NODES.slice(0, count).map((n) => `    - { name: ${n}, cpu: 1, mem: 512M }\n`).join("");
}

/** Until the unit says every node runs. */
async function ready(sh: Sh, count: number): Promise<void> {
  const pattern = new RegExp(`^Running:( n\\d=\\S+){${count}}$`);
  await waitFor(
    "READY",
    async () =>
      pattern.test(await sh("systemctl show -p StatusText --value aos-unit")) || undefined,
    300_000,
    100,
  );
}

/** Every guest's boots so far (serial-log markers). */
async function boots(sh: Sh, count: number): Promise<number> {
  const counts = await Promise.all(
    NODES.slice(0, count).map((n) =>
      sh(`grep -c 'AOSTEST boot' /var/log/aos-unit/${n}-serial.log || true`)
    ),
  );
  return counts.reduce((sum, c) => sum + Number(c || "0"), 0);
}

async function timed(sh: Sh, script: string): Promise<[number, string]> {
  const started = performance.now();
  const out = await sh(script);
  return [Math.round(performance.now() - started), out];
}

async function benchCount(sh: Sh, count: number): Promise<[string, string][]> {
  await sh(`printf '%s' '${config(count)}' > /etc/aos-unit/unit_config.yaml`);
  await sh("systemctl start aos-unit");
  await ready(sh, count);
  await new Promise((r) => setTimeout(r, 3000)); // the guests settle after boot
  const [saveMs, saved] = await timed(sh, "aos-unit snapshot save --memory bench");
  const pause = /paused (\d+) ms/.exec(saved)?.[1] ?? "?";
  const kib = Number((await sh("du -sk /var/lib/aos-unit/snapshots/bench")).split("\t")[0]);
  const before = await boots(sh, count);
  const [restoreMs] = await timed(sh, "aos-unit snapshot restore bench");
  await ready(sh, count);
  const booted = (await boots(sh, count)) - before;
  await sh("aos-unit snapshot delete bench");
  await sh("systemctl stop aos-unit && rm -rf /var/lib/aos-unit/nodes/* /var/lib/aos-unit/dhcp/*");
  const label = `${count} node(s) of 512 MiB`;
  return [
    [`${label}: save --memory, longest guest pause`, `${pause} ms`],
    [`${label}: save --memory, the whole command`, `${saveMs} ms`],
    [`${label}: restore, command -> READY`, `${restoreMs} ms`],
    [`${label}: guests booted by the restore`, String(booted)],
    [`${label}: size on disk`, `${(kib / 1024).toFixed(1)} MiB`],
  ];
}

function benchSuite(suite: Suite, work: string, deb: string) {
  return benchCounts(
    { suite, work, deb, prefix: "bm", nodes: NODES },
    COUNTS,
    async (sh) => [
      ["QEMU", /version (\S+)/.exec(await sh("qemu-system-x86_64 --version"))?.[1] ?? "?"],
    ],
    benchCount,
  );
}

await benchReleases("memsnap", SUITES, NODES, benchSuite);
