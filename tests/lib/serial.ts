/**
 * Talks to a test guest over its serial unix socket (the one QEMU serves for
 * the planner's `-chardev socket,...,server=on`): waits for AOSTEST marker
 * lines and types probe commands into the guest's shell.
 */

export class SerialConsole {
  #text = "";
  #cursor = 0;
  #closed = false;
  #writer: Deno.UnixConn;

  private constructor(private readonly conn: Deno.UnixConn, readonly path: string) {
    this.#writer = conn;
    void this.#pump();
  }

  /** Connects, retrying until QEMU has created the socket. */
  static async connect(path: string, timeoutMs = 20_000): Promise<SerialConsole> {
    const deadline = performance.now() + timeoutMs;
    while (true) {
      try {
        const conn = await Deno.connect({ transport: "unix", path });
        return new SerialConsole(conn, path);
      } catch (error) {
        if (performance.now() > deadline) {
          throw new Error(`Cannot connect to serial ${path}: ${error}`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  async #pump(): Promise<void> {
    const buf = new Uint8Array(8192);
    const decoder = new TextDecoder();
    try {
      while (true) {
        const n = await this.conn.read(buf);
        if (n === null) break;
        this.#text += decoder.decode(buf.subarray(0, n), { stream: true }).replaceAll("\r", "");
      }
    } catch { /* closed */ }
    this.#closed = true;
  }

  /** Everything received so far. */
  get text(): string {
    return this.#text;
  }

  /** Waits for a line matching `pattern` after the cursor; moves the cursor past it. */
  async expect(
    pattern: RegExp,
    timeoutMs: number,
    what = String(pattern),
  ): Promise<RegExpMatchArray> {
    const deadline = performance.now() + timeoutMs;
    while (true) {
      const rest = this.#text.slice(this.#cursor);
      const lines = rest.split("\n");
      let offset = 0;
      // Only complete lines count, so a half-received marker cannot match.
      for (const line of lines.slice(0, -1)) {
        const m = line.match(pattern);
        if (m) {
          this.#cursor += offset + line.length + 1;
          return m;
        }
        offset += line.length + 1;
      }
      if (this.#closed) throw new Error(`Serial ${this.path} closed while waiting for ${what}`);
      if (performance.now() > deadline) {
        throw new Error(
          `Timed out after ${timeoutMs} ms waiting for ${what} on ${this.path}; last output:\n${
            this.#text.slice(-1500)
          }`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Moves the cursor to the end: later expectations only see new output. */
  skip(): void {
    this.#cursor = this.#text.length;
  }

  async send(line: string): Promise<void> {
    await this.#writer.write(new TextEncoder().encode(`${line}\n`));
  }

  /** Types a command and waits for the AOSTEST line it prints. */
  async probe(command: string, pattern: RegExp, timeoutMs = 15_000): Promise<RegExpMatchArray> {
    this.skip();
    await this.send(command);
    return await this.expect(pattern, timeoutMs, `${pattern} after "${command}"`);
  }

  close(): void {
    try {
      this.conn.close();
    } catch { /* already closed */ }
  }
}
