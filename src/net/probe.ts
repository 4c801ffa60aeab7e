/** Whether a guest's network stack is up, seen from the host. */

/** True when something answers on ip:port - a connection, or a refusal (the stack is up). */
export async function answers(ip: string, port: number, timeoutMs: number): Promise<boolean> {
  // The signal aborts the pending connect too: no half-open sockets pile up while waiting.
  try {
    const conn = await Deno.connect({ hostname: ip, port, signal: AbortSignal.timeout(timeoutMs) });
    conn.close();
    return true;
  } catch (error) {
    return error instanceof Deno.errors.ConnectionRefused;
  }
}

/** The port whose answer means "ready": ssh root@NAME.aos-unit can work. */
export const READY_PORT = 22;
