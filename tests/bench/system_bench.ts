/**
 * Benchmarks under a real systemd (the test beds), on each supported Debian
 * release, printed side by side: start to first QEMU and to READY for 1, 2
 * and 4 nodes, stop wall time, RSS and PSS of every aos-unit process at READY,
 * a manager SIGKILL and a package upgrade to READY (with guest reboot counts),
 * the systemd-analyze security exposure of each unit, D-Bus latency.
 *
 *   bash tests/bench/run.sh system            both releases
 *   BENCH_SUITES=trixie BENCH_NODES=1,2 ...   fewer
 *   bash tests/bench/run.sh soak              the long run (BENCH_SOAK_MIN, default 30)
 */

import { buildGuests, bundle, ROOT } from "../lib/aos.ts";
import { buildDeb, installWithImages, killManager } from "./bed_install.ts";
import { Bed } from "../lib/bed.ts";
import { waitFor } from "../lib/proc.ts";
import { Topology } from "../lib/topology.ts";
import { median, processMemory, report } from "./stats.ts";

type Suite = "bookworm" | "trixie";
const SUITES = (Deno.env.get("BENCH_SUITES") ?? "bookworm,trixie").split(",") as Suite[];
const SIZES = (Deno.env.get("BENCH_NODES") ?? "1,2,4").split(",").map(Number);
const REPEAT = Number(Deno.env.get("BENCH_REPEAT") ?? "3");
const names = Array.from({ length: Math.max(...SIZES, 2) }, (_, i) => `n${i + 1}`);

/** One line per measurement, one column per release. */
const table = new Map<string, Map<Suite, string>>();
function record(what: string, suite: Suite, value: string): void {
  if (!table.has(what)) table.set(what, new Map());
  table.get(what)!.set(suite, value);
  console.log(`  [${suite}] ${what}: ${value}`);
}

const work = await Deno.makeTempDir({ prefix: "aosu-sbench-" });

const epoch = Math.floor(Date.now() / 1000);
const deb = await buildDeb(`${work}/1`, epoch);
const deb2 = await buildDeb(`${work}/2`, epoch + 60);
await buildGuests(`${work}/images`, names);

