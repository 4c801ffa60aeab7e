/**
 * Which Deno permissions each subcommand needs. The executable is started
 * with the union of all sets (explicit lists, never blanket grants); dispatch
 * then revokes everything the chosen subcommand does not need, so a bug in one
 * subcommand cannot reach what only another one may touch.
 */

import type { Paths } from "./plan/types.ts";
import {
  EXAMPLES_DIR,
  EXECUTABLE,
  FIRMWARE_DIRS,
  GROUP_FILE,
  MACHINE_ID_FILE,
  PASSWD_FILE,
  POLKIT_RULES,
  SYSTEM_BUS_SOCKET,
} from "./base/host_files.ts";
import { isNodeName } from "./base/names.ts";
import { rootsOf } from "./host/paths.ts";
import { STOP_POST_ENV, type Subcommand, SUBCOMMANDS } from "./base/subcommands.ts";
import { QEMU_BINARY, TOOLS } from "./base/tools.ts";
import {
  brokerDir,
  dhcpDir,
  imageCacheFile,
  kvmProbeFile,
  nodeRunDir,
  nodesDir,
} from "./plan/layout.ts";

export { NOTIFY_SOCKET_DEFAULT } from "./base/host_files.ts";
export { type Subcommand, SUBCOMMANDS } from "./base/subcommands.ts";

export interface PermissionSet {
  read: string[];
  write: string[];
  run: string[];
  net: string[];
  env: string[];
  sys: string[];
}

export type PermissionName = keyof PermissionSet;
const NAMES: PermissionName[] = ["read", "write", "run", "net", "env", "sys"];

/** Everything dispatch reads from the environment before it narrows permissions. */
export const DISPATCH_ENV = [
  "CONFIGURATION_DIRECTORY",
  "STATE_DIRECTORY",
  "LOGS_DIRECTORY",
  "RUNTIME_DIRECTORY",
  "JOURNAL_STREAM",
  "NOTIFY_SOCKET",
  "NO_COLOR",
  "AOS_UNIT_NAME",
  "AOS_UNIT_SERVICE_USER",
  "AOS_UNIT_EXECUTABLE",
  "AOS_UNIT_LEASE_HOOK",
  "AOS_UNIT_NODE_STOPPED_HOOK",
  "AOS_UNIT_DEBUG",
  "SERVICE_RESULT",
] as const;

/** npm:yaml reads these on every parse. */
const YAML_ENV = ["LOG_TOKENS", "LOG_STREAM"];

export interface PermissionContext {
  paths: Paths;
  notifySocket: string;
  /** The aos-unit executable the broker runs `prepare` with (AOS_UNIT_EXECUTABLE in tests). */
  executable?: string | undefined;
  /** The node `console` or `powerdown` talks to: its socket is the only one they may open. */
  node?: string | undefined;
}

/** A node's sockets `console` and `powerdown` open (none for a name that is not one). */
export function nodeSockets(
  p: Paths,
  node: string | undefined,
): { qmp: string[]; serial: string[] } {
  if (node === undefined || !isNodeName(node)) return { qmp: [], serial: [] };
  return {
    qmp: [`unix:${nodeRunDir(p, node)}/qmp`],
    // The documented symlink (Deno checks the path it is given, not the link's target), and
    // the node's own socket, which console connects to once the link is found to lead there.
    serial: [`unix:${p.runtimeDir}/${node}.serial`, `unix:${nodeRunDir(p, node)}/serial`],
  };
}

function set(partial: Partial<PermissionSet>): PermissionSet {
  return {
    read: partial.read ?? [],
    write: partial.write ?? [],
    run: partial.run ?? [],
    net: partial.net ?? [],
    env: partial.env ?? [],
    sys: partial.sys ?? [],
  };
}

/** Talking to systemd / resolved over the system bus (bus.ts: EXTERNAL authentication needs the uid). */
function dbus(): Partial<PermissionSet> {
  return {
    read: [SYSTEM_BUS_SOCKET],
    write: [SYSTEM_BUS_SOCKET],
    net: [`unix:${SYSTEM_BUS_SOCKET}`],
    sys: ["uid"],
  };
}

/** Starting the same command again as the service user: passwd, the uid, the executable. */
function asServiceUser(ctx: PermissionContext): Partial<PermissionSet> {
  return { read: [PASSWD_FILE], run: [TOOLS.setsid, ctx.executable ?? EXECUTABLE], sys: ["uid"] };
}

function merge(...parts: Partial<PermissionSet>[]): PermissionSet {
  const out = set({});
  for (const part of parts) {
    for (const name of NAMES) {
      for (const entry of part[name] ?? []) if (!out[name].includes(entry)) out[name].push(entry);
    }
  }
  for (const name of NAMES) out[name].sort();
  return out;
}

