/**
 * The system bus, spoken directly (wire.ts) over its unix socket: EXTERNAL authentication,
 * Hello, method calls with explicit signatures (no introspection on the hot path), signals,
 * and D-Bus errors turned into readable ones. No D-Bus library: each would load Node's
 * compatibility layer into the resident manager (aos-unit(8), FOOTPRINT).
 */

import { RuntimeError } from "../base/errors.ts";
import { SYSTEM_BUS_SOCKET } from "../base/host_files.ts";
import {
  decodeMessage,
  encodeMessage,
  type Message,
  MessageFlag,
  messageLength,
  MessageType,
} from "./wire.ts";

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

type Listener<T> = (value: T) => void;

/** A connection to the bus: method calls, and every signal the bus delivers to it. */
export class MessageBus {
  #serial = 0;
  #pending = new Map<number, { resolve: (m: Message) => void; reject: (e: Error) => void }>();
  #messages = new Set<Listener<Message>>();
  #errors = new Set<Listener<Error>>();
  #ends = new Set<Listener<void>>();
  #writing: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(readonly conn: Deno.Conn) {
    this.#read();
  }

  /** "message": a signal (or a call to us); "error": the connection failed; "end": closed. */
  on(event: "message", fn: Listener<Message>): void;
  on(event: "error", fn: Listener<Error>): void;
  on(event: "end", fn: Listener<void>): void;
  on(event: "message" | "error" | "end", fn: Listener<never>): void {
    const set = event === "message"
      ? this.#messages
      : event === "error"
      ? this.#errors
      : this.#ends;
    (set as Set<Listener<never>>).add(fn);
  }

  /**
   * Sends a method call; resolves to its reply, rejects with the D-Bus error it got, or
   * with a Timeout error when no reply came within `timeoutMs` (a late one is dropped).
   */
  call(m: Message, timeoutMs: number): Promise<Message> {
    if (this.#closed) return Promise.reject(new Error("the bus connection is closed"));
    const serial = ++this.#serial;
    const reply = new Promise<Message>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(serial);
        reject(
          Object.assign(new Error(`no reply to ${m.member} within ${timeoutMs} ms`), {
            type: TIMEOUT_ERROR,
          }),
        );
      }, timeoutMs);
      const settle = <T>(fn: (v: T) => void) => (v: T) => {
        clearTimeout(timer);
        fn(v);
      };
      this.#pending.set(serial, { resolve: settle(resolve), reject: settle(reject) });
    });
    this.#send({ ...m, serial });
    return reply;
  }

  disconnect(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch { /* already closed */ }
    this.#failPending(new Error("the bus connection is closed"));
  }

  #send(m: Message): void {
    const bytes = encodeMessage(m);
    this.#writing = this.#writing.then(() => writeAll(this.conn, bytes)).catch((error) => {
      this.#fail(error as Error);
    });
  }

  async #read(): Promise<void> {
    let buf = new Uint8Array(0);
    const chunk = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await this.conn.read(chunk);
        if (n === null) break;
        const next = new Uint8Array(buf.length + n);
        next.set(buf);
        next.set(chunk.subarray(0, n), buf.length);
        buf = next;
        for (;;) {
          const length = messageLength(buf);
          if (length === undefined || buf.length < length) break;
          this.#dispatch(decodeMessage(buf.subarray(0, length)));
          buf = buf.slice(length);
        }
      }
    } catch (error) {
      if (!this.#closed) this.#fail(error as Error);
      return;
    }
    if (this.#closed) return;
    this.#closed = true;
    this.#failPending(new Error("the bus closed the connection"));
    for (const fn of this.#ends) fn();
  }

  #dispatch(m: Message): void {
    if (m.type === MessageType.METHOD_RETURN || m.type === MessageType.ERROR) {
      const waiter = this.#pending.get(m.replySerial ?? -1);
      if (!waiter) return;
      this.#pending.delete(m.replySerial!);
      if (m.type === MessageType.METHOD_RETURN) return waiter.resolve(m);
      const text = typeof m.body?.[0] === "string" ? m.body[0] : m.errorName ?? "error";
      return waiter.reject(Object.assign(new Error(text), { type: m.errorName, text }));
    }
    if (m.type === MessageType.METHOD_CALL && !((m.flags ?? 0) & MessageFlag.NO_REPLY_EXPECTED)) {
      // Nothing here serves calls: say so rather than leave the caller waiting.
      this.#send({
        type: MessageType.ERROR,
        ...(m.serial === undefined ? {} : { replySerial: m.serial }),
        ...(m.sender === undefined ? {} : { destination: m.sender }),
        errorName: "org.freedesktop.DBus.Error.UnknownMethod",
        signature: "s",
        body: [`${m.interface}.${m.member} is not served here`],
        flags: MessageFlag.NO_REPLY_EXPECTED,
        serial: ++this.#serial,
      });
    }
    for (const fn of this.#messages) fn(m);
  }

  #fail(error: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch { /* already closed */ }
    this.#failPending(error);
    for (const fn of this.#errors) fn(error);
  }

  #failPending(error: Error): void {
    for (const { reject } of this.#pending.values()) reject(error);
    this.#pending.clear();
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) done += await conn.write(bytes.subarray(done));
}

