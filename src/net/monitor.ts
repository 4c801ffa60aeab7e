/**
 * The smart-NAT route monitor: follows default-route and link events, waits
 * for bursts to settle (but never longer than a cap), re-applies the ruleset
 * when the uplinks change, drops stale NAT conntrack entries, and restores
 * aos-unit's table when another program deletes or changes it.
 *
 * It never goes blind: the event streams are watched before the first read, a
 * dead `ip monitor` or `nft monitor` is started again in place, a failed
 * handover is retried (the uplink list is committed only after the ruleset and
 * conntrack steps succeeded), and the table is compared by content.
 */

import { writeFileAtomic } from "../host/atomic.ts";
import type { Runner } from "../host/runner.ts";
import type { Logger } from "../log.ts";
import { NFT_FAMILY, nftRuleset } from "../plan/nft.ts";
import { hostTable } from "../plan/mod.ts";
import type { Plan } from "../plan/types.ts";
import { defaultRouteDevices, listRoutes } from "./links.ts";
import type { NetworkPlan } from "../plan/network.ts";
import { TOOLS } from "../base/tools.ts";
import { applyRuleset, currentTable } from "./nft.ts";

/** True for `ip monitor route link` lines that can change which interfaces are uplinks. */
export function isRelevantRouteEvent(line: string): boolean {
  const l = line.trim();
  if (l === "") return false;
  if (/^(Deleted )?default /.test(l)) return true;
  // Link events: "3: uplink1: <...> ... state DOWN ..." or "Deleted 3: ...".
  if (/^(Deleted )?\d+: \S+:? <[^>]*>/.test(l)) return true;
  return false;
}

/**
 * The interface of a new IPv4 default route (`default via GW dev IF ...`), if the line is
 * one. An IPv6 default (a router advertisement) must never widen the guests' fence.
 */
export function newDefaultRouteDevice(line: string): string | undefined {
  const m = /^default (?:via (\S+) )?dev (\S+)/.exec(line.trim());
  if (!m || m[1]?.includes(":") || / pref \w+/.test(line)) return undefined;
  return m[2];
}

/** True for `nft monitor` lines that may have removed part of our table. */
export function isTableTamper(line: string, table: string): boolean {
  return (/^delete /.test(line) && line.includes(table)) || /^flush (ruleset|table)/.test(line);
}

/**
 * When to act on a burst of events: `debounceMs` after the last event, but no
 * later than `maxWaitMs` after the first, so a stream of unrelated events (a
 * crash-looping tap, container veths) cannot postpone a handover forever.
 * @returns the delay from `now` until the reconcile should run
 */
export function settleDelay(
  burstStart: number,
  now: number,
  debounceMs: number,
  maxWaitMs: number,
): number {
  return Math.max(0, Math.min(debounceMs, burstStart + maxWaitMs - now));
}

export interface MonitorOptions {
  runner: Runner;
  network: NetworkPlan;
  /** The unit's tables' name (its record's nftTable). */
  table: string;
  /** The families its tables on this host have (default: inet and bridge). */
  families?: readonly string[];
  /** The link whose end means the unit is going (default: the bridge). */
  watchLink?: string;
  /** The source of the flows NATed to the uplinks (default: the unit's subnet). */
  natSource?: string;
  /** The ruleset for a list of uplinks (the planner's, with the nodes' guards). */
  ruleset: (uplinks: readonly string[]) => string;
  log: Logger;
  debounceMs: number;
  /** The longest a burst of events may delay a handover (default 4 x debounce, at least 1 s). */
  maxWaitMs?: number;
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

const RETRY_MS = 1000;

export class RouteMonitor {
  /** The uplinks the applied ruleset was built for. */
  #uplinks: string[] = [];
  /** The table as applied (nft -s), for the tamper check. */
  #applied: string | undefined;
  /** Devices added to @uplinks ahead of the reconcile: it must re-apply even if the list is unchanged. */
  #admitted = new Set<string>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #burstStart: number | undefined;
  #verifyTimer: ReturnType<typeof setTimeout> | undefined;
  #verifyDue = 0;
  #queue: Promise<void> = Promise.resolve();
  #children = new Set<Deno.ChildProcess>();
  #stopped = false;
  /** The most recent handovers (a few; the monitor runs for weeks). */
  readonly handovers: Handover[] = [];

  constructor(private readonly o: MonitorOptions) {}

  get uplinks(): readonly string[] {
    return this.#uplinks;
  }

  get #maxWaitMs(): number {
    return this.o.maxWaitMs ?? Math.max(1000, 4 * this.o.debounceMs);
  }

