/**
 * `aos-unit run` (ExecStart= of aos-unit.service, Type=notify, as the
 * unprivileged service user): the manager. The broker (`startup`) has already
 * created or adopted every unit; run watches them, reports READY=1 when the
 * nodes are usable, keeps STATUS= current, follows the uplinks (the route
 * monitor runs in this process) and re-applies resolved settings.
 *
 * It never creates a unit (it may not: see the polkit rules), and nothing it
 * does on a crash touches the guests: the next run adopts them. On a real stop
 * it powers every guest down gracefully and takes the network down; on a
 * restart (an upgrade, `systemctl restart`) it leaves everything running.
 */

import { NODE_UNIT_PREFIX, type UnitNames, unitNames } from "../base/unit_identity.ts";
import { EXIT_OK, RuntimeError, UsageError } from "../base/errors.ts";
import { Timeline } from "../base/timeline.ts";
import type { Config } from "../base/config_types.ts";
import { envOverrides, loadAndPlan } from "../host/load.ts";
import { createRunner, type Runner } from "../host/runner.ts";
import { type Logger, logger } from "../log.ts";
import { routeDomain, teardownNetwork } from "../net/apply.ts";
import { type readLeaseState, readLeaseStateAsync } from "../host/leases.ts";
import { OpenBlockedError } from "../host/safe_file.ts";
import { monitorFor } from "../net/monitor.ts";
import { linkDocumentedPaths } from "../net/sidecar_files.ts";
import type { NodePlan, Plan } from "../plan/types.ts";
import {
  gaveUp,
  type NodeCondition,
  type NodeView,
  pending,
  statusLine,
} from "../systemd/node_state.ts";
import { createNotifier, type Notifier } from "../systemd/notify.ts";
import { call, type MessageBus } from "../systemd/bus.ts";
import { SystemdSession } from "../systemd/session.ts";
import { Waker } from "../systemd/waker.ts";
import type { Systemd, UnitState } from "../systemd/systemd1.ts";
import { nodeFailureSpool, readinessFile } from "../plan/layout.ts";
import { collectSpooled, lastFailures } from "../vm/failures.ts";
import { powerDownNode } from "../vm/shutdown.ts";
import { boundLog } from "../vm/log_bounds.ts";
import { answers, READY_PORT } from "../net/probe.ts";
import { mappedAddress } from "../plan/isolation.ts";
import { INCOMING_ENV } from "../plan/units.ts";
import { readResuming } from "../host/resume_record.ts";
import { resumeNodes, resumeTimeoutMs, waitsForState } from "../vm/resume.ts";
import type { CommandContext } from "./_context.ts";
import type { CommandSpec } from "./_spec.ts";
import { takeStartupError } from "../host/startup_error.ts";
import {
  type Answer,
  answerHolds,
  judgedAddress,
  judgeNode,
  type NodeVerdict,
  writeReadiness,
} from "../systemd/readiness.ts";

/** While waiting, the start (or stop) timeout is pushed this far ahead, this often. */
const EXTEND_BY_MS = 60_000;
const EXTEND_EVERY_MS = 15_000;

/** systemd job types that mean "the manager comes back": guests keep running. */
const RESTART_JOBS = new Set(["restart", "try-restart"]);

/** The unit as a whole failed (no node could start, every node gave up): take it all down. */
class UnitDown extends RuntimeError {
  override name = "UnitDown";
}

/** The manager's view of the unit: node states, addresses, readiness. */
class UnitWatch {
  states = new Map<string, UnitState | undefined>();
  /** Nodes that answered on their judged address since their unit last became active. */
  answered = new Map<string, Answer>();

  constructor(
    readonly plan: Plan,
    readonly session: SystemdSession,
    readonly log: Logger,
    /** Woken by every unit change systemd announces (and by a stop request). */
    readonly waker: Waker,
  ) {}

  /** The lease records as of the last refresh (read once per pass, not per node and call). */
  #leases: ReturnType<typeof readLeaseState>["leases"] = {};
  #leasesBlocked = false;

