/**
 * org.freedesktop.systemd1: transient units, jobs and unit state. Subscribes
 * and listens for JobRemoved BEFORE any job is started, and keeps results that
 * arrive before anyone waits for them.
 */

import { RuntimeError } from "../base/errors.ts";
import type { TransientUnit, UnitProperty } from "../plan/types.ts";
import { addMatch, busError, call, type MessageBus } from "./bus.ts";
import { type Message, MessageType, Variant } from "./wire.ts";

const SYSTEMD = {
  destination: "org.freedesktop.systemd1",
  path: "/org/freedesktop/systemd1",
  interface: "org.freedesktop.systemd1.Manager",
};

export interface UnitState {
  name: string;
  loadState: string;
  activeState: string;
  subState: string;
  result: string | undefined;
  nRestarts: number | undefined;
  /** Microseconds since the epoch when the unit last became active (0 = never). */
  activeEnterUsec: number;
  /** Microseconds since the epoch of the last state change. */
  stateChangeUsec: number;
  mainPid: number | undefined;
}

/** A planned property as StartTransientUnit takes it: its name and a Variant of its value. */
export function toVariant([name, signature, value]: UnitProperty): [string, Variant] {
  return [name, new Variant(signature, value)];
}

type Job = { result: string; unit: string };

/**
 * Signals from systemd only: any local user may emit a JobRemoved or PropertiesChanged of
 * its own on the system bus (a forged "failed" for the broker's job would fail a start).
 */
const FROM_SYSTEMD = "sender='org.freedesktop.systemd1'";

/** systemd's answer for a unit it does not have loaded. */
export function isNoSuchUnit(error: unknown): boolean {
  return (error as { type?: string } | undefined)?.type === "org.freedesktop.systemd1.NoSuchUnit";
}

export class Systemd {
  #jobs = new Map<string, Job>();
  #waiters = new Map<string, (job: Job) => void>();
  #listeners = new Set<(unit: string, props: Record<string, unknown>) => void>();

  private constructor(readonly bus: MessageBus) {}

  /**
   * Subscribes to job signals and to property changes of `units` (only those:
   * systemd announces every unit's changes, and a busy host has many).
   * Call once per connection.
   */
  static async open(bus: MessageBus, units: readonly string[] = []): Promise<Systemd> {
    const s = new Systemd(bus);
    bus.on("message", (msg: Message) => s.#onMessage(msg));
    await addMatch(
      bus,
      `type='signal',${FROM_SYSTEMD},interface='org.freedesktop.systemd1.Manager',member='JobRemoved'`,
    );
    await s.watchUnits(units);
    try {
      await call(bus, { ...SYSTEMD, member: "Subscribe" });
    } catch (error) {
      throw busError("subscribe to systemd's signals", error);
    }
    return s;
  }

  #onMessage(msg: Message): void {
    // Only systemd's broadcasts: the match rules name it as the sender, and a signal sent to
    // this connection alone (which the bus delivers whatever the rules) is anyone's forgery.
    if (msg.type !== MessageType.SIGNAL || msg.destination !== undefined) return;
    if (msg.interface === SYSTEMD.interface && msg.member === "JobRemoved") {
      const [, job, unit, result] = msg.body as [number, string, string, string];
      const waiter = this.#waiters.get(job);
      if (waiter) {
        this.#waiters.delete(job);
        waiter({ result, unit });
      } else {
        // Results of jobs nobody waits for yet (ours may finish before StartTransientUnit
        // returns); keep only recent ones, Subscribe() reports the whole system's jobs.
        this.#jobs.set(job, { result, unit });
        if (this.#jobs.size > 256) this.#jobs.delete(this.#jobs.keys().next().value!);
      }
    } else if (
      msg.interface === "org.freedesktop.DBus.Properties" && msg.member === "PropertiesChanged"
    ) {
      const [iface, changed] = msg.body as [string, Record<string, { value: unknown }>];
      if (iface !== "org.freedesktop.systemd1.Unit") return;
      const unit = unitNameFromPath(msg.path ?? "");
      const props = Object.fromEntries(Object.entries(changed).map(([k, v]) => [k, v.value]));
      for (const listener of this.#listeners) listener(unit, props);
    }
  }

  /** Delivers property changes of these units to the onUnitChange listeners. */
  async watchUnits(units: readonly string[]): Promise<void> {
    for (const unit of units) {
      await addMatch(
        this.bus,
        `type='signal',${FROM_SYSTEMD},interface='org.freedesktop.DBus.Properties',member='PropertiesChanged',path='${
          unitPath(unit)
        }'`,
      );
    }
  }

  /** Calls `fn(unit, changedProperties)` for every unit property change systemd announces. */
  onUnitChange(fn: (unit: string, props: Record<string, unknown>) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  async #manager(
    member: string,
    signature: string,
    body: unknown[],
    what: string,
  ): Promise<unknown[]> {
    try {
      return await call(this.bus, { ...SYSTEMD, member, signature, body });
    } catch (error) {
      throw busError(what, error);
    }
  }

  /** Waits for a job's JobRemoved; resolves to its result ("done", "failed", ...). */
  async #waitJob(job: string, unit: string, timeoutMs: number): Promise<string> {
    const early = this.#jobs.get(job);
    if (early) {
      this.#jobs.delete(job);
      return early.result;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      return await new Promise<string>((resolve, reject) => {
        this.#waiters.set(job, (j) => resolve(j.result));
        timer = setTimeout(() => {
          this.#waiters.delete(job);
          reject(new RuntimeError(`Job for ${unit} did not finish within ${timeoutMs} ms`));
        }, timeoutMs);
      });
    } finally {
      clearTimeout(timer);
    }
  }

  /** StartTransientUnit + wait for the job. @returns the job result */
  async startTransient(unit: TransientUnit, timeoutMs = 30_000): Promise<string> {
    const [job] = await this.#manager(
      "StartTransientUnit",
      "ssa(sv)a(sa(sv))",
      [unit.name, "fail", unit.properties.map(toVariant), []],
      `start ${unit.name}`,
    );
    return await this.#waitJob(job as string, unit.name, timeoutMs);
  }

