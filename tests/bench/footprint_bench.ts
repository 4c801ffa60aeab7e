/**
 * Where the orchestrator's memory and time go, on the installed package in a test bed, for
 * each supported Debian release (aos-unit(8), FOOTPRINT):
 * - the RSS of every resident process of the orchestrator (unit and role) at READY and 30 s
 *   later, and the transient ones (lease-hook runs) apart;
 * - a timeline of the first start ever, of a second start and of a manager SIGKILL, from
 *   `systemctl start` to the first node unit, phase by phase (the broker's and the
 *   manager's own "Timeline (ms)" lines, placed by the journal's clock);
 * - a timeline of the stop.
 * It prints numbers and asserts no time; it fails loudly when a figure is missing.
 *
 *   bash tests/bench/run.sh footprint              both releases
 *   BENCH_SUITES=trixie bash tests/bench/run.sh footprint
 */

import { parseTimeline } from "../../src/base/timeline.ts";
import { benchReleases, installWithImages, killManager } from "./bed_install.ts";
import { Bed } from "../lib/bed.ts";
import { waitFor } from "../lib/proc.ts";
import { Topology } from "../lib/topology.ts";

type Suite = "bookworm" | "trixie";
const SUITES = (Deno.env.get("BENCH_SUITES") ?? "bookworm,trixie").split(",") as Suite[];
const NODES = ["n1", "n2"];
const CONFIG = "unit:\n  node_configs:\n" +
  NODES.map((n) => `    - { name: ${n}, cpu: 1, mem: 512M }\n`).join("");

/** A figure the run did not produce: the benchmark stops, naming it. */
class Missing extends Error {}
function need<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Missing(`footprint: no figure for ${what}`);
  return value;
}

