/**
 * The files QEMU opens, checked for the user it runs as before any unit
 * starts: a serial log left owned by root (an operator ran something by hand)
 * would otherwise make every start of the node fail into its start limit.
 * The fix text lives here, for the broker's error and for `aos-unit doctor`.
 */

import { FIRMWARE_PACKAGE } from "../base/tools.ts";
import type { NodePlan } from "../plan/types.ts";

export interface FileNeed {
  path: string;
  access: "r" | "rw";
  /** What the file is, for the message. */
  what: string;
  /** The Debian package that provides it, when a package does (the firmware). */
  package?: string;
}

export interface Identity {
  name: string;
  uid: number;
  gids: number[];
}

/** Everything QEMU of one node (and its failure hook) opens, with the access it needs. */
export function nodeFileNeeds(node: NodePlan, failureLog: string): FileNeed[] {
  return [
    { path: node.image.path, access: "r", what: "base image" },
    { path: node.overlay, access: "rw", what: "overlay" },
    ...(node.efiVars
      ? [{ path: node.efiVars.path, access: "rw" as const, what: "UEFI variables" }]
      : []),
    ...(node.firmwareCode
      ? [{
        path: node.firmwareCode,
        access: "r" as const,
        what: "UEFI firmware",
        package: FIRMWARE_PACKAGE[node.arch],
      }]
      : []),
    { path: node.serialLog, access: "rw", what: "serial log" },
    { path: failureLog, access: "rw", what: "failure log" },
  ];
}

/** Pure: may a user with these ids access a file with this owner, group and mode? */
export function permits(
  st: { uid: number; gid: number; mode: number },
  who: Identity,
  access: "r" | "rw",
): boolean {
  if (who.uid === 0) return true;
  const bits = st.uid === who.uid
    ? (st.mode >> 6) & 7
    : who.gids.includes(st.gid)
    ? (st.mode >> 3) & 7
    : st.mode & 7;
  return (bits & 4) !== 0 && (access === "r" || (bits & 2) !== 0);
}

/** The problem with one file, and the command that fixes it; undefined when it is fine. */
export function accessProblem(
  need: FileNeed,
  who: Identity,
): { message: string; fix: string } | undefined {
  let st: Deno.FileInfo;
  try {
    st = Deno.statSync(need.path);
  } catch {
    return {
      message: `The ${need.what} ${need.path} does not exist`,
      fix: need.package
        ? `apt-get install ${need.package}`
        : `systemctl restart aos-unit (aos-unit prepare makes it)`,
    };
  }
  if (permits({ uid: st.uid ?? -1, gid: st.gid ?? -1, mode: st.mode ?? 0 }, who, need.access)) {
    return undefined;
  }
  const want = need.access === "rw" ? "write" : "read";
  return {
    message: `QEMU (user ${who.name}) cannot ${want} the ${need.what} ${need.path} ` +
      `(owner uid ${st.uid}, mode ${((st.mode ?? 0) & 0o777).toString(8)})`,
    fix: need.package ? `chmod a+r ${need.path}` : `chown ${who.name}:${who.name} ${need.path}`,
  };
}