  /** The recorded lease, or the node's reservation: never the planned pool address. */
  judged(node: NodePlan): ReturnType<typeof judgedAddress> {
    return judgedAddress(this.#leases[node.mac]?.ip, node.ip);
  }

  /**
   * The lease records, unless an open of them once did not return: dnsmasq's uid put a
   * FIFO there. Then the last records stay, and the path is never opened again (each
   * such open keeps a thread blocked).
   */
  async #readLeases(): Promise<void> {
    if (this.#leasesBlocked) return;
    try {
      this.#leases = (await readLeaseStateAsync(this.plan.leaseState)).leases;
    } catch (error) {
      if (!(error instanceof OpenBlockedError)) throw error;
      this.#leasesBlocked = true;
      this.log.error(`${error.message}; lease records are no longer read until a restart`);
    }
  }

  /** Reads every unit's state (a lost bus is repaired by the session; the old view stays). */
  async refresh(): Promise<void> {
    await this.#readLeases();
    const systemd = this.session.systemd;
    if (!systemd) return;
    try {
      const names = [...this.plan.nodes.map((n) => n.unit.name), this.plan.dnsmasq.unit.name];
      const states = await Promise.all(names.map((n) => systemd.unitState(n)));
      names.forEach((n, i) => this.states.set(n, states[i]));
    } catch (error) {
      this.session.reset((error as Error).message);
    }
  }

  /** Probes, at their judged address, the nodes that are up but have not answered there. */
  async probe(): Promise<void> {
    await Promise.all(this.plan.nodes.map(async (node) => {
      const state = this.states.get(node.unit.name);
      if (state?.activeState !== "active") {
        this.answered.delete(node.name);
        return;
      }
      const ip = this.judged(node)?.address;
      if (answerHolds(this.answered.get(node.name), state, ip)) return;
      // An isolated unit's node is reached from the host at its place in the mapped subnet.
      const iso = this.plan.isolation;
      if (ip && await answers(iso ? mappedAddress(iso, ip) : ip, READY_PORT, 400)) {
        this.answered.set(node.name, {
          since: state.activeEnterUsec,
          address: ip,
          at: new Date().toISOString(),
        });
      }
    }));
  }

  /** Each node's verdict with the facts it came from (what READY, STATUS and `status` use). */
  verdict(node: NodePlan): NodeVerdict {
    return judgeNode(node.name, {
      state: this.states.get(node.unit.name),
      leaseIp: this.#leases[node.mac]?.ip,
      reserved: node.ip,
      answer: this.answered.get(node.name),
    });
  }

  condition(node: NodePlan): NodeCondition {
    return this.verdict(node).condition;
  }

  views(): NodeView[] {
    return this.plan.nodes.map((n) => {
      const note = this.#silenceNote(n);
      const v = this.verdict(n);
      return {
        name: n.name,
        condition: v.condition,
        address: v.address ?? undefined,
        ...(note ? { note } : {}),
      };
    });
  }

  verdicts(): NodeVerdict[] {
    return this.plan.nodes.map((n) => this.verdict(n));
  }

  /** What says a reserved address may never answer: a lease elsewhere, or the image itself. */
  #silenceNote(n: NodePlan): string | undefined {
    const leased = this.#leases[n.mac]?.ip;
    if (n.ip && leased && leased !== n.ip) return `reserved ${n.ip}, leased ${leased}`;
    const own = n.image.network?.address;
    if (own && own.ip !== (leased ?? n.ip)) {
      return `its image configures ${own.ip}/${own.prefix}`;
    }
    return undefined;
  }

  sidecarGaveUp(): boolean {
    return gaveUp(this.states.get(this.plan.dnsmasq.unit.name));
  }
}

/** The nodes' spooled crash records into vm-failures.log (see failed.ts). */
function collectCrashRecords(plan: Plan, log: Logger): void {
  for (const node of plan.nodes) {
    try {
      const spool = nodeFailureSpool(plan.paths, node.name);
      const moved = collectSpooled(spool, plan.paths.logsDir, node.name, node.unit.name);
      if (moved > 0) log.debug(`Moved ${moved} crash record(s) of node ${node.name}`);
    } catch (error) {
      log.warning(`Cannot move node ${node.name}'s crash records: ${(error as Error).message}`);
    }
  }
}

/** Each node's last failure, for the message when no node could start. */
function lastFailureText(plan: Plan, watch: UnitWatch, log: Logger): string {
  collectCrashRecords(plan, log);
  // The crash records say how QEMU ended; the final one only that systemd gave up.
  const records = lastFailures(plan.paths.logsDir, (r) => !r.final);
  return plan.nodes.map((n) => {
    const r = records.get(n.name);
    const state = watch.states.get(n.unit.name);
    const what = r
      ? `${r.result}${r.exit_status ? ` (${r.exit_code ?? ""} ${r.exit_status})` : ""} at ${r.time}`
      : `${state?.activeState ?? "not loaded"}${state?.result ? `/${state.result}` : ""}`;
    return `${n.name}: ${what}`;
  }).join("; ");
}

