/**
 * Commands root runs on the service user's files (console, reset) do their work as
 * the service user: what root would open or delete in a directory the service user
 * can change (a socket path, a node directory) could be made to point anywhere. Run
 * as root, they start themselves again as that user, on the same terminal.
 */

import { TOOLS } from "../base/tools.ts";
import { lookupUser } from "./users.ts";

export interface AsServiceUser {
  /** The aos-unit executable to start again. */
  executable: string;
  serviceUser: string;
  env: Readonly<Record<string, string | undefined>>;
}

/**
 * @returns the exit code of the same command run as the service user, or undefined when
 *   this process is not root (or the service user is root, as in development): go on here
 */
export async function againAsServiceUser(
  args: readonly string[],
  o: AsServiceUser,
): Promise<number | undefined> {
  return (await spawnAs(args, o, "inherit"))?.code;
}

/**
 * The same, with what the command printed on its standard output (its answer to root).
 * @returns undefined when this process is not root (or the service user is root)
 */
export async function outputAsServiceUser(
  args: readonly string[],
  o: AsServiceUser,
): Promise<{ code: number; stdout: string } | undefined> {
  return await spawnAs(args, o, "piped");
}

async function spawnAs(
  args: readonly string[],
  o: AsServiceUser,
  stdout: "inherit" | "piped",
): Promise<{ code: number; stdout: string } | undefined> {
  if (Deno.uid() !== 0) return undefined;
  const user = lookupUser(o.serviceUser);
  if (user.uid === 0) return undefined;
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(o.env)) if (v !== undefined) env[k] = v;
  // In a session of its own: the terminal it inherits is not its controlling terminal, so
  // it cannot push input into root's shell (TIOCSTI), whatever runs in it.
  const child = new Deno.Command(TOOLS.setsid, {
    args: ["--wait", o.executable, ...args],
    uid: user.uid,
    gid: user.gid,
    env,
    clearEnv: true,
    stdin: "inherit",
    stdout,
    stderr: "inherit",
  }).spawn();
  if (stdout === "inherit") return { code: (await child.status).code, stdout: "" };
  const [out, status] = await Promise.all([boundedText(child.stdout), child.status]);
  return { code: status.code, stdout: out };
}

/** An answer to root is a line or two: what comes past this is read and dropped. */
const ANSWER_MAX = 4096;

async function boundedText(stream: ReadableStream<Uint8Array>): Promise<string> {
  const kept: Uint8Array[] = [];
  let bytes = 0;
  for await (const chunk of stream) {
    if (bytes < ANSWER_MAX) kept.push(chunk.subarray(0, ANSWER_MAX - bytes));
    bytes += chunk.length;
  }
  const all = new Uint8Array(Math.min(bytes, ANSWER_MAX));
  let at = 0;
  for (const c of kept) {
    all.set(c, at);
    at += c.length;
  }
  return new TextDecoder().decode(all);
}
