/** A minimal QMP client: greeting, capabilities, one command, close. */

import { RuntimeError } from "../errors.ts";

export class QmpError extends RuntimeError {
  override name = "QmpError";
}

async function readLine(
  conn: Deno.UnixConn,
  buffer: { text: string },
  deadline: number,
): Promise<string> {
  const bytes = new Uint8Array(4096);
  while (!buffer.text.includes("\n")) {
    if (performance.now() > deadline) throw new QmpError("QMP: no answer in time");
    const n = await Promise.race([
      conn.read(bytes),
      new Promise<null>((resolve) =>
        setTimeout(() => resolve(null), Math.max(1, deadline - performance.now()))
      ),
    ]);
    if (n === null) {
      if (performance.now() > deadline) throw new QmpError("QMP: no answer in time");
      throw new QmpError("QMP: connection closed");
    }
    buffer.text += new TextDecoder().decode(bytes.subarray(0, n));
  }
  const index = buffer.text.indexOf("\n");
  const line = buffer.text.slice(0, index);
  buffer.text = buffer.text.slice(index + 1);
  return line;
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
  const buffer = { text: "" };
  const encoder = new TextEncoder();
  try {
    await readLine(conn, buffer, deadline); // greeting
    for (const execute of ["qmp_capabilities", command]) {
      await conn.write(encoder.encode(JSON.stringify({ execute }) + "\n"));
      while (true) {
        const reply = JSON.parse(await readLine(conn, buffer, deadline)) as {
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
): Promise<PowerdownResult> {
  const deadline = performance.now() + timeoutMs;
  let conn: Deno.UnixConn;
  try {
    conn = await Deno.connect({ transport: "unix", path: socket });
  } catch {
    return "unreachable";
  }
  const encoder = new TextEncoder();
  const buffer = { text: "" };
  const send = (execute: string) => conn.write(encoder.encode(JSON.stringify({ execute }) + "\n"));
  try {
    await readLine(conn, buffer, Math.min(deadline, performance.now() + 3000)); // greeting
    await send("qmp_capabilities");
    let lastSend = -Infinity;
    while (performance.now() < deadline) {
      if (performance.now() - lastSend >= resendMs) {
        lastSend = performance.now();
        await send("system_powerdown");
      }
      try {
        await readLine(conn, buffer, Math.min(deadline, lastSend + resendMs));
      } catch (error) {
        if ((error as Error).message.includes("closed")) return "exited";
      }
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