  /** StopUnit + wait for the job; a unit systemd no longer has counts as stopped. */
  async stopUnit(name: string, timeoutMs = 120_000): Promise<string> {
    let job: unknown;
    try {
      [job] = await this.#manager("StopUnit", "ss", [name, "replace"], `stop ${name}`);
    } catch (error) {
      if (isNoSuchUnit(error)) return "done";
      throw error;
    }
    return await this.#waitJob(job as string, name, timeoutMs);
  }

  /** KillUnit: a signal to every process of the unit (polkit verb "kill"). */
  async killUnit(
    name: string,
    signal: "SIGTERM" | "SIGKILL",
    whom: "all" | "main" = "all",
  ): Promise<void> {
    await this.#manager(
      "KillUnit",
      "ssi",
      [name, whom, signal === "SIGTERM" ? 15 : 9],
      `send ${signal} to ${name}`,
    ).catch((e) => {
      if (!isNoSuchUnit(e)) throw e;
    });
  }

  /**
   * Enqueues a stop job without waiting for it: from a unit's own stop path a
   * wait could deadlock on a stop job ordered after ours.
   */
  async enqueueStop(name: string): Promise<void> {
    await this.#manager("StopUnit", "ss", [name, "replace"], `stop ${name}`).catch((e) => {
      if (!isNoSuchUnit(e)) throw e;
    });
  }

  /** StartUnit + wait for the job (for a Type=notify unit: until it is ready). */
  async startUnit(name: string, timeoutMs = 300_000): Promise<string> {
    const [job] = await this.#manager("StartUnit", "ss", [name, "replace"], `start ${name}`);
    return await this.#waitJob(job as string, name, timeoutMs);
  }

  /** RestartUnit: also starts a failed unit that is still loaded (polkit verb "restart"). */
  async restartUnit(name: string, timeoutMs = 30_000): Promise<string> {
    const [job] = await this.#manager("RestartUnit", "ss", [name, "replace"], `restart ${name}`);
    return await this.#waitJob(job as string, name, timeoutMs);
  }

  /** systemd's version number (252, 257, ...) from the Manager's Version property. */
  async version(): Promise<number> {
    const [variant] = await call(this.bus, {
      destination: SYSTEMD.destination,
      path: SYSTEMD.path,
      interface: "org.freedesktop.DBus.Properties",
      member: "Get",
      signature: "ss",
      body: [SYSTEMD.interface, "Version"],
    }).catch((error) => {
      throw busError("read systemd's version", error);
    }) as [{ value: string }];
    return parseSystemdVersion(String(variant.value));
  }

  /**
   * The type of the job pending on a unit ("stop", "restart", "start", ...),
   * or undefined when none: tells a real stop from a restart.
   */
  async jobType(name: string): Promise<string | undefined> {
    const job = await this.#get(unitPath(name), "org.freedesktop.systemd1.Unit", "Job", name) as
      | [number, string]
      | undefined;
    if (!job || job[0] === 0) return undefined;
    // The job may finish in between: its object is then gone.
    const type = await this.#get(job[1], "org.freedesktop.systemd1.Job", "JobType", name)
      .catch(() => undefined);
    return type === undefined ? undefined : String(type);
  }

  /** Loaded units whose names match the glob patterns (ListUnitsByPatterns). */
  async listUnits(
    patterns: string[],
  ): Promise<{ name: string; activeState: string; subState: string }[]> {
    const [units] = await this.#manager(
      "ListUnitsByPatterns",
      "asas",
      [[], patterns],
      "list units",
    ) as [[string, string, string, string, string][]];
    return units.map(([name, , , activeState, subState]) => ({ name, activeState, subState }));
  }

  /**
   * A variable of the environment a unit was created with (its plan fingerprint,
   * PLAN_HASH_ENV; a node's INCOMING_ENV), if any.
   */
  async environmentValue(name: string, envName: string): Promise<string | undefined> {
    const env = (await this.#get(
      unitPath(name),
      "org.freedesktop.systemd1.Service",
      "Environment",
      name,
    ) ?? []) as string[];
    return env.find((e) => e.startsWith(`${envName}=`))?.slice(envName.length + 1);
  }

  /** SetUnitProperties with runtime=true: lasts until reboot, not written to disk. */
  async setRuntimeProperties(name: string, properties: UnitProperty[]): Promise<void> {
    await this.#manager(
      "SetUnitProperties",
      "sba(sv)",
      [name, true, properties.map(toVariant)],
      `set properties of ${name}`,
    );
  }

  async resetFailed(name: string): Promise<void> {
    await this.#manager("ResetFailedUnit", "s", [name], `reset the failed state of ${name}`).catch(
      (e) => {
        if (!isNoSuchUnit(e)) throw e;
      },
    );
  }

  /** The unit's state, or undefined when systemd has no such unit loaded. */
  async unitState(name: string): Promise<UnitState | undefined> {
    const path = await this.#unitObject(name);
    if (path === undefined) return undefined;
    // By the path GetUnit returned: no lookup that would load a unit systemd does not have.
    // One Get per property used: GetAll on a service returns some 250 properties (argv,
    // environment, ...) whose parsed copies were most of the manager's garbage.
    const get = (iface: string, prop: string) => this.#get(path, iface, prop, name);
    const unit = "org.freedesktop.systemd1.Unit";
    const svc = "org.freedesktop.systemd1.Service";
    const isService = name.endsWith(".service");
    const [load, active, sub, enter, change, result, restarts, pid] = await Promise.all([
      get(unit, "LoadState"),
      get(unit, "ActiveState"),
      get(unit, "SubState"),
      get(unit, "ActiveEnterTimestamp"),
      get(unit, "StateChangeTimestamp"),
      isService ? get(svc, "Result") : undefined,
      isService ? get(svc, "NRestarts") : undefined,
      isService ? get(svc, "MainPID") : undefined,
    ]);
    return {
      name,
      loadState: String(load ?? "not-found"),
      activeState: String(active ?? "inactive"),
      subState: String(sub ?? ""),
      result: result === undefined ? undefined : String(result),
      nRestarts: restarts === undefined ? undefined : Number(restarts),
      activeEnterUsec: Number(enter ?? 0),
      stateChangeUsec: Number(change ?? 0),
      mainPid: pid === undefined ? undefined : Number(pid),
    };
  }

  /** The object path of a loaded unit (GetUnit: never loads one), or undefined. */
  async #unitObject(name: string): Promise<string | undefined> {
    try {
      const [path] = await call(this.bus, {
        ...SYSTEMD,
        member: "GetUnit",
        signature: "s",
        body: [name],
      }) as [string];
      return path;
    } catch (error) {
      if (isNoSuchUnit(error)) return undefined;
      throw busError(`look up ${name}`, error);
    }
  }

  /** Just what waitGone polls for: GetUnit and two properties, not the whole state. */
  async #loaded(name: string): Promise<{ loadState: string; activeState: string } | undefined> {
    const path = await this.#unitObject(name);
    if (path === undefined) return undefined;
    const unit = "org.freedesktop.systemd1.Unit";
    const [load, active] = await Promise.all([
      this.#get(path, unit, "LoadState", name),
      this.#get(path, unit, "ActiveState", name),
    ]);
    return { loadState: String(load ?? "not-found"), activeState: String(active ?? "inactive") };
  }

  /** One property of a unit object; undefined when the object (or property) is gone. */
  async #get(path: string, iface: string, prop: string, name: string): Promise<unknown> {
    try {
      const [variant] = await call(this.bus, {
        destination: SYSTEMD.destination,
        path,
        interface: "org.freedesktop.DBus.Properties",
        member: "Get",
        signature: "ss",
        body: [iface, prop],
      }) as [{ value: unknown }];
      return variant.value;
    } catch (error) {
      const type = (error as { type?: string }).type;
      if (
        type === "org.freedesktop.DBus.Error.UnknownObject" ||
        type === "org.freedesktop.DBus.Error.UnknownProperty" ||
        type === "org.freedesktop.DBus.Error.UnknownInterface"
      ) return undefined;
      throw busError(`read the state of ${name}`, error);
    }
  }

  /** A slice's CPUQuotaPerSecUSec, or undefined when it has none (infinity). */
  async sliceCpuQuota(name: string): Promise<number | undefined> {
    let path: string;
    try {
      [path] = await call(this.bus, {
        ...SYSTEMD,
        member: "LoadUnit",
        signature: "s",
        body: [name],
      }) as [string];
    } catch (error) {
      throw busError(`load ${name}`, error);
    }
    const quota = await this.#get(
      path,
      "org.freedesktop.systemd1.Slice",
      "CPUQuotaPerSecUSec",
      name,
    );
    if (quota === undefined) return undefined;
    const value = BigInt(quota as bigint);
    return value === 0xffffffffffffffffn ? undefined : Number(value);
  }

  /**
   * Waits until systemd has forgotten the unit (transient units are garbage
   * collected asynchronously; re-creating one too early fails with UnitExists).
   */
  async waitGone(name: string, timeoutMs = 10_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (true) {
      const state = await this.#loaded(name);
      if (!state || state.loadState === "not-found") return;
      if (performance.now() > deadline) {
        throw new RuntimeError(
          `${name} is still loaded (${state.activeState}) after ${timeoutMs} ms`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Makes sure no old instance of a transient unit is in the way of a new one. */
  async clearOld(name: string): Promise<void> {
    const state = await this.unitState(name);
    if (!state) return;
    if (
      state.activeState === "active" || state.activeState === "activating" ||
      state.activeState === "reloading"
    ) {
      await this.stopUnit(name);
    }
    await this.resetFailed(name);
    await this.waitGone(name);
  }
}

/** "257.9-1~deb13u1" -> 257; 0 when it does not start with a number. */
export function parseSystemdVersion(text: string): number {
  return Number(/^\s*(\d+)/.exec(text)?.[1] ?? 0);
}

/** aos-node-main.service -> /org/freedesktop/systemd1/unit/aos_2dnode_2dmain_2eservice */
export function unitPath(name: string): string {
  const escaped = [...new TextEncoder().encode(name)].map((b, i) => {
    const c = String.fromCharCode(b);
    return /[A-Za-z]/.test(c) || (/[0-9]/.test(c) && i > 0)
      ? c
      : `_${b.toString(16).padStart(2, "0")}`;
  }).join("");
  return `/org/freedesktop/systemd1/unit/${escaped}`;
}

/** /org/freedesktop/systemd1/unit/aos_2dnode_2dmain_2eservice -> aos-node-main.service */
export function unitNameFromPath(path: string): string {
  const last = path.split("/").pop() ?? "";
  return last.replace(
    /_([0-9a-f]{2})/g,
    (_, hex: string) => String.fromCharCode(parseInt(hex, 16)),
  );
}
