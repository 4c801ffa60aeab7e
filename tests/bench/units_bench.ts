/**
 * Many units on one host (aos-unit(8), SEVERAL UNITS): 1, 2, 4 and 8 named units of two
 * test-guest nodes each, every one with the same configuration (the same subnet and
 * addresses, each in its own namespace), started at once, on the installed package in a
 * test bed. For each count it prints:
 * - start -> READY: from one `systemctl start` of every unit until the last is READY;
 * - the orchestrator's own RSS per unit at READY (its manager and its dnsmasq);
 * - how long `systemctl stop` of all of them takes, guests powered down;
 * and checks that nothing of any unit is left. It asserts no time.
 *
 *   bash tests/bench/run.sh units
 *   BENCH_SUITES=trixie BENCH_UNITS=1,2,4 bash tests/bench/run.sh units
 */

import { waitFor } from "../lib/proc.ts";
import { benchCounts, benchReleases } from "./bed_install.ts";

type Suite = "bookworm" | "trixie";
const SUITES = (Deno.env.get("BENCH_SUITES") ?? "bookworm,trixie").split(",") as Suite[];
const COUNTS = (Deno.env.get("BENCH_UNITS") ?? "1,2,4,8").split(",").map(Number);
const NODES = ["n1", "n2"];
const CONFIG = "unit:\n  node_configs:\n" +
  NODES.map((n) => `    - { name: ${n}, cpu: 1, mem: 320M }\n`).join("");
const mib = (kib: number) => `${(kib / 1024).toFixed(1)} MiB`;

/** The RSS (KiB) of a service's main process, or 0 when it has none. */
async function rssOf(sh: (s: string) => Promise<string>, unit: string): Promise<number> {
  const pid = await sh(`systemctl show -p MainPID --value ${unit}`);
  if (pid === "0") return 0;
  return Number(await sh(`awk '/^VmRSS/ {print $2}' /proc/${pid}/status || echo 0`));
}

async function benchCount(sh: (s: string) => Promise<string>, count: number) {
  const units = Array.from({ length: count }, (_, i) => `u${i + 1}`);
  for (const u of units) {
    await sh(`mkdir -p /etc/aos-unit/units/${u}`);
    await sh(`printf '%s' '${CONFIG}' > /etc/aos-unit/units/${u}/unit_config.yaml`);
  }
  const services = units.map((u) => `aos-unit@${u}`).join(" ");
  const t0 = performance.now();
  await sh(`systemctl start ${services}`);
  await waitFor(
    `${count} unit(s) READY`,
    async () => {
      const states = await Promise.all(
        units.map((u) => sh(`systemctl show -p StatusText --value aos-unit@${u}`)),
      );
      return states.every((s) => /^Running: n1=\S+ n2=\S+$/.test(s)) ? true : undefined;
    },
    900_000,
    250,
  );
  const ready = performance.now() - t0;
  const managers = await Promise.all(units.map((u) => rssOf(sh, `aos-unit@${u}`)));
  const sidecars = await Promise.all(units.map((u) => rssOf(sh, `aos-unit-dnsmasq@${u}`)));
  const perUnit = managers.map((m, i) => m + sidecars[i]!);
  const wall = Number(
    await sh(
      `t0=$(date +%s%N); systemctl stop ${services}; echo $(( ($(date +%s%N) - t0) / 1000000 ))`,
    ),
  );
  const left = await sh(
    "ip netns list | grep -c aos-unit || true; systemctl list-units --plain --no-legend 'aos-node-*' | wc -l",
  );
  await sh(`rm -r ${units.map((u) => `/etc/aos-unit/units/${u}`).join(" ")}`);
  return [
    [`${count} unit(s): start -> every unit READY`, `${Math.round(ready)} ms`],
    [`${count} unit(s): RSS per unit (manager + dnsmasq), mean`, mib(mean(perUnit))],
    [`${count} unit(s): RSS per unit, largest`, mib(Math.max(...perUnit))],
    [`${count} unit(s): manager RSS, mean`, mib(mean(managers))],
    [`${count} unit(s): systemctl stop of all`, `${wall} ms`],
    [`${count} unit(s): left after the stop (namespaces, node units)`, left.replace("\n", ", ")],
  ] as [string, string][];
}

function mean(values: number[]): number {
  return values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);
}

function benchSuite(suite: Suite, work: string, deb: string) {
  return benchCounts(
    { suite, work, deb, prefix: "bu", nodes: NODES },
    COUNTS,
    async (sh) => [["systemd", (await sh("systemctl --version | head -n1")).split(" ")[1]!]],
    benchCount,
  );
}

await benchReleases("units", SUITES, NODES, benchSuite);