/**
 * A real stop: every guest gets the ACPI power button (in parallel); guests
 * that never answered get a short grace only. Then the sidecar and the
 * network go. Returns when everything is down.
 */
async function stopEverything(
  plan: Plan,
  watch: UnitWatch,
  runner: Runner,
  stopTimeoutSec: number,
  log: Logger,
): Promise<void> {
  const started = performance.now();
  const nodesDown = Promise.all(plan.nodes.map(async (node) => {
    const condition = watch.condition(node);
    if (condition === "stopped" || condition === "gave-up") {
      await watch.session.systemd?.resetFailed(node.unit.name).catch(() => {});
      return;
    }
    await powerDownNode(
      watch.session.systemd,
      {
        name: node.name,
        unit: node.unit.name,
        qmpSocket: node.qmpSocket,
        phase: condition === "ready" ? "up" : condition === "restarting" ? "restarting" : "booting",
      },
      stopTimeoutSec,
      log,
      () => watch.waker.wait(100),
    );
  }));
  await nodesDown;
  log.info(`All nodes down in ${Math.round(performance.now() - started)} ms`);
  await Promise.all([
    watch.session.systemd?.stopUnit(plan.dnsmasq.unit.name, 10_000).catch(() => {}),
    // The manager's own bus reverts resolved's settings: no connection of its own.
    teardownNetwork(
      runner,
      { runtimeDir: plan.paths.runtimeDir, names: plan.unit, as: "manager" },
      [plan.network.bridge],
      log,
      watch.session.systemd?.bus,
    ),
  ]);
  log.info(`Unit down in ${Math.round(performance.now() - started)} ms`);
}

/** How often a supervising manager collects its garbage (collectGarbage). */
const COLLECT_EVERY_MS = 60_000;

/**
 * A full collection (the launcher starts Deno with --expose-gc): after READY and once a
 * minute, so that the resident heap stays near what is live. Left alone, V8 lets the old
 * generation of this small, mostly idle process grow to about three times that before its
 * first major collection (aos-unit(8), FOOTPRINT). A missing gc (another runtime) is a no-op.
 */