/** One journal line of `journalctl -o short-unix`: seconds, identifier, message. */
interface Line {
  at: number;
  ident: string;
  text: string;
}
function journalLines(text: string): Line[] {
  return text.split("\n").flatMap((l) => {
    const m = /^(\d+\.\d+) \S+ ([^:\[]+)(?:\[\d+\])?: (.*)$/.exec(l);
    return m ? [{ at: Number(m[1]), ident: m[2]!, text: m[3]! }] : [];
  });
}
const ms = (s: number) => `${Math.round(s * 1000)} ms`;
const mib = (kib: number) => `${(kib / 1024).toFixed(1)} MiB`;

/**
 * One start, from the journal: systemd's "Starting aos-unit", the broker's timeline (its
 * log line's time minus its total is the broker's process start), the first node unit, the
 * manager's timeline, READY.
 */
function startTimeline(lines: Line[]): [string, string][] {
  const at = (re: RegExp, ident?: string) =>
    lines.find((l) => re.test(l.text) && (!ident || l.ident === ident));
  const t0 = need(at(/^Starting aos-unit\.service/), "Starting aos-unit.service").at;
  const broker = need(at(/^Timeline \(ms\): load .*config/, "aos-unit"), "the broker's timeline");
  const phases = parseTimeline(broker.text.replace(/^Timeline \(ms\): /, ""));
  const total = phases.reduce((a, [, v]) => a + v, 0) / 1000;
  const brokerStart = broker.at - total;
  const firstNode = need(at(/^Starting aos-node-/), "the first node unit").at;
  const qemu = need(at(/^Started aos-node-/), "the first QEMU").at;
  const rows: [string, string][] = [["systemctl start -> broker process", ms(brokerStart - t0)]];
  let t = brokerStart;
  for (const [phase, v] of phases) {
    t += v / 1000;
    rows.push([`  broker: ${phase}`, `${v} ms`]);
    if (phase === "node units") {
      rows.push(["= systemctl start -> first node unit", ms(firstNode - t0)]);
    }
  }
  rows.push(["  (first QEMU running)", ms(qemu - t0)]);
  const manager = at(/^Timeline \(ms\): load \d+, bus/, "aos-unit");
  if (manager) {
    const mphases = parseTimeline(manager.text.replace(/^Timeline \(ms\): /, ""));
    const mtotal = mphases.reduce((a, [, v]) => a + v, 0) / 1000;
    rows.push(["broker end -> manager process", ms(manager.at - mtotal - t)]);
    for (const [phase, v] of mphases) rows.push([`  manager: ${phase}`, `${v} ms`]);
  } else rows.push(["manager timeline", "missing"]);
  const ready = need(at(/^Started aos-unit\.service/), "READY (Started aos-unit.service)").at;
  rows.push(["= systemctl start -> READY (guests booting under TCG)", ms(ready - t0)]);
  return rows;
}

/** The stop, from the journal and the wall clock inside the bed. */
function stopTimeline(lines: Line[], wallMs: number): [string, string][] {
  const at = (re: RegExp) => lines.find((l) => re.test(l.text));
  const t0 = need(at(/^Stopping aos-unit\.service/), "Stopping aos-unit.service").at;
  const rows: [string, string][] = [];
  const nodes = at(/^All nodes down in/);
  const down = at(/^Unit down in/);
  const gone = need(
    at(/^(Stopped aos-unit\.service|aos-unit\.service: Deactivated successfully)/),
    "the manager's stop",
  );
  rows.push(["stop job -> every guest powered off", nodes ? ms(nodes.at - t0) : "missing"]);
  const powerdown = nodes && /^All nodes down in (\d+) ms/.exec(nodes.text)?.[1];
  if (powerdown) rows.push(["  of which the guests' ACPI powerdown", `${powerdown} ms`]);
  rows.push(["  -> dnsmasq stopped, network down", down ? ms(down.at - t0) : "missing"]);
  rows.push(["  -> aos-unit.service inactive", ms(gone.at - t0)]);
  rows.push(["= systemctl stop (wall clock in the bed)", `${wallMs} ms`]);
  return rows;
}

/** Every process of the orchestrator and its sidecar: unit, role, RSS in KiB. */
const RESIDENT_SCRIPT = `
for u in aos-unit aos-unit-dnsmasq; do
  cg=$(systemctl show -p ControlGroup --value $u.service)
  [ -n "$cg" ] || continue
  # cgroup v2, or the v1 hierarchies of a host that has them (then the beds have them too)
  for p in $(cat /sys/fs/cgroup$cg/cgroup.procs /sys/fs/cgroup/unified$cg/cgroup.procs \
      /sys/fs/cgroup/systemd$cg/cgroup.procs 2>/dev/null | sort -u); do
    r=$(awk '/^VmRSS:/ {print $2}' /proc/$p/status 2>/dev/null) || continue
    echo "$u $r $(tr '\\0' ' ' < /proc/$p/cmdline)"
  done
done`;

function role(cmd: string): string {
  if (/deno .* run $/.test(cmd)) return "manager (deno)";
  if (/\bip (-\S+ )*monitor/.test(cmd)) return "route monitor (ip monitor)";
  if (/\bnft (-\S+ )*monitor/.test(cmd)) return "ruleset monitor (nft monitor)";
  if (cmd.startsWith("/usr/sbin/dnsmasq")) return "dnsmasq";
  if (cmd.includes("deno")) return `deno: ${cmd.split(" ").at(-2)}`;
  return cmd.split(" ")[0]!;
}

async function resident(sh: (s: string) => Promise<string>): Promise<[string, string][]> {
  const out = (await sh(RESIDENT_SCRIPT)).split("\n").filter(Boolean);
  let total = 0;
  const seen = new Map<string, number>();
  const rows: [string, string][] = out.map((l) => {
    const [unit, kib, ...cmd] = l.split(" ");
    total += Number(kib);
    // dnsmasq's second process is its script helper, forked at start (it runs the lease hook).
    const key = `  ${unit}: ${role(cmd.join(" "))}`;
    seen.set(key, (seen.get(key) ?? 0) + 1);
    return [seen.get(key)! > 1 ? `${key} #${seen.get(key)}` : key, mib(Number(kib))];
  });
  need(rows.find(([r]) => r.includes("manager")), `the manager's RSS in:\n${out.join("\n")}`);
  rows.push(["= total RSS", mib(total)]);
  return rows;
}

/**
 * Samples the lease hook's runs while the guests ask for leases (they live ~0.1 s); from
 * when the sidecar runs, so as not to slow the broker it would measure.
 */
const TRANSIENT_SCRIPT = `
until systemctl is-active -q aos-unit-dnsmasq; do sleep 0.2; done
max=0; n=0; seen=
end=$(( $(date +%s) + 40 ))
while [ $(date +%s) -lt $end ]; do
  # "[.]": the pattern must not match this script's own command line.
  for p in $(pgrep -f "deno .*lease-hook[.]js"); do
    case " $seen " in *" $p "*) continue ;; esac
    seen="$seen $p"; n=$((n + 1))
    # Followed to its end (a run lives ~0.1 s; at most ~2 s of polls): its high-water mark
    # just before it exits is its peak.
    i=0
    while [ $i -lt 1000 ] && r=$(awk '/^VmHWM:/ {print $2}' /proc/$p/status 2>/dev/null) &&
      [ -n "$r" ]; do
      [ "$r" -gt $max ] && max=$r
      i=$((i + 1))
    done
  done
  systemctl is-active -q aos-unit && [ $n -ge ${NODES.length} ] && break
  sleep 0.01
done
echo "$n $max"`;

async function benchSuite(suite: Suite, work: string, deb: string): Promise<[string, string][]> {
  const topo = new Topology(`aosf${suite[0]}${Deno.pid % 1000}`, work);
  const bed = new Bed(`aosfoot${suite[0]}${Deno.pid % 1000}`, suite);
  const rows: [string, string][] = [];
  const section = (title: string, more: [string, string][]) => {
    // A section's title is part of its rows' keys: the two starts and stops stay apart.
    rows.push(
      [`-- ${title}`, ""],
      ...more.map(([k, v]): [string, string] => [`${title}\0${k}`, v]),
    );
    for (const [k, v] of more) console.log(`  [${suite}] ${k}: ${v}`);
  };
  const sh = async (script: string) => {
    const r = await bed.sh(script);
    if (r.code !== 0) throw new Error(`${script}: ${r.stderr}`);
    return r.stdout.trim();
  };
  const journal = async (since: string) =>
    journalLines(await sh(`journalctl -o short-unix --no-pager --since @${since}`));
  const boots = async () =>
    (await Promise.all(
      NODES.map((n) => sh(`grep -c 'AOSTEST boot' /var/log/aos-unit/${n}-serial.log || true`)),
    )).map(Number).reduce((a, b) => a + b, 0);
  const start = async (title: string) => {
    const since = await sh("date +%s.%N");
    const [, sampled] = await Promise.all([sh("systemctl start aos-unit"), sh(TRANSIENT_SCRIPT)]);
    section(title, startTimeline(await journal(since)));
    return sampled;
  };
  try {
    await topo.create();
    await bed.up({ flavour: "base", netns: topo.host });
    rows.push(["systemd", (await sh("systemctl --version | head -n1")).split(" ")[1]!]);
    await installWithImages(bed, [deb], `${work}/images`, NODES);
    await bed.exec(["sh", "-c", "cat > /etc/aos-unit/unit_config.yaml"], { stdin: CONFIG });

    const sampled = await start("first start ever (2 nodes, TCG)");
    section("resident processes at READY", await resident(sh));
    const [runs, peak] = sampled.split(" ").map(Number);
    section("transient processes during the start", [
      ["  lease-hook runs seen (each a cold lease-hook.js)", String(runs)],
      ["  lease-hook peak RSS", runs ? mib(peak!) : "none seen"],
    ]);
    await new Promise((r) => setTimeout(r, 30_000));
    section("resident processes 30 s after READY", await resident(sh));

    const stop = async (title: string) => {
      const since = await sh("date +%s.%N");
      const wall = Number(
        await sh(
          "t0=$(date +%s%N); systemctl stop aos-unit; echo $(( ($(date +%s%N) - t0) / 1000000 ))",
        ),
      );
      section(title, stopTimeline(await journal(since), wall));
    };
    await stop("stop (guests powered down)");
    await start("second start (2 nodes)");

    const b0 = await boots();
    const since = await sh("date +%s.%N");
    const k0 = performance.now();
    await killManager(sh);
    await waitFor(
      "READY",
      async () =>
        (await sh("systemctl show -p StatusText --value aos-unit")).startsWith("Running") &&
          (await sh("systemctl is-active aos-unit || true")) === "active"
          ? true
          : undefined,
      120_000,
      50,
    );
    const lines = await journal(since);
    const killed = need(lines.find((l) => /Main process exited.*KILL/.test(l.text)), "the kill").at;
    const ready = need(
      lines.findLast((l) => /^Started aos-unit\.service/.test(l.text)),
      "READY after the kill",
    ).at;
    section("manager SIGKILL", [
      ["= SIGKILL -> READY again (journal)", ms(ready - killed)],
      ["  (as the bench saw it, incl. polling)", `${Math.round(performance.now() - k0)} ms`],
      ["  guest boots", String((await boots()) - b0)],
    ]);
    await stop("stop after the kill");
    return rows;
  } finally {
    await bed.down();
    await topo.destroy();
  }
}

await benchReleases("footprint", SUITES, NODES, benchSuite);
