/**
 * The smart-NAT route monitor: follows default-route and link events, waits
 * for bursts to settle, re-applies the ruleset when the uplinks change, drops
 * stale NAT conntrack entries, and restores aos-unit's table when another
 * program deletes or flushes it.
 */

import type { Runner } from "../host/runner.ts";
import type { Logger } from "../log.ts";
import { nftRuleset } from "../plan/nft.ts";
import type { NetworkPlan } from "../plan/network.ts";
import { TOOLS } from "../permissions.ts";
import { applyRuleset, currentRuleCount, expectedRuleCount } from "./nft.ts";

/** True for `ip monitor route link` lines that can change which interfaces are uplinks. */
export function isRelevantRouteEvent(line: string): boolean {
  const l = line.trim();
  if (l === "") return false;
  if (/^(Deleted )?default /.test(l)) return true;
  // Link events: "3: uplink1: <...> ... state DOWN ..." or "Deleted 3: ...".
  if (/^(Deleted )?\d+: \S+:? <[^>]*>/.test(l)) return true;
  return false;
}

/** True for `nft monitor` lines that may have removed part of our table. */
export function isTableTamper(line: string, table: string): boolean {
  return (/^delete /.test(line) && line.includes(table)) || /^flush (ruleset|table)/.test(line);
}

export interface MonitorOptions {
  runner: Runner;
  network: NetworkPlan;
  rulesetFile: string;
  log: Logger;
  debounceMs: number;
  /** Reads the interfaces that carry a default route now. */
  readUplinks: () => Promise<string[]>;
  /** How often to verify the table even without events. */
  verifyEveryMs?: number;
  /** Told the uplinks at start and after each handover (for `status`). */
  onUplinks?: (uplinks: readonly string[]) => void;
  /** Called when the bridge is gone (cleanup ran): there is nothing left to watch. */
  onBridgeGone?: () => void;
}

export interface Handover {
  from: string[];
  to: string[];
  /** From the first event of the burst to the ruleset being applied. */
  ms: number;
  flowsDropped: boolean;
}

export class RouteMonitor {
  #uplinks: string[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #burstStart: number | undefined;
  #verifyTimer: ReturnType<typeof setTimeout> | undefined;
  #queue: Promise<void> = Promise.resolve();
  #children: Deno.ChildProcess[] = [];
  #stopped = false;
  /** The most recent handovers (a few; the monitor runs for weeks). */
  readonly handovers: Handover[] = [];

  constructor(private readonly o: MonitorOptions) {}

  get uplinks(): readonly string[] {
    return this.#uplinks;
  }

