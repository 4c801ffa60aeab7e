/** A minimal QMP client: greeting, capabilities, one command, close. */

import { RuntimeError } from "../base/errors.ts";

export class QmpError extends RuntimeError {
  override name = "QmpError";
}

const TIMEOUT = Symbol("timeout");
/** Longer than any QMP reply aos-unit asks for. */
const MAX_LINE = 1024 * 1024;

/**
 * Lines from a QMP connection. One read is kept pending across calls: a read
 * abandoned at a timeout would otherwise swallow the next reply.
 */
class LineReader {
  #pending: Promise<number | null> | undefined;
  #bytes = new Uint8Array(4096);
  #text = "";

  constructor(private readonly conn: Deno.UnixConn) {}

  /** The next line; "eof" once QEMU closed the connection; TIMEOUT at the deadline. */
  async next(deadline: number): Promise<string | "eof" | typeof TIMEOUT> {
    while (!this.#text.includes("\n")) {
      const wait = deadline - performance.now();
      if (wait <= 0) return TIMEOUT;
      this.#pending ??= this.conn.read(this.#bytes).catch(() => null);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const n = await Promise.race([
        this.#pending,
        new Promise<typeof TIMEOUT>((resolve) => timer = setTimeout(() => resolve(TIMEOUT), wait)),
      ]);
      clearTimeout(timer);
      if (n === TIMEOUT) return TIMEOUT;
      this.#pending = undefined;
      if (n === null) return "eof";
      this.#text += new TextDecoder().decode(this.#bytes.subarray(0, n));
      // A QEMU that streams without ever ending a line must not grow the reader's memory.
      if (this.#text.length > MAX_LINE) return "eof";
    }
    const index = this.#text.indexOf("\n");
    const line = this.#text.slice(0, index);
    this.#text = this.#text.slice(index + 1);
    return line;
  }
}

/** The next line, or a QmpError saying why there is none. */
async function readLine(reader: LineReader, deadline: number): Promise<string> {
  const line = await reader.next(deadline);
  if (line === TIMEOUT) throw new QmpError("QMP: no answer in time");
  if (line === "eof") throw new QmpError("QMP: connection closed");
  return line;
}

/**
 * The guest name the QEMU behind a connection was started with (-name guest=NAME), read
 * with query-name after the capabilities. A node owns its socket directory, so its socket
 * path may lead to another node's QEMU; callers that act for one node check this first.
 */
async function guestName(
  conn: Deno.UnixConn,
  reader: LineReader,
  deadline: number,
): Promise<string | undefined> {
  await conn.write(new TextEncoder().encode(JSON.stringify({ execute: "query-name" }) + "\n"));
  while (true) {
    const reply = JSON.parse(await readLine(reader, deadline)) as QmpMessage;
    if (reply.event) continue;
    return (reply.return as { name?: string } | undefined)?.name;
  }
}

/** Refuses a QEMU that is not node `expect`'s (see guestName()). */
function checkGuest(socket: string, name: string | undefined, expect: string): void {
  if (name !== expect) {
    throw new QmpError(`Refusing ${socket}: it leads to QEMU "${name ?? "?"}", not ${expect}'s`);
  }
}

/**
 * Runs one QMP command on the socket and returns its `return` value.
 * Events arriving in between are skipped.
 */
export async function qmpExecute(
  socket: string,
  command: string,
  timeoutMs = 3000,
): Promise<unknown> {
  const deadline = performance.now() + timeoutMs;
  let conn: Deno.UnixConn;
  try {
    conn = await Deno.connect({ transport: "unix", path: socket });
  } catch (error) {
    throw new QmpError(`Cannot connect to QMP socket ${socket}: ${(error as Error).message}`);
  }
  const reader = new LineReader(conn);
  const encoder = new TextEncoder();
  try {
    await readLine(reader, deadline); // greeting
    for (const execute of ["qmp_capabilities", command]) {
      await conn.write(encoder.encode(JSON.stringify({ execute }) + "\n"));
      while (true) {
        const reply = JSON.parse(await readLine(reader, deadline)) as {
          return?: unknown;
          error?: { desc: string };
          event?: string;
        };
        if (reply.event) continue;
        if (reply.error) throw new QmpError(`QMP ${execute} failed: ${reply.error.desc}`);
        if (execute === command) return reply.return;
        break;
      }
    }
  } finally {
    try {
      conn.close();
    } catch { /* closed by QEMU exiting */ }
  }
}

/** Asks the guest to shut down (ACPI power button). */
export async function systemPowerdown(socket: string): Promise<void> {
  await qmpExecute(socket, "system_powerdown");
}

export type PowerdownResult = "exited" | "timeout" | "unreachable";

/**
 * Asks the guest to power down (ACPI power button) and waits until QEMU
 * closes the connection, which it does when it exits. A guest still booting
 * ignores the event, so it is sent again every `resendMs`.
 */