async function benchSuite(suite: Suite): Promise<void> {
  console.log(`== ${suite}`);
  const topo = new Topology(`aosb${suite[0]}${Deno.pid % 1000}`, work);
  const bed = new Bed(`aosbench${suite[0]}${Deno.pid % 1000}`, suite);
  const sh = async (script: string) => {
    const r = await bed.sh(script);
    if (r.code !== 0) throw new Error(`${script}: ${r.stderr}`);
    return r.stdout.trim();
  };
  const config = (size: number) =>
    "unit:\n  node_configs:\n" +
    names.slice(0, size).map((n) => `    - { name: ${n}, cpu: 1, mem: 512M }\n`).join("");
  const boots = async (size: number) =>
    (await Promise.all(
      names.slice(0, size).map((n) =>
        sh(`grep -c 'AOSTEST boot' /var/log/aos-unit/${n}-serial.log || true`)
      ),
    )).map(Number).reduce((a, b) => a + b, 0);
  const running = () =>
    waitFor(
      "READY",
      async () => {
        const s = await bed.systemctlShow("aos-unit", "ActiveState", "SubState", "StatusText");
        return s.ActiveState === "active" && s.SubState === "running" &&
            (s.StatusText ?? "").startsWith("Running")
          ? true
          : undefined;
      },
      120_000,
      50,
    );
  try {
    await topo.create();
    await bed.up({ flavour: "base", netns: topo.host });
    record("systemd", suite, (await sh("systemctl --version | head -n1")).split(" ")[1]!);
    await installWithImages(bed, [deb, deb2], `${work}/images`, names);

    for (const size of SIZES) {
      await bed.exec(["sh", "-c", "cat > /etc/aos-unit/unit_config.yaml"], { stdin: config(size) });
      const firsts: number[] = [];
      const readies: number[] = [];
      const stops: number[] = [];
      // The first start makes the nodes' files (aos-unit prepare): measured apart.
      for (let i = 0; i <= REPEAT; i++) {
        const since = await sh("date +%s.%N");
        const t0 = performance.now();
        await sh("systemctl start aos-unit");
        const ready = performance.now() - t0;
        const first = Number(
          await sh(
            `journalctl -o short-unix --no-pager --since @${since} | awk '/Starting aos-unit.service/ && !s { s = $1 } /Started aos-node-/ && s && !f { f = $1 } END { printf "%d", (f - s) * 1000 }'`,
          ),
        );
        const s0 = performance.now();
        await sh("systemctl stop aos-unit");
        const stop = performance.now() - s0;
        if (i === 0) {
          record(
            `first start ever (prepare), ${size} node(s): start -> first QEMU`,
            suite,
            `${first} ms`,
          );
          continue;
        }
        firsts.push(first);
        readies.push(ready);
        stops.push(stop);
      }
      record(
        `start -> first QEMU, ${size} node(s) (median)`,
        suite,
        `${Math.round(median(firsts))} ms`,
      );
      record(
        `start -> READY, ${size} node(s) (median)`,
        suite,
        `${Math.round(median(readies))} ms`,
      );
      record(`systemctl stop, ${size} node(s) (median)`, suite, `${Math.round(median(stops))} ms`);
    }

    // Two nodes running: memory, faults, exposure.
    await bed.exec(["sh", "-c", "cat > /etc/aos-unit/unit_config.yaml"], { stdin: config(2) });
    await sh("systemctl start aos-unit");
    await new Promise((r) => setTimeout(r, 5000)); // settled after READY
    record(
      "memory of aos-unit's processes at READY (2 nodes)",
      suite,
      (await processMemory(sh)).text,
    );

    const b0 = await boots(2);
    const k0 = performance.now();
    await killManager(sh);
    await running();
    record(
      "manager SIGKILL -> READY again",
      suite,
      `${Math.round(performance.now() - k0)} ms, ${(await boots(2)) - b0} guest reboot(s)`,
    );

    const u0 = performance.now();
    await sh(`apt-get install -y -q /tmp/${deb2.split("/").pop()} >/dev/null`);
    await running();
    record(
      "apt-get install of a new build -> READY",
      suite,
      `${Math.round(performance.now() - u0)} ms, ${(await boots(2)) - b0} guest reboot(s)`,
    );

    for (
      const unit of [
        "aos-unit.service",
        "aos-node-n1.service",
        "aos-unit-dnsmasq.service",
        "aos-unit-vm-failed@n1.service",
      ]
    ) {
      const r = await bed.exec(["systemd-analyze", "security", "--no-pager", unit]);
      const level = /Overall exposure level for \S+: ([\d.]+ \S+)/.exec(r.stdout + r.stderr)?.[1];
      record(`systemd-analyze security ${unit}`, suite, level ?? "?");
    }

    const probe = `${work}/dbus_probe.js`;
    await bundle(`${ROOT}/tests/bench/dbus_probe.ts`, probe);
    await bed.cpIn(probe, "/tmp/");
    const out = JSON.parse(
      await sh(
        "DENO_NO_UPDATE_CHECK=1 /usr/lib/aos-unit/deno run -A --quiet --no-config /tmp/dbus_probe.js",
      ),
    ) as { connectMs: number; reads: number[]; starts: number[] };
    record("D-Bus connect + Subscribe", suite, `${Math.round(out.connectMs)} ms`);
    report(`[${suite}] D-Bus unit state read`, out.reads);
    report(`[${suite}] D-Bus StartTransientUnit to JobRemoved`, out.starts);
    await sh("systemctl stop aos-unit");
  } finally {
    await bed.down();
    await topo.destroy();
  }
}

try {
  for (const suite of SUITES) await benchSuite(suite);
  console.log("\n== side by side");
  const header = ["", ...SUITES];
  console.log(header.join(" | "));
  for (const [what, values] of table) {
    console.log([what, ...SUITES.map((s) => values.get(s) ?? "-")].join(" | "));
  }
} finally {
  await Deno.remove(work, { recursive: true }).catch(() => {});
}
