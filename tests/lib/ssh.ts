/**
 * SSH from inside a bed (tests/lib/bed.ts) into a test guest: every guest that
 * tests/guest/build.sh builds runs dropbear on port 22 and takes root with the
 * password `Password1` (tests/guest/README.md). The bed has openssh-client and
 * sshpass (tests/bed/bed.sh).
 */

import type { Bed } from "./bed.ts";
import type { Result } from "./proc.ts";

/** root's password on the test guests. */
export const GUEST_PASSWORD = "Password1";

/** The ssh argv (run inside the bed) for `command` on root@host. */
export function sshArgv(host: string, command: string, connectTimeoutSec = 10): string[] {
  return [
    "sshpass",
    "-p",
    GUEST_PASSWORD,
    "ssh",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    `ConnectTimeout=${connectTimeoutSec}`,
    "-o",
    "LogLevel=ERROR",
    `root@${host}`,
    command,
  ];
}

/**
 * Runs `command` as root on the guest at `host` (a name or an IP), through ssh from inside
 * the bed. `command` is one argv element, which the guest's shell runs. The exit code is
 * the command's, or 255 when ssh itself failed (5 from sshpass: the password was refused).
 */
export async function ssh(
  bed: Bed,
  host: string,
  command: string,
  options: { connectTimeoutSec?: number } = {},
): Promise<Result> {
  return await bed.exec(sshArgv(host, command, options.connectTimeoutSec));
}