/** The server's first line after our AUTH (up to CR LF), nothing past it. */
async function authReply(conn: Deno.Conn): Promise<string> {
  let line = "";
  const one = new Uint8Array(1);
  while (!line.endsWith("\r\n")) {
    if (line.length > 512 || (await conn.read(one)) === null) {
      throw new Error("the bus closed the connection during authentication");
    }
    line += String.fromCharCode(one[0]!);
  }
  return line.trimEnd();
}

/** Authenticates as this process's uid (EXTERNAL) and says Hello. */
async function handshake(conn: Deno.Conn, timeoutMs: number): Promise<MessageBus> {
  const uid = [...String(Deno.uid() ?? 0)].map((c) => c.charCodeAt(0).toString(16)).join("");
  await writeAll(conn, new TextEncoder().encode(`\0AUTH EXTERNAL ${uid}\r\n`));
  const reply = await authReply(conn);
  if (!reply.startsWith("OK ")) throw new Error(`the bus refused authentication: ${reply}`);
  await writeAll(conn, new TextEncoder().encode("BEGIN\r\n"));
  const bus = new MessageBus(conn);
  await bus.call({
    type: MessageType.METHOD_CALL,
    destination: "org.freedesktop.DBus",
    path: "/org/freedesktop/DBus",
    interface: "org.freedesktop.DBus",
    member: "Hello",
  }, timeoutMs);
  return bus;
}

/** Connects to the system bus; fails within `timeoutMs` when no bus answers. */
export async function connectSystemBus(
  socket = SYSTEM_BUS_SOCKET,
  timeoutMs = 3000,
): Promise<MessageBus> {
  try {
    Deno.statSync(socket);
  } catch {
    throw new BusError(`Cannot connect to the system bus: ${socket} does not exist`, "no-bus");
  }
  let conn: Deno.Conn | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      (async () => {
        conn = await Deno.connect({ transport: "unix", path: socket });
        return await handshake(conn, timeoutMs);
      })(),
      new Promise<never>((_, reject) => {
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
    try {
      conn?.close();
    } catch { /* closed */ }
    throw error instanceof BusError
      ? error
      : new BusError(`Cannot connect to the system bus: ${(error as Error).message}`, "no-bus");
  } finally {
    clearTimeout(timer);
  }
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

/** One method call; resolves to the reply body. */
export async function call(bus: MessageBus, spec: CallSpec): Promise<unknown[]> {
  const reply = await bus.call({
    type: MessageType.METHOD_CALL,
    destination: spec.destination,
    path: spec.path,
    interface: spec.interface,
    member: spec.member,
    signature: spec.signature ?? "",
    body: spec.body ?? [],
    flags: spec.noAutoStart ? MessageFlag.NO_AUTO_START : 0,
  }, spec.timeoutMs ?? 10_000);
  return reply.body ?? [];
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

/** Calls `fn` once when the connection is lost (the bus daemon restarted or closed it). */
export function onDisconnect(bus: MessageBus, fn: (why: string) => void): void {
  let told = false;
  const tell = (why: string) => {
    if (told) return;
    told = true;
    fn(why);
  };
  bus.on("error", (e: Error) => tell(e.message));
  bus.on("end", () => tell("the bus closed the connection"));
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
