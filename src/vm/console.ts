/**
 * The live serial console: a raw terminal on the node's serial socket. The
 * persistent serial log keeps being written by QEMU; detaching (Ctrl-]) leaves
 * the VM untouched.
 */

export const ESCAPE_BYTE = 0x1d; // Ctrl-]

/** Copies stdin to the socket until Ctrl-] (or EOF); socket output to stdout. */
export async function attachConsole(socket: string): Promise<"detached" | "closed" | "eof"> {
  const conn = await Deno.connect({ transport: "unix", path: socket });
  const raw = Deno.stdin.isTerminal();
  if (raw) Deno.stdin.setRaw(true);
  let ended: "detached" | "closed" | "eof" = "closed";
  const fromGuest = (async () => {
    const buf = new Uint8Array(4096);
    while (true) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      await Deno.stdout.write(buf.subarray(0, n));
    }
  })();
  const toGuest = (async () => {
    const buf = new Uint8Array(1024);
    while (true) {
      const n = await Deno.stdin.read(buf);
      if (n === null) {
        ended = "eof";
        break;
      }
      const chunk = buf.subarray(0, n);
      const escape = chunk.indexOf(ESCAPE_BYTE);
      if (escape >= 0) {
        if (escape > 0) await conn.write(chunk.subarray(0, escape));
        ended = "detached";
        break;
      }
      await conn.write(chunk);
    }
  })();
  try {
    await Promise.race([fromGuest, toGuest]);
  } finally {
    if (raw) Deno.stdin.setRaw(false);
    try {
      conn.close();
    } catch { /* closed */ }
  }
  return ended;
}
