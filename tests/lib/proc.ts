/** Background processes a test starts, all killed on cleanup - even when the test fails. */

export interface Background {
  argv: string[];
  child: Deno.ChildProcess;
  log: string;
  stopped: boolean;
}

export class Processes {
  readonly list: Background[] = [];

  /** Starts argv with stdout+stderr appended to `log`. */
  start(argv: string[], log: string, env?: Record<string, string>): Background {
    const file = Deno.openSync(log, { append: true, create: true, write: true });
    const child = new Deno.Command(argv[0]!, {
      args: argv.slice(1),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      ...(env ? { env } : {}),
    }).spawn();
    const pump = async (stream: ReadableStream<Uint8Array>) => {
      for await (const chunk of stream) file.writeSync(chunk);
    };
    const done = Promise.all([pump(child.stdout), pump(child.stderr)]).finally(() => file.close());
    const bg: Background = { argv, child, log, stopped: false };
    void done;
    this.list.push(bg);
    return bg;
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
  async stop(bg: Background, graceMs = 3000): Promise<Deno.CommandStatus> {
    bg.stopped = true;
    try {
      bg.child.kill("SIGTERM");
    } catch { /* already gone */ }
    const timer = setTimeout(() => {
      try {
        bg.child.kill("SIGKILL");
      } catch { /* gone */ }
    }, graceMs);
    const status = await bg.child.status;
    clearTimeout(timer);
    return status;
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.list.map((bg) => this.stop(bg, 2000)));
  }
}

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a command to completion. */
export async function run(
  argv: string[],
  options: { env?: Record<string, string>; stdin?: string } = {},
): Promise<Result> {
  const started = performance.now();
  const child = new Deno.Command(argv[0]!, {
    args: argv.slice(1),
    stdout: "piped",
    stderr: "piped",
    stdin: options.stdin === undefined ? "null" : "piped",
    ...(options.env ? { env: options.env } : {}),
  }).spawn();
  if (options.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(options.stdin));
    await w.close();
  }
  const out = await child.output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
    ms: Math.round(performance.now() - started),
  };
}

/** Runs and throws with the output when the exit code is not 0. */
export async function must(
  argv: string[],
  options: { env?: Record<string, string> } = {},
): Promise<Result> {
  const r = await run(argv, options);
  if (r.code !== 0) throw new Error(`${argv.join(" ")} exited ${r.code}: ${r.stderr.trim()}`);
  return r;
}

/** Polls `check` until it returns a value (not undefined) or the timeout passes. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs: number,
  everyMs = 100,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  while (true) {
    const value = await check();
    if (value !== undefined) return value;
    if (performance.now() > deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