  async #currentUplinks(): Promise<string[]> {
    const pinned = this.o.network.internetInterface;
    return pinned ? [pinned] : await this.o.readUplinks();
  }

  /** Serializes work so a verify never races an apply. */
  #enqueue(work: () => Promise<void>): Promise<void> {
    this.#queue = this.#queue.then(() => this.#stopped ? undefined : work()).catch((error) => {
      this.o.log.error(`Route monitor step failed: ${(error as Error).message}`);
    });
    return this.#queue;
  }

  /** Applies the ruleset for `uplinks` and remembers what the kernel now holds. */
  async #apply(uplinks: readonly string[]): Promise<number> {
    const ms = await applyRuleset(this.o.runner, this.o.ruleset(uplinks));
    this.#applied = await currentTable(this.o.runner, this.o.table, this.o.families);
    return ms;
  }

  /** Starts watching, then applies the ruleset for the current uplinks. */
  async start(): Promise<void> {
    // Watch first: a route change between the first read and the watch would be missed.
    // IPv4 routes only (guests have no IPv6), link events still come.
    this.#watch([TOOLS.ip, "-4", "monitor", "route", "link"], (line) => {
      if (!isRelevantRouteEvent(line)) return;
      const admitted = newDefaultRouteDevice(line);
      if (admitted) void this.#enqueue(() => this.#admit(admitted));
      this.routeEvent();
    });
    this.#watch([TOOLS.nft, "monitor"], (line) => {
      if (isTableTamper(line, this.o.table)) this.scheduleVerify(20);
    });
    await this.#enqueue(async () => {
      const uplinks = await this.#currentUplinks();
      const ms = await this.#apply(uplinks);
      this.#uplinks = uplinks;
      this.o.onUplinks?.(uplinks);
      this.o.log.info(
        `Watching routes: uplink(s) ${uplinks.join(", ") || "none"}${
          this.o.network.internetInterface ? " (pinned by INTERNET_INTERFACE)" : ""
        }; ruleset applied in ${ms} ms; debounce ${this.o.debounceMs} ms`,
      );
    });
    this.scheduleVerify(this.o.verifyEveryMs ?? 5000);
  }

  /**
   * A new default route: its interface joins @uplinks at once (one element,
   * no debounce), so the guests' first packets out of it are not dropped by
   * the fence; the debounced reconcile then does the rest (removals, flows).
   */
  async #admit(device: string): Promise<void> {
    if (this.o.network.internetInterface || this.#uplinks.includes(device)) return;
    const r = await this.o.runner.run(
      [TOOLS.nft, "add", "element", "inet", this.o.table, "uplinks", `{ "${device}" }`],
      { okCodes: [0, 1] },
    );
    if (r.code === 0) {
      this.#admitted.add(device);
      this.#applied = await currentTable(this.o.runner, this.o.table, this.o.families);
    }
  }

  /** A route or link event arrived: (re)start the quiet-time timer, within the cap. */
  routeEvent(): void {
    if (this.#stopped) return;
    const now = performance.now();
    this.#burstStart ??= now;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(
      () => void this.#enqueue(() => this.reconcile()),
      settleDelay(this.#burstStart, now, this.o.debounceMs, this.#maxWaitMs),
    );
  }

  /** Compares the uplinks with what the ruleset was built for; hands over when they differ. */
  async reconcile(): Promise<void> {
    const burstStart = this.#burstStart ?? performance.now();
    this.#burstStart = undefined;
    const next = await this.#currentUplinks();
    const changed = next.join(",") !== this.#uplinks.join(",");
    // A default route that came and went within the debounce left its device in @uplinks.
    const stale = [...this.#admitted].some((d) => !next.includes(d));
    if (!changed && !stale) {
      this.#admitted.clear();
      return;
    }
    const from = this.#uplinks;
    try {
      await this.#apply(next);
      this.#admitted.clear();
      if (!changed) return;
      // NATed flows keep their old source address; drop them so they re-NAT via the new uplink.
      const r = await this.o.runner.run(
        [TOOLS.conntrack, "-D", "-s", this.o.natSource ?? this.o.network.cidr, "--src-nat"],
        { okCodes: [0, 1] },
      );
      const dropped = /(\d+) flow entries have been deleted/.exec(r.stderr + r.stdout)?.[1] ?? "0";
      const ms = Math.round(performance.now() - burstStart);
      // Committed only now: a failed step above leaves the old list, and the retry hands over.
      this.#uplinks = next;
      this.handovers.push({ from, to: next, ms, flowsDropped: dropped !== "0" });
      if (this.handovers.length > 16) this.handovers.shift();
      this.o.onUplinks?.(next);
      this.o.log.info(
        `Uplink handover: ${from.join(", ") || "none"} -> ${
          next.join(", ") || "none"
        } in ${ms} ms ` +
          `(ruleset re-applied, ${dropped} NAT flow(s) dropped)`,
      );
    } catch (error) {
      this.o.log.error(
        `Uplink handover to ${next.join(", ") || "none"} failed, retrying in ${RETRY_MS} ms: ${
          (error as Error).message
        }`,
      );
      this.#burstStart = burstStart;
      clearTimeout(this.#timer);
      this.#timer = setTimeout(() => void this.#enqueue(() => this.reconcile()), RETRY_MS);
    }
  }

  /**
   * Verifies the table after `delayMs`, or sooner when a verify is already due
   * sooner: the periodic check must not push back one a tamper event asked for.
   */
  scheduleVerify(delayMs: number): void {
    if (this.#stopped) return;
    const due = performance.now() + delayMs;
    if (this.#verifyTimer !== undefined && this.#verifyDue <= due) return;
    clearTimeout(this.#verifyTimer);
    this.#verifyDue = due;
    this.#verifyTimer = setTimeout(() => {
      this.#verifyTimer = undefined;
      void this.#enqueue(async () => void (await this.verifyTable())).then(() =>
        this.scheduleVerify(this.o.verifyEveryMs ?? 5000)
      );
    }, delayMs);
  }

  /** Restores the table when someone deleted or changed it (compared by content). */
  async verifyTable(): Promise<boolean> {
    const have = await currentTable(this.o.runner, this.o.table, this.o.families);
    if (have !== undefined && have === this.#applied) return false;
    // cleanup removes the table on purpose, after the bridge: never bring it back then.
    const link = this.o.watchLink ?? this.o.network.bridge;
    const bridge = await this.o.runner.run(
      [TOOLS.ip, "link", "show", "dev", link],
      { okCodes: [0, 1, 2] },
    );
    if (bridge.code !== 0) {
      this.o.log.info(`${link} is gone: the unit is stopping, nothing to watch`);
      this.#stopped = true;
      this.o.onBridgeGone?.();
      return false;
    }
    const started = performance.now();
    await this.#apply(this.#uplinks);
    this.o.log.warning(
      `Table inet ${this.o.table} was ${
        have === undefined ? "deleted" : "changed"
      } by another program; ` +
        `restored in ${Math.round(performance.now() - started)} ms`,
    );
    return true;
  }

  /** Follows a monitor's output line by line; starts it again if it dies. */
  #watch(argv: string[], onLine: (line: string) => void, attempt = 0): void {
    if (this.#stopped) return;
    const child = new Deno.Command(argv[0]!, {
      args: argv.slice(1),
      stdout: "piped",
      stderr: "null",
      stdin: "null",
    }).spawn();
    this.#children.add(child);
    (async () => {
      const started = performance.now();
      let buffer = "";
      try {
        for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
          buffer += chunk;
          const lines = buffer.split("\n");
          buffer = lines.pop() ?? "";
          for (const line of lines) onLine(line);
        }
      } catch { /* the stream broke with the process */ }
      const status = await child.status;
      this.#children.delete(child);
      if (this.#stopped) return;
      // A restart of the watcher may have missed events: look again right away.
      const again = performance.now() - started > 10_000 ? 0 : attempt + 1;
      const delay = Math.min(5000, 100 * 2 ** Math.min(again, 6));
      this.o.log.warning(
        `${argv.join(" ")} exited (${
          status.signal ?? `code ${status.code}`
        }); watching again in ${delay} ms`,
      );
      setTimeout(() => {
        this.#watch(argv, onLine, again);
        this.routeEvent();
        this.scheduleVerify(20);
      }, delay);
    })();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#verifyTimer);
    for (const child of [...this.#children]) {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      await child.status;
    }
    await this.#queue;
  }
}

/** The route monitor of a plan, as `run` and `aos-unit monitor` both start it. */
export function monitorFor(
  plan: Plan,
  debounceMs: number,
  runner: Runner,
  log: Logger,
  onBridgeGone?: () => void,
): RouteMonitor {
  const uplinksFile = `${plan.paths.runtimeDir}/uplinks`;
  const iso = plan.isolation;
  return new RouteMonitor({
    runner,
    network: plan.network,
    table: plan.nft.table,
    // An isolated unit's table on the host: its link's (its own tables are in its namespace).
    ...(iso ? { families: [NFT_FAMILY], watchLink: iso.hostLink, natSource: iso.unitAddress } : {}),
    ruleset: (uplinks) =>
      iso
        ? hostTable(plan.nft.table, plan.network, iso, uplinks, plan.nft.forwards)
        : nftRuleset(plan.nft.table, plan.network, plan.nft.guards, uplinks, plan.nft.forwards),
    log,
    debounceMs,
    readUplinks: async () => defaultRouteDevices(await listRoutes(runner)),
    onUplinks: (uplinks) => writeFileAtomic(uplinksFile, uplinks.join(" ") + "\n"),
    ...(onBridgeGone ? { onBridgeGone } : {}),
  });
}