/** What a planning subcommand reads: config, images listing, host facts. */
function planning(p: Paths): Partial<PermissionSet> {
  return {
    read: [
      p.configDir,
      p.stateDir,
      // The base images, shared by every unit.
      p.imagesDir,
      p.runtimeDir,
      // The broker's records: the KVM probe, what the images configure.
      brokerDir(p),
      MACHINE_ID_FILE,
      ...FIRMWARE_DIRS,
      // Whether each guest architecture's emulator is installed.
      QEMU_BINARY.x86_64,
      QEMU_BINARY.aarch64,
    ],
    env: YAML_ENV,
  };
}

/** The permission table: subcommand -> what it may touch. One entry per subcommand. */
const TABLE: Record<Subcommand, (p: Paths, ctx: PermissionContext) => PermissionSet> = {
  validate: (p) =>
    merge({
      read: [
        p.configDir,
        // Every unit's configuration: a subnet another unit uses is a warning.
        rootsOf(p, p.unit).configDir,
        EXAMPLES_DIR,
        p.stateDir,
        p.imagesDir,
        // The image-network cache the broker keeps.
        imageCacheFile(p),
        kvmProbeFile(p),
        ...FIRMWARE_DIRS,
        QEMU_BINARY.x86_64,
        QEMU_BINARY.aarch64,
      ],
      env: YAML_ENV,
    }),
  plan: (p) => merge(planning(p), { read: [EXAMPLES_DIR] }),
  // The configuration root (every unit's directory below it) and the services' states.
  // Every unit's configuration, for its forwards.
  list: (p) => merge(dbus(), { read: [rootsOf(p, p.unit).configDir], env: YAML_ENV }),
  status: (p) => merge(planning(p), dbus(), { read: [p.logsDir], run: [TOOLS.ip] }),
  // Looks at everything the unit needs; changes nothing (no write grant at all).
  doctor: (p) =>
    merge(planning(p), dbus(), {
      read: [
        p.logsDir,
        PASSWD_FILE,
        GROUP_FILE,
        POLKIT_RULES,
        TOOLS.ip,
        TOOLS.nft,
        TOOLS.dnsmasq,
        TOOLS.conntrack,
        TOOLS.qemuImg,
      ],
      run: [
        TOOLS.ip,
        TOOLS.nft,
        TOOLS.ss,
        TOOLS.sysctl,
        TOOLS.cat,
        TOOLS.qemuX86,
        TOOLS.qemuArm,
      ],
    }),
  // Run by root, both start themselves again as the service user (host/as_service_user.ts).
  console: (p, ctx) =>
    merge(asServiceUser(ctx), {
      read: [p.runtimeDir],
      write: [p.runtimeDir],
      net: nodeSockets(p, ctx.node).serial,
    }),
  // Pure: reads the configuration and the images' headers (their virtual size), writes nothing.
  export: (p) => merge({ read: [p.configDir, EXAMPLES_DIR, p.imagesDir], env: YAML_ENV }),
  reset: (p, ctx) => merge(planning(p), dbus(), asServiceUser(ctx), { write: [p.stateDir] }),
  // Root stops and starts aos-unit.service around a restore (holding a lock in its own
  // directory); the files are the service user's (started again as that user). net: every
  // node's QMP socket (named after the configuration; Deno matches unix sockets exactly,
  // and a unix socket needs write access to its path).
  snapshot: (p, ctx) =>
    merge(planning(p), dbus(), asServiceUser(ctx), {
      write: [p.stateDir, p.runtimeDir, brokerDir(p)],
      net: ["*"],
      // Each running node's pending overlay is made before the pause (QEMU only opens it);
      // a memory restore asks each emulator which machine version its alias stands for.
      run: [TOOLS.qemuImg, TOOLS.qemuX86, TOOLS.qemuArm],
    }),
  // The root broker: reads the root-owned configuration and writes only whole files in
  // the runtime directory and its own records; everything in the state directory is made by
  // `prepare`.
  startup: (p, ctx) =>
    merge(planning(p), dbus(), {
      // Every unit's configuration: a host port another unit forwards is refused.
      read: [p.logsDir, PASSWD_FILE, GROUP_FILE, rootsOf(p, p.unit).configDir],
      write: [p.runtimeDir, brokerDir(p)],
      run: [
        TOOLS.ip,
        TOOLS.nft,
        // A named unit's namespace is made, and entered, in PID 1's mount namespace.
        TOOLS.nsenter,
        TOOLS.sysctl,
        TOOLS.ss,
        TOOLS.dnsmasq,
        TOOLS.qemuX86,
        TOOLS.qemuArm,
        ctx.executable ?? EXECUTABLE,
      ],
    }),
  prepare: (p, ctx) =>
    merge(planning(p), asServiceUser(ctx), {
      read: [p.logsDir],
      write: [p.stateDir, p.logsDir],
      run: [TOOLS.qemuImg],
    }),
  // net: the readiness probe decides how long a guest gets, QMP asks it to power down.
  cleanup: (p) =>
    merge(planning(p), dbus(), {
      read: [dhcpDir(p)],
      write: [p.runtimeDir],
      // nsenter: a named unit's namespace is deleted in PID 1's mount namespace.
      run: [TOOLS.ip, TOOLS.nft, TOOLS.nsenter],
      net: ["*"],
    }),
  // net stays unscoped here: readiness probes connect to leased addresses, and the
  // QMP sockets are named after the configuration (Deno matches unix sockets exactly).
  run: (p, ctx) =>
    merge(planning(p), dbus(), {
      read: [p.logsDir],
      // nodes/: the crash records each node's sandbox spools there (vm/failures.ts).
      write: [p.runtimeDir, p.logsDir, nodesDir(p), ctx.notifySocket],
      net: [`unix:${p.runtimeDir}/notify.sock`, `unix:${ctx.notifySocket}`, "*"],
      run: [TOOLS.ip, TOOLS.nft, TOOLS.conntrack, TOOLS.ln, TOOLS.fallocate],
    }),
  monitor: (p) =>
    merge(planning(p), {
      read: [p.logsDir],
      write: [p.runtimeDir, p.logsDir],
      run: [TOOLS.ip, TOOLS.nft, TOOLS.conntrack],
    }),
  powerdown: (p, ctx) =>
    merge({
      read: [p.runtimeDir],
      write: [p.runtimeDir],
      net: nodeSockets(p, ctx.node).qmp,
    }),
  "lease-hook": (p) =>
    merge({
      read: [dhcpDir(p)],
      write: [dhcpDir(p)],
    }),
  failed: (p) =>
    merge(dbus(), {
      // The logs, and the nodes' spools (nodes/NAME/failures.spool).
      read: [p.logsDir, nodesDir(p)],
      write: [p.logsDir, nodesDir(p)],
      run: [TOOLS.journalctl],
      env: [...STOP_POST_ENV],
    }),
};

