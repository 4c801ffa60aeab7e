/**
 * The files QEMU opens, checked for the user it runs as before any unit
 * starts: a serial log left owned by root (an operator ran something by hand)
 * would otherwise make every start of the node fail into its start limit.
 * The fix text lives here, for the broker's error and for `aos-unit doctor`.
 */

import { FIRMWARE_PACKAGE } from "../base/tools.ts";
import type { NodePlan } from "../plan/types.ts";
import { NODE_UNIT_PREFIX } from "../base/unit_identity.ts";

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
  /**
   * The service user, when `who` is a node's own user in its group: fixes hand a file to
   * it, and, before `prepare` ran (doctor), files it owns are fine (`prepare` opens them
   * to the group).
   */
  owner?: { name: string; uid?: number };
}

/**
 * What a node's QEMU runs as: a uid of its own that owns none of the unit's files
 * (DynamicUser=), in the service user's group.
 * @param prepared whether `prepare` already ran: then every file must be open to the group
 */
export function nodeIdentity(
  serviceUser: string,
  uid: number,
  gid: number,
  prepared: boolean,
): Identity {
  return {
    name: `${NODE_UNIT_PREFIX}NAME, group ${serviceUser}`,
    uid: -1,
    gids: [gid],
    owner: prepared ? { name: serviceUser } : { name: serviceUser, uid },
  };
}

/** Everything QEMU of one node (and its failure hook) opens, with the access it needs. */
export function nodeFileNeeds(node: NodePlan, spool: string): FileNeed[] {
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
    { path: spool, access: "rw", what: "crash record spool" },
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
  if (who.owner?.uid !== undefined && st.uid === who.owner.uid) return undefined;
  const want = need.access === "rw" ? "write" : "read";
  const owner = who.owner?.name ?? who.name;
  return {
    message: `QEMU (user ${who.name}) cannot ${want} the ${need.what} ${need.path} ` +
      `(owner uid ${st.uid}, mode ${((st.mode ?? 0) & 0o777).toString(8)})`,
    fix: need.package ? `chmod a+r ${need.path}` : `chown ${owner}:${owner} ${need.path}`,
  };
}
