/**
 * The lease hook's own entry point (the bundle flavour ships it as lease-hook.js): dnsmasq
 * starts it after every DHCP ACK, and READY waits for the record it writes. The whole
 * program's bundle is 0.7 MB to parse and compile cold (no code cache); this one loads
 * only what recording a lease needs, without the logger (aos-unit(8), lease-hook). The launcher grants it the
 * lease-hook subcommand's permissions, as it would the whole program. Its lines are those
 * of `aos-unit lease-hook` (commands/lease_hook.ts), written without the logger.
 *
 * Usage (by the launcher): lease-hook.js lease-hook add|old|del MAC IP [HOSTNAME]
 */

import { EXIT_OK, EXIT_RUNTIME } from "./base/errors.ts";
import { leaseEventOf, recordedText, recordLeaseEvent } from "./host/lease_file.ts";
import { DIRECTORY_ENV, resolvePaths } from "./host/paths.ts";
import { leaseStateFile } from "./plan/layout.ts";

/** One line to the journal with its priority (sd-daemon), or to stderr as the CLI writes. */
function say(priority: 3 | 4 | 6, text: string): void {
  const line = Deno.env.get("JOURNAL_STREAM") !== undefined
    ? `<${priority}>${text}`
    : `aos-unit lease-hook: ${
      priority === 6 ? "" : priority === 4 ? "warning: " : "error: "
    }${text}`;
  console.error(line);
}

export async function leaseHookMain(argv: string[]): Promise<number> {
  const started = performance.now();
  const args = argv[0] === "lease-hook" ? argv.slice(1) : argv;
  const event = leaseEventOf(args, new Date().toISOString());
  if (event === "ignored") return EXIT_OK;
  if ("problem" in event) {
    say(4, event.problem);
    return EXIT_OK;
  }
  const paths = resolvePaths((name) =>
    (Object.values(DIRECTORY_ENV) as string[]).includes(name) ? Deno.env.get(name) : undefined
  );
  try {
    await recordLeaseEvent(leaseStateFile(paths), event);
  } catch (error) {
    say(3, (error as Error).message);
    return EXIT_RUNTIME;
  }
  say(6, recordedText(event, performance.now() - started));
  return EXIT_OK;
}

if (import.meta.main) Deno.exit(await leaseHookMain(Deno.args));
