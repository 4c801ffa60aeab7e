/**
 * Benchmarks under a real systemd (the test bed): `systemctl start aos-unit`
 * to READY for 1, 2, 4 and 8 nodes and the orchestration's own share of it,
 * stop time, RSS of aos-unit's processes with 2 nodes, D-Bus call latency.
 */

import { buildGuests, bundle, ROOT } from "../lib/aos.ts";
import { Bed } from "../lib/bed.ts";
import { run } from "../lib/proc.ts";
import { median, report } from "./stats.ts";

const SIZES = (Deno.env.get("BENCH_NODES") ?? "1,2,4,8").split(",").map(Number);
const work = await Deno.makeTempDir({ prefix: "aosu-sbench-" });
const bed = new Bed(`aosbench${Deno.pid % 10000}`);
const names = Array.from({ length: Math.max(...SIZES) }, (_, i) => `n${i + 1}`);

async function inBed(script: string): Promise<string> {
  const r = await bed.sh(script);
  if (r.code !== 0) throw new Error(`${script}: ${r.stderr}`);
  return r.stdout.trim();
}

try {
  const built = await run([
    "bash",
    `${ROOT}/packaging/build_package.sh`,
    "--out",
    work,
    "--compress",
    "gzip",
  ]);
  const deb = built.stdout.trim().split("\n").at(-1)!;
  await buildGuests(`${work}/images`, names);
  await bed.up({ flavour: "base" });
  await bed.cpIn(deb, "/tmp/");
  await inBed(`apt-get install -y -q /tmp/${deb.split("/").pop()} >/dev/null`);
  for (const n of names) {
    await bed.cpIn(
      `${work}/images/aos-vm-${n}-amd64-uefi.qcow2`,
      `/var/lib/aos-unit/aos-vm-${n}-amd64.qcow2`,
    );
  }
  await inBed("chown aos-unit:aos-unit /var/lib/aos-unit/*.qcow2");

  for (const size of SIZES) {
    const config = "unit:\n  node_configs:\n" +
      names.slice(0, size).map((n) => `    - { name: ${n}, cpu: 1, mem: 320M }\n`).join("");
    await bed.exec(["sh", "-c", "cat > /etc/aos-unit/unit_config.yaml"], { stdin: config });
    const t0 = Date.now();
    const started = await bed.exec(["systemctl", "start", "aos-unit"]);
    const total = Date.now() - t0;
    if (started.code !== 0) throw new Error(`start with ${size} nodes: ${started.stderr}`);
    // Guest boot: from the first node process start to the last lease.
    const unitStarts = await Promise.all(
      names.slice(0, size).map(async (n) =>
        Date.parse(
          (await inBed(
            `systemctl show aos-node-${n} -p ExecMainStartTimestamp --timestamp=us+utc --value`,
          )).replace(/^\w+ /, "").replace(" UTC", "Z").replace(" ", "T").replace(
            /(\.\d{3})\d+/,
            "$1",
          ),
        )
      ),
    );
    const leases = JSON.parse(await inBed("cat /var/lib/aos-unit/leases.json")).leases as Record<
      string,
      { updated: string }
    >;
    const lastLease = Math.max(...Object.values(leases).map((l) => Date.parse(l.updated)));
    const boot = lastLease - Math.min(...unitStarts);
    console.log(
      `start -> READY, ${
        String(size).padStart(2)
      } node(s): ${total} ms; guests' boot to last lease ${boot} ms; ` +
        `orchestration's share ${total - boot} ms`,
    );
    if (size === 2) {
      const rss = await inBed(
        "ps -eo rss=,args= | grep -E 'aos-unit.js (run|monitor)|dnsmasq --keep' | grep -v grep | awk '{s+=$1} END {print s}'",
      );
      console.log(
        `RSS of aos-unit's processes with 2 nodes (run + monitor + dnsmasq): ${
          Math.round(Number(rss) / 1024)
        } MiB`,
      );
    }
    const s0 = Date.now();
    await inBed("systemctl stop aos-unit");
    console.log(`systemctl stop aos-unit, ${size} node(s): ${Date.now() - s0} ms`);
    await inBed("rm -f /var/lib/aos-unit/leases.json");
  }

  await inBed("systemctl start aos-unit");
  const probe = `${work}/dbus_probe.js`;
  await bundle(`${ROOT}/tests/bench/dbus_probe.ts`, probe);
  await bed.cpIn(probe, "/tmp/");
  const out = JSON.parse(
    await inBed(
      "DENO_NO_UPDATE_CHECK=1 /usr/lib/aos-unit/deno run -A --quiet --no-config /tmp/dbus_probe.js",
    ),
  ) as {
    connectMs: number;
    reads: number[];
    starts: number[];
  };
  console.log(`D-Bus connect + Subscribe: ${Math.round(out.connectMs)} ms`);
  report("D-Bus unit state read (GetUnit + 2x GetAll)", out.reads);
  report("D-Bus StartTransientUnit to JobRemoved (oneshot)", out.starts);
  void median;
} finally {
  await bed.down();
  await Deno.remove(work, { recursive: true }).catch(() => {});
}