function collectGarbage(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/** How long the manager waits for the bus to tell why it is being stopped. */
const JOB_QUERY_MS = 10_000;

/**
 * The job systemd runs on the manager right now ("stop", "restart", ...; undefined:
 * none). A lost bus is waited for (bounded) and asked again: a restart read as a stop
 * would power every guest down.
 * @returns the job type, "none" when there is no job, undefined when the bus never told
 */
async function managerJob(
  session: SystemdSession,
  waker: Waker,
  manager: string,
): Promise<string | undefined> {
  const deadline = performance.now() + JOB_QUERY_MS;
  while (performance.now() < deadline) {
    const systemd = session.systemd;
    if (systemd) {
      try {
        return (await systemd.jobType(manager)) ?? "none";
      } catch (error) {
        session.reset((error as Error).message);
      }
    }
    await waker.wait(250);
  }
  return undefined;
}

/** The manager ended without a stop or a restart: the guests stay, systemd starts us again. */
class KeptRunning extends RuntimeError {
  override name = "KeptRunning";
}

/** Any call to polkitd makes the bus start it if it is not running. */
async function pingPolkit(bus: MessageBus): Promise<void> {
  await call(bus, {
    destination: "org.freedesktop.PolicyKit1",
    path: "/org/freedesktop/PolicyKit1/Authority",
    interface: "org.freedesktop.DBus.Peer",
    member: "Ping",
    timeoutMs: 5000,
  }).catch(() => {});
}

/** The unit's node units that still run (for the message of a configuration error). */
async function runningNodes(systemd: Systemd | undefined, names: UnitNames): Promise<string[]> {
  try {
    return (await systemd?.listUnits([`${NODE_UNIT_PREFIX}*.service`]) ?? [])
      .filter((u) => names.ownsNodeUnit(u.name))
      .filter((u) => u.activeState === "active" || u.activeState === "activating")
      .map((u) => u.name);
  } catch {
    return [];
  }
}

/** What `start` sets up and every later phase works with. */
interface Running {
  plan: Plan;
  config: Config;
  watch: UnitWatch;
  monitor: ReturnType<typeof monitorFor>;
  notifier: Notifier;
}

/**
 * The manager's life, in phases (runCommand reads like this file's header):
 * start (the deferred error, the plan, the watch, the monitor, the log bounds),
 * waitReady (READY=1 when the nodes are usable), supervise (STATUS follows the
 * nodes until a stop or restart), stopOrKeep (a restart keeps the guests, a
 * stop powers them down). Each pass refreshes, probes and sends STATUS once.
 */
class Manager {
  readonly log = logger("run");
  readonly runner = createRunner();
  /** Woken by every unit change systemd announces, and by a stop request. */
  readonly waker = new Waker();
  stopping = false;
  #session: SystemdSession | undefined;
  #lastStatus = "";
  /** The verdicts last published (phase and nodes, without the time). */
  #lastVerdicts = "";
  #logBounds: ReturnType<typeof setInterval> | undefined;
  #leaseWatch: Deno.FsWatcher | undefined;
  #running: Running | undefined;
  /**
   * The nodes the broker started to load a saved state (INCOMING_ENV), and when each unit
   * became active as this manager last saw it: one that becomes active again is a new QEMU
   * waiting for a state nobody sends.
   */
  #incoming = new Map<string, number>();

  private constructor(readonly ctx: CommandContext) {}

  /** Listens for SIGTERM/SIGINT and opens the self-healing systemd session. */
  static async open(ctx: CommandContext): Promise<Manager> {
    const manager = new Manager(ctx);
    for (const signal of ["SIGTERM", "SIGINT"] as const) {
      Deno.addSignalListener(signal, () => {
        manager.stopping = true;
        manager.waker.wake();
      });
    }
    manager.#session = await SystemdSession.open({
      log: manager.log,
      onUnitChange: () => manager.waker.wake(),
      names: ["org.freedesktop.resolve1"],
      // systemd-resolved forgets per-link DNS when it restarts: set it again.
      onNameOwner: () => manager.rerouteDomain(),
      onConnect: (systemd) => {
        manager.waker.wake();
        // polkitd (bus-activated) ends when the bus restarts; start it now, not in the stop path.
        void pingPolkit(systemd.bus);
      },
    });
    return manager;
  }

  get session(): SystemdSession {
    if (!this.#session) throw new Error("Manager: no session yet");
    return this.#session;
  }

  rerouteDomain(): void {
    const plan = this.#running?.plan;
    if (!plan) return;
    void routeDomain(this.runner, plan, this.log, this.session.systemd?.bus).catch((e) =>
      this.log.warning(`Cannot re-apply resolved settings: ${(e as Error).message}`)
    );
  }

  get running(): Running {
    if (!this.#running) throw new Error("Manager: start() has not run");
    return this.#running;
  }

  /** 0. A permanent error the broker deferred; then the plan, the watch, the monitor, the logs. */
  async start(): Promise<void> {
    const deferred = takeStartupError(this.ctx.paths.runtimeDir);
    if (deferred !== undefined) {
      const names = unitNames(this.ctx.paths.unit);
      const running = await runningNodes(this.session.systemd, names);
      throw new UsageError(
        deferred +
          (running.length
            ? `\n${running.join(", ")} keep running from the previous configuration; ` +
              `fix the configuration, then: systemctl restart ${names.managerUnit}`
            : ""),
      );
    }
    const { plan, config } = loadAndPlan(this.ctx.paths, {
      ...envOverrides(this.ctx.env),
      systemdVersion: await this.session.systemd!.version(),
    });
    await this.session.watchUnits([...plan.nodes.map((n) => n.unit.name), plan.dnsmasq.unit.name]);
    const monitor = monitorFor(plan, config.runtime.routeDebounceMs, this.runner, this.log);
    const watch = new UnitWatch(plan, this.session, this.log, this.waker);
    const notifier = createNotifier(
      this.ctx.env.NOTIFY_SOCKET,
      `${this.ctx.paths.runtimeDir}/notify.sock`,
    );
    this.#running = { plan, config, watch, monitor, notifier };
    await linkDocumentedPaths(this.runner, plan);
    await monitor.start();
    this.#boundLogs(plan, config);
    this.#watchLeases(plan);
  }

  /**
   * A new lease record wakes the pass at once (READY waits for it), not at the next poll.
   * The hook replaces leases.json by rename: the directory is watched, not the file.
   */
  #watchLeases(plan: Plan): void {
    const file = plan.leaseState;
    try {
      this.#leaseWatch = Deno.watchFs(file.slice(0, file.lastIndexOf("/")), { recursive: false });
    } catch (error) {
      this.log.debug(`Not watching ${file}: ${(error as Error).message}; polling it`);
      return;
    }
    void (async () => {
      try {
        for await (const event of this.#leaseWatch!) {
          if (event.paths.includes(file)) this.waker.wake();
        }
      } catch { /* closed */ }
    })();
  }

  /** Size-bounded logs, checked four times a second (a console can be written flat out). */
  #boundLogs(plan: Plan, config: Config): void {
    const logs: [string, number][] = [
      ...plan.nodes.map((n) =>
        [n.serialLog, config.runtime.serialLogMaxKb * 1024] as [string, number]
      ),
      [plan.failureLog, config.runtime.failureLogMaxKb * 1024],
    ];
    let rotating = false;
    this.#logBounds = setInterval(async () => {
      if (rotating) return; // one pass at a time: a copy of a large log takes a while
      rotating = true;
      collectCrashRecords(plan, this.log);
      for (const [path, max] of logs) {
        try {
          const r = await boundLog(this.runner, path, max);
          if (r) {
            this.log.info(
              `Rotated ${path} (cap ${Math.round(max / 1024)} KiB, ${r.cut} bytes ${
                r.how === "collapse" ? "collapsed" : "truncated"
              })${r.copyError ? `; the copy to ${path}.1 failed: ${r.copyError}` : ""}`,
            );
          }
        } catch (error) {
          this.log.warning(`Cannot rotate ${path}: ${(error as Error).message}`);
        }
      }
      rotating = false;
    }, 250);
  }

  /**
   * 1. A memory restore's nodes (the broker's record names the snapshot) load their states
   * and resume together (vm/resume.ts). Any other node made to load a state and still
   * waiting for one (its QEMU crashed and was started again, then this manager) is handed
   * back.
   */
  async resume(): Promise<void> {
    const { plan } = this.running;
    const systemd = this.session.systemd!;
    const marked = (await Promise.all(
      plan.nodes.map(async (n) =>
        await systemd.environmentValue(n.unit.name, INCOMING_ENV) === undefined ? [] : [n]
      ),
    )).flat();
    const snapshot = readResuming(plan.paths);
    if (snapshot !== undefined) {
      // Loading large guests takes a while: systemd's start timeout must not cut it short.
      await this.running.notifier.send(`EXTEND_TIMEOUT_USEC=${resumeTimeoutMs(plan) * 1000}`);
      const r = await resumeNodes(plan, snapshot);
      this.log.info(
        `Resumed ${plan.nodes.length} node(s) from snapshot ${snapshot} in ${r.totalMs} ms ` +
          `(the longest load ${r.loadMs} ms)`,
      );
    } else {
      for (const n of marked) if (await waitsForState(n)) await this.#handBack(n);
    }
    for (const n of marked) {
      this.#incoming.set(n.unit.name, (await systemd.unitState(n.unit.name))?.activeEnterUsec ?? 0);
    }
  }

  /**
   * A node made to load a state whose QEMU started again (after a crash): it waits for a
   * state forever. Its unit is stopped and the manager exits 1, so that systemd starts the
   * unit again and the broker makes the node's plain unit: it boots.
   */
  async #handBack(node: NodePlan): Promise<never> {
    const systemd = this.session.systemd;
    await systemd?.killUnit(node.unit.name, "SIGKILL").catch(() => {});
    await systemd?.stopUnit(node.unit.name, 30_000).catch(() => {});
    throw new RuntimeError(
      `Node ${node.name} started again after a snapshot restore and waits for a saved state ` +
        `it cannot get; its unit is stopped, and the next start of the unit boots it`,
    );
  }

  /** A node made to load a state whose unit became active again since it was last seen. */
  async #checkIncoming(): Promise<void> {
    const { plan, watch } = this.running;
    for (const node of plan.nodes) {
      const seen = this.#incoming.get(node.unit.name);
      const state = watch.states.get(node.unit.name);
      if (seen === undefined || !state || state.activeState !== "active") continue;
      if (state.activeEnterUsec !== seen) await this.#handBack(node);
    }
  }

  /** One pass: unit states, readiness probes, STATUS. @returns each node's view */
  async #pass(phase: "starting" | "running"): Promise<NodeView[]> {
    const { watch, notifier } = this.running;
    await watch.refresh();
    await this.#checkIncoming();
    await watch.probe();
    const views = watch.views();
    this.#publish(phase);
    const line = statusLine(views, { name: "dnsmasq", gaveUp: watch.sidecarGaveUp() }, phase);
    if (line !== this.#lastStatus) {
      this.#lastStatus = line;
      await notifier.send(`STATUS=${line}`);
    }
    return views;
  }

  /**
   * Publishes the verdicts `status` reads, when they changed: always before the STATUS= or
   * READY=1 they stand behind, so nothing that READY or STATUS says is ahead of `status`.
   */
  #publish(phase: "starting" | "running"): void {
    const { plan, watch } = this.running;
    const nodes = watch.verdicts();
    const key = JSON.stringify([phase, nodes]);
    if (key === this.#lastVerdicts) return;
    writeReadiness(readinessFile(plan.paths), {
      version: 1,
      at: new Date().toISOString(),
      phase,
      nodes,
    });
    this.#lastVerdicts = key;
  }

  /**
   * READY=1 once every node runs and answers, or gave up; at READY_TIMEOUT_SEC at the
   * latest, as long as any node runs: a slow or silent node never costs the others their
   * uptime (STATUS names it, supervision keeps probing it). Only a unit where no node runs
   * at all fails. The start timeout is extended while we wait (EXTEND_TIMEOUT_USEC).
   */
  async waitReady(): Promise<void> {
    const { plan, config, watch, notifier } = this.running;
    const started = performance.now();
    const deadline = started + config.runtime.readyTimeoutSec * 1000;
    let extended = 0;
    while (!this.stopping) {
      if (performance.now() - extended > EXTEND_EVERY_MS) {
        extended = performance.now();
        await notifier.send(`EXTEND_TIMEOUT_USEC=${EXTEND_BY_MS * 1000}`);
      }
      const views = await this.#pass("starting");
      if (!views.some((v) => pending(v.condition)) || performance.now() > deadline) break;
      await this.waker.wait(250);
    }
    if (this.stopping) return;
    const views = watch.views();
    const runs = views.filter((v) => v.condition === "ready" || pending(v.condition));
    if (runs.length === 0) {
      throw new UnitDown(`No node could start: ${lastFailureText(plan, watch, this.log)}`, {
        hint: `journalctl -u '${NODE_UNIT_PREFIX}*'; jq . ${plan.failureLog}`,
      });
    }
    const silent = views.filter((v) => pending(v.condition)).map((v) => v.name);
    if (silent.length > 0) {
      this.log.warning(
        `No answer on port ${READY_PORT} after ${config.runtime.readyTimeoutSec} s from ${
          silent.join(", ")
        }; the unit is ready without them and keeps probing (look at ${plan.paths.logsDir}/${
          silent[0]
        }-serial.log)`,
      );
    }
    const line = statusLine(views, { name: "dnsmasq", gaveUp: watch.sidecarGaveUp() }, "running");
    this.#lastStatus = line;
    this.#publish("running");
    await notifier.send(`READY=1\nSTATUS=${line}`);
    this.log.info(`Ready in ${Math.round(performance.now() - started)} ms: ${line}`);
    collectGarbage();
  }

  /** STATUS follows the nodes; the unit fails when every node gave up. */
  async supervise(): Promise<void> {
    const { plan, watch } = this.running;
    let lastRetry = performance.now();
    let lastCollect = performance.now();
    while (!this.stopping) {
      await this.waker.wait(5000);
      if (this.stopping) break;
      if (performance.now() - lastCollect > COLLECT_EVERY_MS) {
        lastCollect = performance.now();
        collectGarbage();
      }
      const now = await this.#pass("running");
      if (now.every((v) => v.condition === "gave-up" || v.condition === "stopped")) {
        throw new UnitDown(`Every node is down: ${lastFailureText(plan, watch, this.log)}`);
      }
      // A sidecar systemd gave up on: guests keep running; try it again now and then.
      if (watch.sidecarGaveUp() && performance.now() - lastRetry > 30_000) {
        lastRetry = performance.now();
        await this.#retrySidecar();
      }
    }
  }

  async #retrySidecar(): Promise<void> {
    const systemd = this.session.systemd;
    const sidecar = this.running.plan.dnsmasq.unit.name;
    this.log.warning(`${sidecar} gave up; restarting it (guests keep running)`);
    // Its start limit refuses a restart until the failed state is reset.
    await systemd?.resetFailed(sidecar).catch(() => {});
    await systemd?.restartUnit(sidecar).catch((e) =>
      this.log.warning(`Cannot restart ${sidecar}: ${(e as Error).message}`)
    );
  }

  /**
   * A stop powers every guest down; a restart (upgrade, `systemctl restart`) keeps them.
   * Anything else (no job: a start timeout, a SIGTERM by hand; or a bus that never told)
   * keeps them too and exits 1, so that systemd starts the manager again and it adopts them.
   */
  async stopOrKeep(): Promise<void> {
    const { plan, config, watch, monitor, notifier } = this.running;
    const job = await managerJob(this.session, this.waker, plan.unit.managerUnit);
    await monitor.stop();
    if (job === "stop") {
      await notifier.send("STOPPING=1\nSTATUS=Powering down guests");
      await watch.refresh();
      const extend = setInterval(
        () => void notifier.send(`EXTEND_TIMEOUT_USEC=${EXTEND_BY_MS * 1000}`).catch(() => {}),
        EXTEND_EVERY_MS,
      );
      try {
        await notifier.send(`EXTEND_TIMEOUT_USEC=${(config.runtime.stopTimeoutSec + 30) * 1e6}`);
        await stopEverything(plan, watch, this.runner, config.runtime.stopTimeoutSec, this.log);
      } finally {
        clearInterval(extend);
      }
      return;
    }
    const kept = `${plan.nodes.length} node(s) keep running for the next start`;
    if (job && RESTART_JOBS.has(job)) {
      await notifier.send("STOPPING=1\nSTATUS=Restarting; the guests keep running");
      this.log.info(`Restarting (${job}): ${kept}`);
      return;
    }
    await notifier.send("STOPPING=1\nSTATUS=Ended without a stop; the guests keep running");
    throw new KeptRunning(
      `Ended without a stop or a restart (${
        job === undefined ? "systemd did not answer" : `job ${job}`
      }): ${kept}`,
    );
  }

  /**
   * After an error: the unit failed as a whole (UnitDown) takes everything down, nothing
   * half-made is worth keeping; any other failure (a bug, a lost bus) keeps the guests:
   * systemd restarts us and we adopt them.
   */
  async failed(error: unknown): Promise<void> {
    const running = this.#running;
    // Before any teardown: a route event must not re-create the table behind it.
    await running?.monitor.stop().catch(() => {});
    if (running && error instanceof UnitDown) {
      await running.watch.refresh().catch(() => {});
      await stopEverything(running.plan, running.watch, this.runner, 5, this.log).catch((e) =>
        this.log.warning(`Cleanup after the failure was incomplete: ${(e as Error).message}`)
      );
    }
  }

  close(): void {
    clearInterval(this.#logBounds);
    try {
      this.#leaseWatch?.close();
    } catch { /* already closed */ }
    this.#session?.close();
    this.#running?.notifier.close();
  }
}

export async function runCommand(ctx: CommandContext): Promise<number> {
  // From the process's start: "load" is the runtime and the program starting.
  const timeline = new Timeline(() => performance.now());
  timeline.mark("load");
  const manager = await Manager.open(ctx);
  timeline.mark("bus");
  try {
    await manager.start();
    timeline.mark("plan and monitor");
    await manager.resume();
    timeline.mark("resume");
    manager.log.info(`Timeline (ms): ${timeline.text()}`);
    await manager.waitReady();
    await manager.supervise();
    await manager.stopOrKeep();
    return EXIT_OK;
  } catch (error) {
    await manager.failed(error);
    throw error;
  } finally {
    manager.close();
  }
}

export const runSpec: CommandSpec = {
  name: "run",
  summary:
    "ExecStart, unprivileged: READY when the nodes are usable, STATUS, the route monitor; on stop, ACPI powerdown",
  group: "internal",
  logFile: true,
  examples: "\nExample (as systemd runs it):\n  ExecStart=/usr/bin/aos-unit run",
  run: (ctx) => runCommand(ctx),
};
