/**
 * Lease latency on the installed package as CI builds it (bundle flavour), with both CPUs
 * kept busy by a bounded load this benchmark starts itself: from dnsmasq's DHCPACK to the
 * record in leases.json (the hook's journal line, written after the rename), and from that
 * record to READY. Prints numbers; asserts nothing.
 *
 *   bash tests/bench/run.sh lease              both releases
 *   BENCH_SUITES=trixie BENCH_LEASES=40 ...    one release, more renewals
 */

import { busyCpus } from "../lib/load.ts";
import { openSystemBed, SECONDARY_MAC, type Suite } from "../system/system_bed.ts";
import { report } from "./stats.ts";

const SUITES = (Deno.env.get("BENCH_SUITES") ?? "bookworm,trixie").split(",") as Suite[];
const LEASES = Number(Deno.env.get("BENCH_LEASES") ?? "20");
const STARTS = Number(Deno.env.get("BENCH_STARTS") ?? "3");

/** Journal lines as [seconds since the epoch, text], from `journalctl -o short-unix`. */
function lines(journal: string): [number, string][] {
  return journal.split("\n").map((l) => /^(\d+\.\d+) (.*)$/.exec(l)).filter((m) => m !== null)
    .map((m) => [Number(m![1]), m![2]!]);
}

/** For each DHCPACK to `mac`, the milliseconds to the next record of that MAC. */
export function ackToRecord(journal: string, mac: string): number[] {
  const out: number[] = [];
  let ack: number | undefined;
  for (const [t, text] of lines(journal)) {
    if (text.includes(`DHCPACK(`) && text.includes(mac)) ack = t;
    else if (ack !== undefined && new RegExp(`DHCP (add|old) ${mac} `).test(text)) {
      out.push((t - ack) * 1000);
      ack = undefined;
    }
  }
  return out;
}

async function benchSuite(suite: Suite, index: number): Promise<void> {
  console.log(`== ${suite}`);
  const c = await openSystemBed(suite, "lease-bench", index);
  const load = busyCpus(2);
  try {
    await c.setUp("running");
    const since = (await c.sh("date +%s.%N")).trim();
    const secondary = await c.serial("secondary");
    for (let i = 0; i < LEASES; i++) {
      // A whole exchange (DISCOVER .. ACK) for the address the guest holds: an "old" event.
      await secondary.probe(
        "udhcpc -n -q -t 1 -T 1 -i eth0 -s /bin/true >/dev/null 2>&1; echo AOSTEST renewed",
        /AOSTEST renewed/,
        20_000,
      );
    }
    secondary.close();
    const renewals = await c.sh(
      `journalctl -o short-unix --no-pager -u aos-unit-dnsmasq --since @${since}`,
    );
    report(
      `${suite}: DHCPACK -> leases.json record (renewal)`,
      ackToRecord(renewals, SECONDARY_MAC),
    );
    const toRecord: number[] = [];
    const toReady: number[] = [];
    for (let i = 0; i < STARTS; i++) {
      await c.sh("systemctl stop aos-unit");
      const from = (await c.sh("date +%s.%N")).trim();
      await c.startUnit();
      const j = lines(
        await c.sh(
          `journalctl -o short-unix --no-pager -u aos-unit -u aos-unit-dnsmasq --since @${from}`,
        ),
      );
      // dnsmasq replays its lease file through the hook when it starts: the record that
      // counts is the first one after the guest's ACK.
      const ack = j.find(([, t]) => t.includes("DHCPACK(") && t.includes(SECONDARY_MAC));
      const record = j.find(([at, t]) =>
        ack !== undefined && at >= ack[0] &&
        new RegExp(`DHCP (add|old) ${SECONDARY_MAC} `).test(t)
      );
      // The manager's READY line (the broker's own "Ready in" line comes first).
      const ready = j.find(([, t]) => / Ready in \d+ ms: (Running|Degraded)/.test(t));
      if (!record || !ack || !ready) throw new Error(`start ${i + 1}: a line is missing`);
      toRecord.push((record[0] - ack[0]) * 1000);
      toReady.push((ready[0] - record[0]) * 1000);
    }
    report(`${suite}: DHCPACK -> record (first lease of a boot)`, toRecord);
    report(`${suite}: record -> READY`, toReady);
  } finally {
    await load.stop();
    await c.close();
  }
}

if (import.meta.main) {
  for (const [i, suite] of SUITES.entries()) await benchSuite(suite, i);
}
