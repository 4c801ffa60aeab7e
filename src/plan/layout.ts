/** Where things live under the four directories (pure; shared by the planner and dispatch). */

import { LEASE_RECORD } from "../base/unit_files.ts";
import type { Paths, UnitDirs } from "./types.ts";

export function join(dir: string, name: string): string {
  return `${dir.replace(/\/+$/, "")}/${name}`;
}

/**
 * Where named units live. Their configuration is units/NAME below the default unit's
 * (root's /etc/aos-unit). Their state, logs and runtime are NAME in a sibling of each root
 * (/var/lib/aos-units/NAME, ...), a root-owned directory: systemd makes and chowns a
 * unit's directories as root, following a link in its last component, so none may sit in
 * a directory the service user could change (the default unit's roots are its).
 */
export const UNITS_DIR = "units";

/** Unit `unit`'s directories below the roots (the roots themselves for the default unit). */
export function unitDirsOf(roots: UnitDirs, unit: string | undefined): UnitDirs {
  if (unit === undefined) return roots;
  return {
    configDir: `${roots.configDir}/${UNITS_DIR}/${unit}`,
    stateDir: `${namedRoot(roots.stateDir)}/${unit}`,
    logsDir: `${namedRoot(roots.logsDir)}/${unit}`,
    runtimeDir: `${namedRoot(roots.runtimeDir)}/${unit}`,
  };
}

/** The root-owned directory named units' state (or logs, or runtime) live in: ROOTs. */
export function namedRoot(root: string): string {
  return `${root.replace(/\/+$/, "")}s`;
}

/** The roots below which unit `unit` lives, from its directories (or the roots themselves). */
export function rootsOf(dirs: UnitDirs, unit: string | undefined): UnitDirs {
  const strip = (dir: string, suffix: string) => {
    const d = dir.replace(/\/+$/, "");
    return unit !== undefined && d.endsWith(suffix) ? d.slice(0, -suffix.length) : d;
  };
  return {
    configDir: strip(dirs.configDir, `/${UNITS_DIR}/${unit}`),
    stateDir: strip(dirs.stateDir, `s/${unit}`),
    logsDir: strip(dirs.logsDir, `s/${unit}`),
    runtimeDir: strip(dirs.runtimeDir, `s/${unit}`),
  };
}

/**
 * What a node or the sidecar of any unit never sees (each an empty read-only tmpfs, with
 * only its own files bound back): every unit's nodes, leases and snapshots, every named
 * unit's state, and every unit's runtime and logs. The same for every unit, so no guest of
 * one unit sees another unit's disks, sockets or logs.
 */
export function hiddenFromHelpers(
  paths: Paths,
): { state: string[]; runtime: string[]; logs: string[] } {
  const roots = rootsOf(paths, paths.unit);
  return {
    state: [
      ...["nodes", "dhcp", "snapshots"].map((d) => join(roots.stateDir, d)),
      namedRoot(roots.stateDir),
    ],
    runtime: [roots.runtimeDir, namedRoot(roots.runtimeDir)],
    logs: [roots.logsDir, namedRoot(roots.logsDir)],
  };
}

/** Where the nodes keep their persistent files, one directory each. */
export function nodesDir(paths: Paths): string {
  return join(paths.stateDir, "nodes");
}

/** Where a node keeps its persistent files: overlay, UEFI variables, base-image record. */
export function nodeDir(paths: Paths, name: string): string {
  return join(nodesDir(paths), name);
}

/** The node's runtime directory (sockets); systemd makes it for the node's unit. */
export function nodeRunDir(paths: Paths, name: string): string {
  return join(join(paths.runtimeDir, "nodes"), name);
}

/**
 * Where a node's own sandbox leaves its crash records (JSON Lines) for the manager to move
 * into the shared failure log, which the sandbox cannot see.
 */
export function nodeFailureSpool(paths: Paths, name: string): string {
  return join(nodeDir(paths, name), "failures.spool");
}

/** The directory dnsmasq and its lease hook own: lease file and leases.json. */
export function dhcpDir(paths: Paths): string {
  return join(paths.stateDir, "dhcp");
}

/** The lease events the lease hook records (host/leases.ts), in the DHCP directory. */
export function leaseStateFile(paths: Paths): string {
  return join(dhcpDir(paths), LEASE_RECORD);
}

/** The forensic records of every node (JSON Lines), beside the serial logs. */
export function failureLogPath(logsDir: string): string {
  return join(logsDir, "vm-failures.log");
}

/**
 * The broker's own records (the KVM probe, what each image configures for itself): beside
 * the runtime root, made and written by root alone (readable by all), so nothing the
 * service user writes decides what root does; shared by every unit of the host.
 * /run/aos-unit-root in the package.
 */
export function brokerDir(paths: Paths): string {
  return paths.hostDir;
}

/** The broker's KVM probe for this boot (so `plan` agrees with what runs). */
export function kvmProbeFile(paths: Paths): string {
  return join(brokerDir(paths), "kvm-probe");
}

/** What each image configures for itself (host/image/inspect.ts), kept by size and mtime. */
export function imageCacheFile(paths: Paths): string {
  return join(brokerDir(paths), "image-network.json");
}

/** RuntimeDirectory= takes a path below /run; tests and development use other roots. */
export function relativeToRun(path: string): string {
  return path.startsWith("/run/") ? path.slice("/run/".length) : path.replace(/^\/+/, "");
}

/**
 * The manager's verdict on each node (systemd/readiness.ts): READY, STATUS= and `status`
 * all read this one judgement, so `status` never disagrees with what READY meant.
 */
export function readinessFile(paths: Paths): string {
  return join(paths.runtimeDir, "readiness.json");
}
