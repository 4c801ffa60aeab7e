/** The service user's and groups' numeric ids, from /etc/passwd and /etc/group. */

import { RuntimeError } from "../base/errors.ts";

export const PASSWD_FILE = "/etc/passwd";
export const GROUP_FILE = "/etc/group";

/** uid and gid of `name` in passwd(5) text; undefined when absent. */
export function parsePasswd(text: string, name: string): { uid: number; gid: number } | undefined {
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f[0] === name && f.length >= 4) return { uid: Number(f[2]), gid: Number(f[3]) };
  }
  return undefined;
}

/** gid of group `name` in group(5) text; undefined when absent. */
export function parseGroup(text: string, name: string): number | undefined {
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f[0] === name && f.length >= 3) return Number(f[2]);
  }
  return undefined;
}

/**
 * The user's uid and primary gid.
 * @throws {RuntimeError} (permanent) when the user does not exist
 */
export function lookupUser(name: string): { uid: number; gid: number } {
  const found = parsePasswd(Deno.readTextFileSync(PASSWD_FILE), name);
  if (!found) {
    throw new RuntimeError(`The service user "${name}" does not exist`, {
      hint: "run: systemd-sysusers /usr/lib/sysusers.d/aos-unit.conf (or reinstall aos-unit)",
      permanent: true,
    });
  }
  return found;
}

export function lookupGroup(name: string): number | undefined {
  try {
    return parseGroup(Deno.readTextFileSync(GROUP_FILE), name);
  } catch {
    return undefined;
  }
}