  async #currentUplinks(): Promise<string[]> {
    const pinned = this.o.network.internetInterface;
    return pinned ? [pinned] : await this.o.readUplinks();
  }

  #ruleset(): string {
    return nftRuleset(this.o.network, this.#uplinks);
  }

  /** Serializes work so a verify never races an apply. */
  #enqueue(work: () => Promise<void>): Promise<void> {
    this.#queue = this.#queue.then(work).catch((error) => {
      this.o.log.error(`Route monitor step failed: ${(error as Error).message}`);
    });
    return this.#queue;
  }

  /** Applies the ruleset for the current uplinks once, at start. */
  async start(): Promise<void> {
    this.#uplinks = await this.#currentUplinks();
    this.o.onUplinks?.(this.#uplinks);
    await this.#enqueue(async () => {
      const ms = await applyRuleset(this.o.runner, this.o.rulesetFile, this.#ruleset());
      this.o.log.info(
        `Watching routes: uplink(s) ${this.#uplinks.join(", ") || "none"}${
          this.o.network.internetInterface ? " (pinned by INTERNET_INTERFACE)" : ""
        }; ruleset applied in ${ms} ms; debounce ${this.o.debounceMs} ms`,
      );
    });
    this.#spawnWatcher([TOOLS.ip, "monitor", "route", "link"], (line) => {
      if (isRelevantRouteEvent(line)) this.routeEvent();
    });
    this.#spawnWatcher([TOOLS.nft, "monitor"], (line) => {
      if (isTableTamper(line, "aos_unit")) this.scheduleVerify(20);
    });
    this.scheduleVerify(this.o.verifyEveryMs ?? 5000);
  }

  /** A route or link event arrived: (re)start the quiet-time timer. */
  routeEvent(): void {
    this.#burstStart ??= performance.now();
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#enqueue(() => this.reconcile()), this.o.debounceMs);
  }

  /** Compares the uplinks with what the ruleset was built for; hands over when they differ. */
  async reconcile(): Promise<void> {
    const burstStart = this.#burstStart ?? performance.now();
    this.#burstStart = undefined;
    const next = await this.#currentUplinks();
    if (next.join(",") === this.#uplinks.join(",")) return;
    const from = this.#uplinks;
    this.#uplinks = next;
    await applyRuleset(this.o.runner, this.o.rulesetFile, this.#ruleset());
    const ms = Math.round(performance.now() - burstStart);
    // NATed flows keep their old source address; drop them so they re-NAT via the new uplink.
    const r = await this.o.runner.run(
      [TOOLS.conntrack, "-D", "-s", this.o.network.cidr, "--src-nat"],
      { okCodes: [0, 1] },
    );
    const dropped = /(\d+) flow entries have been deleted/.exec(r.stderr + r.stdout)?.[1] ?? "0";
    this.handovers.push({ from, to: next, ms, flowsDropped: dropped !== "0" });
    if (this.handovers.length > 16) this.handovers.shift();

    this.o.onUplinks?.(next);
    this.o.log.info(
      `Uplink handover: ${from.join(", ") || "none"} -> ${next.join(", ") || "none"} in ${ms} ms ` +
        `(ruleset re-applied, ${dropped} NAT flow(s) dropped)`,
    );
  }

  scheduleVerify(delayMs: number): void {
    if (this.#stopped) return;
    clearTimeout(this.#verifyTimer);
    this.#verifyTimer = setTimeout(() => {
      void this.#enqueue(async () => void (await this.verifyTable())).then(() =>
        this.scheduleVerify(this.o.verifyEveryMs ?? 5000)
      );
    }, delayMs);
  }

  /** Restores the table when someone deleted or changed it. */
  async verifyTable(): Promise<boolean> {
    const want = expectedRuleCount(this.#ruleset());
    const have = await currentRuleCount(this.o.runner);
    if (have === want) return false;
    // cleanup removes the table on purpose, after the bridge: never bring it back then.
    const bridge = await this.o.runner.run(
      [TOOLS.ip, "link", "show", "dev", this.o.network.bridge],
      {
        okCodes: [0, 1, 2],
      },
    );
    if (bridge.code !== 0) {
      this.o.log.info(
        `Bridge ${this.o.network.bridge} is gone: the unit is stopping, nothing to watch`,
      );
      this.#stopped = true;
      this.o.onBridgeGone?.();
      return false;
    }
    const started = performance.now();
    await applyRuleset(this.o.runner, this.o.rulesetFile, this.#ruleset());
    this.o.log.warning(
      `Table inet aos_unit was ${
        have === undefined ? "deleted" : `changed (${have} of ${want} rules left)`
      } ` +
        `by another program; restored in ${Math.round(performance.now() - started)} ms`,
    );
    return true;
  }

  #spawnWatcher(argv: string[], onLine: (line: string) => void): void {
    const child = new Deno.Command(argv[0]!, {
      args: argv.slice(1),
      stdout: "piped",
      stderr: "null",
      stdin: "null",
    })
      .spawn();
    this.#children.push(child);
    (async () => {
      let buffer = "";
      for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
        buffer += chunk;
        const lines = buffer.split("\n");
        buffer = lines.pop() ?? "";
        for (const line of lines) onLine(line);
      }
      // systemd's stop signals the whole cgroup: a child killed by SIGTERM means we stop too.
      const status = await child.status;
      if (!this.#stopped && status.signal !== "SIGTERM") {
        this.o.log.error(`${argv.join(" ")} exited; the route monitor cannot follow changes`);
        // Let systemd restart us rather than run blind.
        Deno.exit(1);
      }
    })();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#verifyTimer);
    for (const child of this.#children) {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      await child.status;
    }
    await this.#queue;
  }
}
