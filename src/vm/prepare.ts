/**
 * The files a unit needs before its units start, made by the service user:
 * the DHCP directory (with leases moved from older versions' places), the
 * failure log, and each node's disks and serial log (see disk.ts).
 */

import { allSettledOrThrow } from "../base/settled.ts";
import type { Runner } from "../host/runner.ts";
import type { Logger } from "../log.ts";
import type { Paths, Plan } from "../plan/types.ts";
import { hiddenFromHelpers, join } from "../plan/layout.ts";
import type { NodeFiles, Preparation } from "../plan/preparation.ts";
import { LEASE_RECORD } from "../base/unit_files.ts";
import { prepareDisks } from "./disk.ts";

/** Lease files of versions before the DHCP directory existed move into it once. */
function migrateLeases(prep: Preparation): string[] {
  const moved: string[] = [];
  for (
    const [old, now] of [
      [`${prep.stateDir}/dnsmasq.leases`, prep.leaseFile],
      [join(prep.stateDir, LEASE_RECORD), prep.leaseState],
    ] as const
  ) {
    try {
      Deno.lstatSync(now);
      continue;
    } catch { /* not there yet */ }
    try {
      if (!Deno.lstatSync(old).isFile) continue;
      Deno.renameSync(old, now);
      moved.push(`${old} -> ${now}`);
    } catch { /* nothing to move */ }
  }
  return moved;
}

/**
 * Mode bits of a regular file owned by `uid`, or undefined (anything else is left as it
 * is). `uid` is the owner of the node's directory, which this process made (Deno.uid()
 * would need a permission of its own).
 */
function ownMode(path: string, uid: number | null): number | undefined {
  try {
    const st = Deno.lstatSync(path);
    return st.isFile && st.uid === uid ? (st.mode ?? 0) & 0o7777 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Opens a node's files to its QEMU, which runs under a uid of its own in the service
 * user's group: its disks, UEFI variables, serial log and crash spool read-write for the
 * group, its base image readable. The node's directory stays the service user's alone
 * (0750): the node writes into the files made for it and can make, rename or plant
 * nothing there. Only files this process owns, in directories only it writes, are changed.
 * @returns what changed, for the log
 */
export function openToNode(node: NodeFiles, spool: string): string[] {
  const changed: string[] = [];
  Deno.chmodSync(node.dir, 0o750);
  const { uid: me, gid: dirGid } = Deno.lstatSync(node.dir);
  try {
    Deno.lstatSync(spool);
  } catch {
    Deno.openSync(spool, { write: true, createNew: true, mode: 0o660 }).close();
  }
  const files = [node.overlay, node.serialLog, spool, ...(node.efiVars ? [node.efiVars.path] : [])];
  for (const path of files) {
    const mode = ownMode(path, me);
    if (mode === undefined) continue;
    if (Deno.lstatSync(path).gid !== dirGid) {
      Deno.chownSync(path, null, dirGid);
      changed.push(`${path} (group)`);
    }
    if (mode !== 0o660) {
      Deno.chmodSync(path, 0o660);
      changed.push(path);
    }
  }
  // The base image is the operator's: readable to the group is all it needs (no write).
  const base = ownMode(node.image.path, me);
  if (base !== undefined && (base & 0o040) === 0) {
    try {
      Deno.chmodSync(node.image.path, base | 0o040);
      changed.push(`${node.image.path} (g+r)`);
    } catch { /* outside what prepare may change: the pre-flight check names the fix */ }
  }
  return changed;
}

/**
 * dnsmasq (a uid of its own in the service user's group) writes its lease file and, through
 * its lease hook, replaces leases.json: the DHCP directory is the group's (0770), and those
 * files made by the service user (a restore, an older release) are opened to it (0660).
 * No node sees the directory.
 * @returns what changed, for the log
 */
export function openToDnsmasq(prep: Preparation): string[] {
  const dir = prep.dhcpDir;
  const changed: string[] = [];
  const st = Deno.lstatSync(dir);
  if (((st.mode ?? 0) & 0o7777) !== 0o770) {
    Deno.chmodSync(dir, 0o770);
    changed.push(dir);
  }
  for (const path of [prep.leaseFile, prep.leaseState]) {
    const mode = ownMode(path, st.uid);
    if (mode !== undefined && mode !== 0o660) {
      Deno.chmodSync(path, 0o660);
      changed.push(path);
    }
  }
  return changed;
}

/** Why the DHCP directory needs `prepare` (see openToDnsmasq()); none when it does not. */
export function dhcpPreparationNeeded(plan: Plan): string[] {
  const stat = (path: string) => {
    try {
      return Deno.lstatSync(path);
    } catch {
      return undefined;
    }
  };
  const dir = stat(plan.dnsmasq.dhcpDir);
  if (!dir || ((dir.mode ?? 0) & 0o7777) !== 0o770) return [`${plan.dnsmasq.dhcpDir} not 0770`];
  // Only what the service user made (a restore, an older release): dnsmasq's own files are
  // its own to write, whatever their mode.
  const closed = [plan.dnsmasq.leaseFile, plan.leaseState].filter((path) => {
    const st = stat(path);
    return st !== undefined && st.uid === dir.uid && ((st.mode ?? 0) & 0o660) !== 0o660;
  });
  return closed.map((path) => `${path} not open to dnsmasq`);
}

/** The directories the helper units hide that are this unit's to make (below its state). */
export function ownHiddenDirs(paths: Paths): string[] {
  return hiddenFromHelpers(paths).state.filter((dir) => dir.startsWith(`${paths.stateDir}/`));
}

export async function prepareFiles(runner: Runner, prep: Preparation, log: Logger): Promise<void> {
  Deno.mkdirSync(prep.dhcpDir, { recursive: true, mode: 0o770 });
  // The helper units hide some (TemporaryFileSystem=): each must be there before they start.
  // The others (the default unit's, root's /var/lib/aos-units) come from tmpfiles.d.
  for (const dir of prep.dirs) Deno.mkdirSync(dir, { recursive: true, mode: 0o750 });
  for (const line of migrateLeases(prep)) log.info(`Moved ${line}`);
  const dhcp = openToDnsmasq(prep);
  if (dhcp.length > 0) log.info(`Opened to dnsmasq: ${dhcp.join(", ")}`);
  Deno.writeFileSync(prep.failureLog, new Uint8Array(), { append: true, mode: 0o640 });
  // Nodes are independent (each its own directory and files): made at once, and every one
  // finished before a failure is reported (no qemu-img left running behind it).
  await allSettledOrThrow(prep.nodes.map(async (node) => {
    const created = await prepareDisks(runner, node);
    if (created.length > 0) log.info(`Node ${node.name}: created ${created.join(", ")}`);
    const opened = openToNode(node, node.spool);
    if (opened.length > 0) log.info(`Node ${node.name}: opened to its QEMU ${opened.join(", ")}`);
  }));
}
