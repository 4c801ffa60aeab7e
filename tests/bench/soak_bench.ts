/**
 * The soak: two nodes for BENCH_SOAK_MIN minutes (default 30) while the uplink
 * flaps every 10 s, a node's QEMU is killed every 2 minutes and `aos-unit
 * status` runs every second. Prints the memory of every aos-unit process
 * each minute, then the slope of the total after the first minutes (it must
 * be flat: no growth).
 *
 *   bash tests/bench/run.sh soak
 *   BENCH_SOAK_MIN=5 BENCH_SUITES=trixie bash tests/bench/run.sh soak
 */

import { buildGuests, ROOT } from "../lib/aos.ts";
import { Bed } from "../lib/bed.ts";
import { run } from "../lib/proc.ts";
import { Topology } from "../lib/topology.ts";
import { processMemory } from "./stats.ts";

const MINUTES = Number(Deno.env.get("BENCH_SOAK_MIN") ?? "30");
const SUITE = (Deno.env.get("BENCH_SUITES") ?? "bookworm").split(",")[0] as "bookworm" | "trixie";
const work = await Deno.makeTempDir({ prefix: "aosu-soak-" });
const topo = new Topology(`aosk${Deno.pid % 1000}`, work);
const bed = new Bed(`aossoak${Deno.pid % 1000}`, SUITE);
const sh = async (script: string) => {
  const r = await bed.sh(script);
  if (r.code !== 0) throw new Error(`${script}: ${r.stderr}`);
  return r.stdout.trim();
};

/** Least-squares slope of y over x. */
export function slope(points: [number, number][]): number {
  const n = points.length;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  const num = points.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0);
  const den = points.reduce((a, [x]) => a + (x - mx) ** 2, 0);
  return den === 0 ? 0 : num / den;
}

const timers: ReturnType<typeof setInterval>[] = [];
// Ctrl-C or a kill ends the soak early: the samples so far are printed, then everything it
// made (bed, namespaces, servers) is taken down as after a full run.
let interrupted = false;
let wakeEarly = () => {};
const interrupt = () => {
  interrupted = true;
  wakeEarly();
};
Deno.addSignalListener("SIGINT", interrupt);
Deno.addSignalListener("SIGTERM", interrupt);
try {
  const built = await run([
    "bash",
    `${ROOT}/packaging/build_package.sh`,
    "--out",
    `${work}/deb`,
    "--compress",
    "gzip",
  ]);
  if (built.code !== 0) throw new Error(built.stderr);
  const deb = built.stdout.trim().split("\n").at(-1)!;
  await buildGuests(`${work}/images`, ["main", "secondary"]);
  await topo.create();
  await bed.up({ flavour: "base", netns: topo.host });
  await bed.cpIn(deb, "/tmp/");
  await sh(`apt-get install -y -q /tmp/${deb.split("/").pop()} >/dev/null`);
  for (const n of ["main", "secondary"]) {
    await bed.cpIn(
      `${work}/images/aos-vm-${n}-amd64-uefi.qcow2`,
      `/var/lib/aos-unit/aos-vm-${n}-amd64.qcow2`,
    );
  }
  await sh("chown aos-unit:aos-unit /var/lib/aos-unit/*.qcow2");
  await bed.exec(["sh", "-c", "cat > /etc/aos-unit/unit_config.yaml"], {
    stdin:
      "unit:\n  node_configs:\n    - { name: main, cpu: 1, mem: 512M }\n    - { name: secondary, cpu: 1, mem: 512M }\n",
  });
  await sh("systemctl start aos-unit");
  console.log(
    `soak on ${SUITE} for ${MINUTES} min: uplink flap / 10 s, QEMU kill / 2 min, status / 1 s`,
  );

  let uplink: 0 | 1 = 0;
  timers.push(setInterval(() => {
    uplink = uplink === 0 ? 1 : 0;
    void topo.setDefault(uplink).catch(() => {});
  }, 10_000));
  let victim = 0;
  timers.push(setInterval(() => {
    const node = ["main", "secondary"][victim++ % 2];
    void bed.exec(["systemctl", "kill", "-s", "KILL", `aos-node-${node}.service`]);
  }, 120_000));
  let statusCalls = 0;
  timers.push(setInterval(() => {
    statusCalls++;
    void bed.exec(["aos-unit", "status", "--json"]);
  }, 1000));

  const samples: [number, number][] = [];
  for (let minute = 0; minute <= MINUTES && !interrupted; minute++) {
    if (minute > 0) {
      await new Promise<void>((r) => {
        const t = setTimeout(r, 60_000);
        wakeEarly = () => (clearTimeout(t), r());
      });
      if (interrupted) break;
    }
    const m = await processMemory(sh);
    samples.push([minute, m.rssKiB / 1024]);
    console.log(`minute ${String(minute).padStart(2)}: ${m.text}`);
  }
  const settled = samples.filter(([x]) => x >= 3);
  console.log(
    `${statusCalls} status calls; slope of the total RSS after minute 3: ${
      settled.length > 1 ? (slope(settled)).toFixed(3) : "n/a"
    } MiB/min (${
      interrupted ? `interrupted after ${samples.length - 1} of ${MINUTES}` : MINUTES
    } min)`,
  );
} finally {
  Deno.removeSignalListener("SIGINT", interrupt);
  Deno.removeSignalListener("SIGTERM", interrupt);
  for (const t of timers) clearInterval(t);
  await bed.down();
  await topo.destroy();
  await Deno.remove(work, { recursive: true }).catch(() => {});
}