export async function powerdownAndWait(
  socket: string,
  timeoutMs: number,
  resendMs = 2000,
  /** The node it must be: a socket leading to another QEMU is "unreachable". */
  expect?: string,
): Promise<PowerdownResult> {
  const deadline = performance.now() + timeoutMs;
  let conn: Deno.UnixConn;
  try {
    conn = await Deno.connect({ transport: "unix", path: socket });
  } catch (error) {
    // Not allowed is a bug to report, never a guest that is gone (that would be a power cut).
    if (error instanceof Deno.errors.NotCapable) throw error;
    return "unreachable";
  }
  const encoder = new TextEncoder();
  const reader = new LineReader(conn);
  const send = (execute: string) => conn.write(encoder.encode(JSON.stringify({ execute }) + "\n"));
  try {
    if (await reader.next(Math.min(deadline, performance.now() + 3000)) === "eof") return "exited";
    await send("qmp_capabilities");
    if (expect !== undefined) {
      const soon = Math.min(deadline, performance.now() + 3000);
      // The capabilities' reply (events may come first).
      while ((JSON.parse(await readLine(reader, soon)) as QmpMessage).event);
      const name = await guestName(conn, reader, soon);
      if (name !== expect) return "unreachable";
    }
    let lastSend = -Infinity;
    while (performance.now() < deadline) {
      if (performance.now() - lastSend >= resendMs) {
        lastSend = performance.now();
        await send("system_powerdown");
      }
      // Replies and events are skipped; only the end of the connection counts.
      if (await reader.next(Math.min(deadline, lastSend + resendMs)) === "eof") return "exited";
    }
    return "timeout";
  } catch {
    // The connection broke while talking: QEMU went away.
    return "exited";
  } finally {
    try {
      conn.close();
    } catch { /* closed by QEMU exiting */ }
  }
}

/** Events a session keeps unasked for at most. */
const MAX_EVENTS = 1000;

/** A QMP message: a reply (return or error) or an event. */
interface QmpMessage {
  return?: unknown;
  error?: { class?: string; desc: string };
  event?: string;
  data?: Record<string, unknown>;
}

/**
 * A QMP connection kept open for several commands (snapshots: stop, snapshot, cont, then
 * a block job and its events). Events that arrive while a command waits for its reply
 * are kept for waitEvent().
 */
export class QmpSession {
  #events: QmpMessage[] = [];

  private constructor(
    private readonly conn: Deno.UnixConn,
    private readonly reader: LineReader,
    readonly socket: string,
  ) {}

  /**
   * Connects, reads the greeting and negotiates capabilities.
   * @param expect the guest name the QEMU must have (see guestName())
   */
  static async open(socket: string, timeoutMs = 3000, expect?: string): Promise<QmpSession> {
    let conn: Deno.UnixConn;
    try {
      conn = await Deno.connect({ transport: "unix", path: socket });
    } catch (error) {
      // Not allowed is a bug to report, never a QEMU that is not running.
      if (error instanceof Deno.errors.NotCapable) throw error;
      throw new QmpError(`Cannot connect to QMP socket ${socket}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    const session = new QmpSession(conn, new LineReader(conn), socket);
    try {
      await readLine(session.reader, performance.now() + timeoutMs); // greeting
      await session.execute("qmp_capabilities", undefined, timeoutMs);
      if (expect !== undefined) {
        const got = await session.execute("query-name", undefined, timeoutMs);
        checkGuest(socket, (got as { name?: string } | undefined)?.name, expect);
      }
    } catch (error) {
      session.close();
      throw error;
    }
    return session;
  }

  /** Runs one command. @returns its `return` value @throws {QmpError} on an error reply */
  async execute(
    command: string,
    args?: Record<string, unknown>,
    timeoutMs = 3000,
  ): Promise<unknown> {
    const deadline = performance.now() + timeoutMs;
    const message = args ? { execute: command, arguments: args } : { execute: command };
    await this.conn.write(new TextEncoder().encode(JSON.stringify(message) + "\n"));
    while (true) {
      const reply = JSON.parse(await readLine(this.reader, deadline)) as QmpMessage;
      if (reply.event) {
        this.#keep(reply);
        continue;
      }
      if (reply.error) throw new QmpError(`QMP ${command} failed: ${reply.error.desc}`);
      return reply.return;
    }
  }

  /**
   * Waits for an event `accept` takes (kept ones first).
   * @throws {QmpError} at the timeout or when QEMU goes away
   */
  async waitEvent(
    accept: (event: string, data: Record<string, unknown>) => boolean,
    timeoutMs: number,
  ): Promise<Record<string, unknown>> {
    const deadline = performance.now() + timeoutMs;
    while (true) {
      const index = this.#events.findIndex((e) => accept(e.event!, e.data ?? {}));
      if (index >= 0) return this.#events.splice(index, 1)[0]!.data ?? {};
      const message = JSON.parse(await readLine(this.reader, deadline)) as QmpMessage;
      if (message.event) this.#keep(message);
    }
  }

  /** Keeps an event for waitEvent(); the oldest go first past a bound (a chatty QEMU). */
  #keep(event: QmpMessage): void {
    this.#events.push(event);
    if (this.#events.length > MAX_EVENTS) this.#events.shift();
  }

  close(): void {
    try {
      this.conn.close();
    } catch { /* closed by QEMU exiting */ }
  }
}
