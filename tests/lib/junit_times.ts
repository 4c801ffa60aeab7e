/**
 * Prints how long each top-level test of deno's JUnit reports took (steps left out), longest
 * first: tests/run.sh shows each tier-3 scenario's time at the end of a run.
 *
 * Usage: deno run --allow-read tests/lib/junit_times.ts REPORT.xml...
 */

import { unescape } from "./junit_failures.ts";

/** Top-level cases (no " > " step path) with their seconds. */
export function caseTimes(xml: string): { name: string; seconds: number }[] {
  return [...xml.matchAll(/<testcase name="([^"]*)"[^>]*? time="([\d.]+)"/g)]
    .map(([, name, time]) => ({ name: unescape(name!), seconds: Number(time) }))
    .filter((c) => !c.name.includes(" > "));
}

if (import.meta.main) {
  for (const path of Deno.args) {
    let xml: string;
    try {
      xml = Deno.readTextFileSync(path);
    } catch {
      continue;
    }
    for (const { name, seconds } of caseTimes(xml).sort((a, b) => b.seconds - a.seconds)) {
      console.log(`${String(Math.round(seconds)).padStart(5)} s  ${name.split(":")[0]}`);
    }
  }
}
