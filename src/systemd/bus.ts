/**
 * The system bus through npm:dbus-next, with explicit signatures (no
 * introspection on the hot path) and D-Bus errors turned into readable ones.
 */

import dbus from "dbus-next";
import { RuntimeError } from "../base/errors.ts";
import { SYSTEM_BUS_SOCKET } from "../base/host_files.ts";

export type MessageBus = dbus.MessageBus;

/** A D-Bus call failed; `type` is the D-Bus error name. */
export class BusError extends RuntimeError {
  override name = "BusError";
  readonly type: string;

  constructor(message: string, type: string, hint?: string) {
    super(message, hint === undefined ? undefined : { hint });
    this.type = type;
  }
}

export const POLKIT_DENIED = [
  "org.freedesktop.DBus.Error.AccessDenied",
  "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired",
];

/** Describes a failed call: polkit denial, service absent, or the service's own error. */
export function busError(what: string, error: unknown): BusError {
  const type = (error as { type?: string }).type ?? "unknown";
  const text = (error as { text?: string; message?: string }).text ??
    (error as Error).message ?? String(error);
  if (POLKIT_DENIED.includes(type)) {
    return new BusError(
      `Cannot ${what}: not authorized (${text})`,
      type,
      "the polkit rules of the aos-unit package allow this only for the aos-unit user and aos-unit's own units",
    );
  }
  if (
    type === "org.freedesktop.DBus.Error.ServiceUnknown" ||
    type === "org.freedesktop.DBus.Error.NameHasNoOwner"
  ) {
    return new BusError(`Cannot ${what}: the service is not running (${text})`, type);
  }
  return new BusError(`Cannot ${what}: ${text}`, type);
}

/** Connects to the system bus; fails within `timeoutMs` when no bus answers. */
export async function connectSystemBus(
  socket = SYSTEM_BUS_SOCKET,
  timeoutMs = 3000,
): Promise<MessageBus> {
  let bus: MessageBus;
  try {
    Deno.statSync(socket);
  } catch {
    throw new BusError(`Cannot connect to the system bus: ${socket} does not exist`, "no-bus");
  }
  try {
    bus = dbus.sessionBus({ busAddress: `unix:path=${socket}`, authMethods: ["EXTERNAL"] });
  } catch (error) {
    throw new BusError(`Cannot connect to the system bus: ${(error as Error).message}`, "no-bus");
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      call(bus, {
        destination: "org.freedesktop.DBus",
        path: "/org/freedesktop/DBus",
        interface: "org.freedesktop.DBus",
        member: "GetId",
      }),
      new Promise((_, reject) => {
        bus.on(
          "error",
          (e: Error) =>
            reject(new BusError(`Cannot connect to the system bus: ${e.message}`, "no-bus")),
        );
        timer = setTimeout(
          () =>
            reject(
              new BusError(
                `Cannot connect to the system bus: no answer in ${timeoutMs} ms`,
                "no-bus",
              ),
            ),
          timeoutMs,
        );
      }),
    ]);
  } catch (error) {
    bus.disconnect();
    throw error instanceof BusError ? error : busError("connect to the system bus", error);
  } finally {
    clearTimeout(timer);
  }
  return bus;
}

export interface CallSpec {
  destination: string;
  path: string;
  interface: string;
  member: string;
  signature?: string;
  body?: unknown[];
  /** A call on a dead connection never returns: give up after this long (default 10 s). */
  timeoutMs?: number;
  /**
   * Fail at once if nobody owns the destination instead of having the bus start it: in a
   * stop path, that start would be queued behind the stopping unit's own job (a stall).
   */
  noAutoStart?: boolean;
}

/** The D-Bus error name a call timing out gets (as libdbus names it). */
export const TIMEOUT_ERROR = "org.freedesktop.DBus.Error.Timeout";

/** dbus-next's private table of pending replies (cleared on a timeout, so it cannot grow). */
type Pending = { _methodReturnHandlers?: Record<number, unknown> };

/** One method call; resolves to the reply body. */
export async function call(bus: MessageBus, spec: CallSpec): Promise<unknown[]> {
  const message = new dbus.Message({
    type: dbus.MessageType.METHOD_CALL,
    destination: spec.destination,
    path: spec.path,
    interface: spec.interface,
    member: spec.member,
    signature: spec.signature ?? "",
    body: spec.body ?? [],
    flags: spec.noAutoStart ? dbus.MessageFlag.NO_AUTO_START : 0,
  });
  const timeoutMs = spec.timeoutMs ?? 10_000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const reply = await Promise.race([
      bus.call(message),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          delete (bus as unknown as Pending)._methodReturnHandlers?.[message.serial ?? -1];
          reject(
            Object.assign(new Error(`no reply to ${spec.member} within ${timeoutMs} ms`), {
              type: TIMEOUT_ERROR,
            }),
          );
        }, timeoutMs);
      }),
    ]);
    return reply?.body ?? [];
  } finally {
    clearTimeout(timer);
  }
}

/** Whether someone owns a bus name now (never starts a bus-activatable service). */
export async function nameHasOwner(bus: MessageBus, name: string): Promise<boolean> {
  const [has] = await call(bus, {
    destination: "org.freedesktop.DBus",
    path: "/org/freedesktop/DBus",
    interface: "org.freedesktop.DBus",
    member: "NameHasOwner",
    signature: "s",
    body: [name],
    timeoutMs: 2000,
  });
  return has === true;
}

/**
 * Calls `fn` once when the connection is lost (the bus daemon restarted or
 * closed it): dbus-next reports that as an error or as the stream ending.
 */
export function onDisconnect(bus: MessageBus, fn: (why: string) => void): void {
  let told = false;
  const tell = (why: string) => {
    if (told) return;
    told = true;
    fn(why);
  };
  bus.on("error", (e: Error) => tell(e.message));
  (bus as unknown as { _connection?: { on(event: string, f: () => void): void } })._connection
    ?.on("end", () => tell("the bus closed the connection"));
}

/** Asks the bus to deliver signals matching `rule` to this connection. */
export async function addMatch(bus: MessageBus, rule: string): Promise<void> {
  await call(bus, {
    destination: "org.freedesktop.DBus",
    path: "/org/freedesktop/DBus",
    interface: "org.freedesktop.DBus",
    member: "AddMatch",
    signature: "s",
    body: [rule],
  });
}
