/**
 * The one door to subprocesses: argv arrays only (never a shell string), exit
 * codes checked, stdout and stderr read while waiting, timeouts enforced, and
 * failures turned into readable errors. Every call is recorded.
 */

import { RuntimeError } from "../base/errors.ts";
import { quoteArgv } from "../base/quote.ts";
import { packageOf } from "../base/tools.ts";

export interface RunOptions {
  /** Exit codes the caller accepts (default: only 0). */
  okCodes?: readonly number[];
  /** Kill the process after this long; reported as exit code 124. */
  timeoutMs?: number;
  stdin?: string;
  env?: Record<string, string>;
  /** Run as this user and group (setuid in the child; supplementary groups are dropped). */
  as?: { uid: number; gid: number };
}

export interface RunResult {
  argv: readonly string[];
  code: number;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  ms: number;
}

/** A subprocess that failed: argv, exit code or signal, timeout, and the tail of stderr. */
export class CommandError extends RuntimeError {
  override name = "CommandError";
  readonly result: RunResult;

  constructor(result: RunResult, hint?: string) {
    const how = result.timedOut
      ? `timed out after ${result.ms} ms`
      : result.signal
      ? `was killed by ${result.signal}`
      : `exited with code ${result.code}`;
    const tail = result.stderr.trim().split("\n").slice(-5).join("\n").trim();
    super(
      `Command failed: ${quoteArgv(result.argv)} ${how}${tail ? `: ${tail}` : ""}`,
      hint === undefined ? undefined : { hint },
    );
    this.result = result;
  }
}

/** A tool that is not installed. */
export class MissingToolError extends RuntimeError {
  override name = "MissingToolError";
}

export interface Runner {
  run(argv: readonly string[], options?: RunOptions): Promise<RunResult>;
  /** Every call made so far, oldest first. */
  readonly history: readonly RunResult[];
}

/** Creates a runner; its `history` keeps the last `limit` results, for diagnostics. */
export function createRunner(limit = 200): Runner {
  const history: RunResult[] = [];
  return {
    history,
    async run(argv, options = {}) {
      const [program, ...args] = argv;
      if (!program) throw new TypeError("runner: empty argv");
      const started = performance.now();
      let child: Deno.ChildProcess;
      try {
        child = new Deno.Command(program, {
          args,
          stdin: options.stdin === undefined ? "null" : "piped",
          stdout: "piped",
          stderr: "piped",
          ...(options.env ? { env: options.env } : {}),
          ...(options.as ? { uid: options.as.uid, gid: options.as.gid } : {}),
        }).spawn();
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) {
          const pkg = packageOf(program);
          throw new MissingToolError(
            `Cannot run ${program}: not installed${
              pkg ? ` (install the Debian package "${pkg}")` : ""
            }`,
            { permanent: true },
          );
        }
        throw error;
      }
      if (options.stdin !== undefined) {
        const writer = child.stdin.getWriter();
        await writer.write(new TextEncoder().encode(options.stdin));
        await writer.close();
      }
      let timedOut = false;
      const timer = options.timeoutMs === undefined ? undefined : setTimeout(() => {
        timedOut = true;
        try {
          child.kill("SIGKILL");
        } catch { /* already gone */ }
      }, options.timeoutMs);
      const output = await child.output();
      clearTimeout(timer);
      const decoder = new TextDecoder();
      const result: RunResult = {
        argv,
        code: timedOut ? 124 : output.code,
        signal: output.signal,
        stdout: decoder.decode(output.stdout),
        stderr: decoder.decode(output.stderr),
        timedOut,
        ms: Math.round(performance.now() - started),
      };
      history.push(result);
      if (history.length > limit) history.shift();
      if (timedOut || !(options.okCodes ?? [0]).includes(result.code) || result.signal) {
        throw new CommandError(result);
      }
      return result;
    },
  };
}
