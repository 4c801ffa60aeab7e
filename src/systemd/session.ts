/**
 * A connection to systemd that heals: when the bus connection is lost (the
 * bus daemon restarted, a call timed out on a dead socket) it is noticed and
 * re-established with a backoff, subscriptions included, and the owner is told
 * so it can look at the state again.
 */

import type { Logger } from "../log.ts";
import { addMatch, connectSystemBus, type MessageBus, onDisconnect } from "./bus.ts";
import type { Message } from "./wire.ts";
import { Systemd } from "./systemd1.ts";

export interface SessionOptions {
  /** Units whose property changes are delivered to onUnitChange (more with watchUnits). */
  units?: readonly string[];
  log: Logger;
  onUnitChange: (unit: string) => void;
  /** After every (re)connection, with the new connection. */
  onConnect?: (systemd: Systemd) => void;
  /** A bus name (e.g. org.freedesktop.resolve1) got a new owner. */
  onNameOwner?: (name: string) => void;
  /** Names to watch for onNameOwner. */
  names?: readonly string[];
}

export class SystemdSession {
  #systemd: Systemd | undefined;
  #closed = false;
  #retry: ReturnType<typeof setTimeout> | undefined;
  #units: string[];

  private constructor(private readonly o: SessionOptions) {
    this.#units = [...(o.units ?? [])];
  }

  /** Watches these units too, now and after every reconnection. */
  async watchUnits(units: readonly string[]): Promise<void> {
    this.#units.push(...units);
    await this.#systemd?.watchUnits(units);
  }

  /** Connects once (failing loudly); later losses are repaired in the background. */
  static async open(options: SessionOptions): Promise<SystemdSession> {
    const session = new SystemdSession(options);
    await session.#connect();
    return session;
  }

  /** The current connection, or undefined while it is being re-established. */
  get systemd(): Systemd | undefined {
    return this.#systemd;
  }

  async #connect(): Promise<void> {
    const bus: MessageBus = await connectSystemBus();
    try {
      const systemd = await Systemd.open(bus, this.#units);
      systemd.onUnitChange((unit) => this.o.onUnitChange(unit));
      for (const name of this.o.names ?? []) {
        await addMatch(
          bus,
          `type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged',arg0='${name}'`,
        );
      }
      bus.on("message", (msg: Message) => {
        // The bus's own broadcast (the rule names its sender), never one sent to us alone.
        if (msg.destination !== undefined || msg.sender !== "org.freedesktop.DBus") return;
        if (msg.member === "NameOwnerChanged" && msg.body?.[2]) {
          this.o.onNameOwner?.(String(msg.body[0]));
        }
      });
      onDisconnect(bus, (why) => this.#lost(systemd, why));
      this.#systemd = systemd;
      this.o.onConnect?.(systemd);
    } catch (error) {
      bus.disconnect();
      throw error;
    }
  }

  #lost(systemd: Systemd, why: string, attempt = 0): void {
    if (this.#closed || (this.#systemd !== systemd && attempt === 0)) return;
    if (attempt === 0) {
      this.o.log.warning(`Lost the system bus (${why}); reconnecting`);
      this.#systemd = undefined;
      try {
        systemd.bus.disconnect();
      } catch { /* already gone */ }
    }
    const delay = Math.min(5000, 250 * 2 ** Math.min(attempt, 5));
    this.#retry = setTimeout(async () => {
      if (this.#closed) return;
      try {
        await this.#connect();
        this.o.log.info(`Reconnected to the system bus after ${attempt + 1} attempt(s)`);
      } catch {
        this.#lost(systemd, why, attempt + 1);
      }
    }, delay);
  }

  /** Tells the session its connection misbehaved (a call timed out): reconnect. */
  reset(why: string): void {
    if (this.#systemd) this.#lost(this.#systemd, why);
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#retry);
    try {
      this.#systemd?.bus.disconnect();
    } catch { /* gone */ }
    this.#systemd = undefined;
  }
}
