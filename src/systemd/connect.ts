/**
 * Short conversations with systemd: connect with a timeout, do one task, always
 * disconnect. status, reset, failed, doctor and cleanup all talk to systemd this
 * way; a bus that does not answer is a BusError that says so.
 */

import { connectSystemBus, type MessageBus } from "./bus.ts";
import { Systemd } from "./systemd1.ts";

/**
 * How long a short-lived command waits for the system bus. A bus that is down refuses at
 * once; this only bounds a bus that is up but slow (a loaded host), where an answer a few
 * seconds late beats "unknown".
 */
export const BUS_TIMEOUT_MS = 5000;

/**
 * Runs `fn` with a fresh connection to systemd, disconnected afterwards.
 * @throws {BusError} when the bus cannot be reached within `timeoutMs`
 */
export async function withSystemd<T>(
  fn: (systemd: Systemd) => Promise<T>,
  timeoutMs = BUS_TIMEOUT_MS,
): Promise<T> {
  const bus = await connectSystemBus(undefined, timeoutMs);
  try {
    return await fn(await Systemd.open(bus));
  } finally {
    bus.disconnect();
  }
}

/** A connection for a command that goes on without systemd (doctor, cleanup): or why not. */
export type MaybeSystemd =
  | { systemd: Systemd; bus: MessageBus; problem?: undefined }
  | { systemd?: undefined; bus?: undefined; problem: string };

/** Opens systemd, or says why it could not; the caller disconnects `bus`. */
export async function openSystemd(timeoutMs = BUS_TIMEOUT_MS): Promise<MaybeSystemd> {
  let bus: MessageBus | undefined;
  try {
    bus = await connectSystemBus(undefined, timeoutMs);
    return { systemd: await Systemd.open(bus), bus };
  } catch (error) {
    bus?.disconnect();
    return { problem: (error as Error).message };
  }
}