/** What `command` may touch. */
export function permissionsFor(command: Subcommand, ctx: PermissionContext): PermissionSet {
  return TABLE[command](ctx.paths, ctx);
}

/** The union over every subcommand: what the executable is started with. */
export function unionPermissions(ctx: PermissionContext): PermissionSet {
  return merge(
    ...SUBCOMMANDS.map((c) => permissionsFor(c, ctx)),
    { env: [...DISPATCH_ENV] },
  );
}

/**
 * `deno run` / `deno compile` flags granting this set.
 *
 * `net`: "*" stands for an unscoped grant. Deno 2.9 matches unix sockets by
 * exact path only (no directory scope) and cannot narrow an unscoped grant to
 * a list, so `run` and `cleanup` (readiness probes to leased addresses, QMP
 * sockets named by the configuration) keep it whole; `console` and
 * `powerdown` get their one node's socket from the launcher, which reads the
 * node from their argv (see packaging/deno_flags.ts); the others get exact
 * paths or lose `net` entirely.
 */
export function denoFlags(p: PermissionSet): string[] {
  const flags = ["--no-prompt"];
  for (const name of NAMES) {
    if (p[name].length === 0) continue;
    flags.push(
      name === "net" && p.net.includes("*")
        ? "--allow-net"
        : `--allow-${name}=${p[name].join(",")}`,
    );
  }
  return flags;
}

function descriptor(name: PermissionName, entry: string): Deno.PermissionDescriptor {
  switch (name) {
    case "read":
    case "write":
      return { name, path: entry };
    case "run":
      return { name, command: entry };
    case "net":
      return { name, host: entry };
    case "env":
      return { name, variable: entry };
    case "sys":
      return { name, kind: entry as NonNullable<Deno.SysPermissionDescriptor["kind"]> };
  }
}

/**
 * True when the process holds any blanket grant (`-A`, or a bare --allow-write,
 * --allow-env, ...), which revoke cannot narrow. A bare --allow-net is part of
 * the packaged union (see `run`) and narrowed by revoking it whole.
 */
export function hasBlanketGrant(): boolean {
  return (["read", "write", "run", "env", "sys", "ffi"] as const).some((name) =>
    Deno.permissions.querySync({ name }).state === "granted"
  );
}

/**
 * Revokes every entry of `granted` that `needed` does not contain, and every
 * kind of permission neither mentions (ffi, import of new code stays as is).
 * @returns the entries revoked, for a debug log
 */
export function narrowTo(granted: PermissionSet, needed: PermissionSet): string[] {
  const revoked: string[] = [];
  if (needed.net.length === 0) {
    Deno.permissions.revokeSync({ name: "net" });
    revoked.push("net");
  }
  // Deno's revoke also drops every grant that covers the entry (its parent directories):
  // an entry inside a needed directory must stay.
  const covered = (name: PermissionName, entry: string) =>
    needed[name].some((n) =>
      n === entry || ((name === "read" || name === "write") && entry.startsWith(`${n}/`))
    );
  for (const name of NAMES) {
    if (name === "net") continue;
    for (const entry of granted[name]) {
      if (covered(name, entry)) continue;
      Deno.permissions.revokeSync(descriptor(name, entry));
      revoked.push(`${name}:${entry}`);
    }
  }
  Deno.permissions.revokeSync({ name: "ffi" });
  return revoked;
}
