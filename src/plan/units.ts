/**
 * Transient systemd units: names and D-Bus properties (StartTransientUnit's
 * a(sv)). Only the root broker (`aos-unit startup`, ExecStartPre=+) creates
 * them, from the root-owned configuration; the unprivileged manager may only
 * stop, restart, kill and reset them (polkit rules).
 */

import { sha256Hex } from "../base/hash.ts";
import type { NodeNames } from "../base/unit_identity.ts";
import type { hiddenFromHelpers } from "./layout.ts";
import { UNIT_NAME_ENV } from "../base/unit_files.ts";
import type { Accel, Paths, TransientUnit, UnitProperty } from "./types.ts";

type Hidden = ReturnType<typeof hiddenFromHelpers>;

/** The environment variable that carries a unit's plan fingerprint (adoption compares it). */
export const PLAN_HASH_ENV = "AOS_UNIT_PLAN";

/**
 * The environment variable marking a node unit made to load a saved state (a memory
 * snapshot's restore); its value is the snapshot's name.
 */
export const INCOMING_ENV = "AOS_UNIT_INCOMING";

/** A node is restarted at most this many times per interval, then left failed. */
export const NODE_START_LIMIT_BURST = 3;
export const NODE_START_LIMIT_INTERVAL_SEC = 300;
export const NODE_RESTART_SEC = 2;

/** systemd >= 254 has RestartMode=direct: no failed state (and no OnFailure=) between restarts. */
export const RESTART_MODE_DIRECT_SINCE = 254;

const USEC = 1_000_000;
const MIB = 1024 * 1024;

// capability(7) numbers, for the capability bit masks.
const CAP_NET_BIND_SERVICE = 10;
const CAP_NET_ADMIN = 12;
const CAP_NET_RAW = 13;

function capabilityMask(caps: number[]): number {
  return caps.reduce((mask, cap) => mask + 2 ** cap, 0);
}

/**
 * The environment the helper units need to find the unit's directories (as systemd would
 * set), and a named unit's name (its hooks act on its units only).
 */
export function directoryEnvironment(paths: Paths): string[] {
  return [
    `CONFIGURATION_DIRECTORY=${paths.configDir}`,
    `STATE_DIRECTORY=${paths.stateDir}`,
    `LOGS_DIRECTORY=${paths.logsDir}`,
    `RUNTIME_DIRECTORY=${paths.runtimeDir}`,
    ...(paths.unit === undefined ? [] : [`${UNIT_NAME_ENV}=${paths.unit}`]),
  ];
}

function exec(argv: string[], ignoreFailure = false): UnitProperty[2] {
  return [[argv[0], argv, ignoreFailure]];
}

/** MS_REC: a bind mount takes the mounts below its source along. */
const MS_REC = 16384;

/**
 * What a helper unit sees of aos-unit's shared directories: each `hidden` directory is
 * an empty read-only tmpfs (TemporaryFileSystem=), with only the paths in `keep` bound
 * back in, writable (BindPaths=). A broken-out QEMU sees its own node's files and no
 * other node's disks, sockets, serial log, or the leases and records of the unit.
 */
function onlyOwnFiles(hidden: string[], keep: string[]): UnitProperty[] {
  return [
    ["TemporaryFileSystem", "a(ss)", hidden.map((dir) => [dir, "ro"])],
    ["BindPaths", "a(ssbt)", keep.map((path) => [path, path, false, MS_REC])],
  ];
}

/**
 * The sandbox of a node or of dnsmasq: the shared one under a uid of the unit's own
 * (DynamicUser=, in the service user's group), so that a broken-out QEMU or dnsmasq can
 * neither signal nor ptrace (nor read /proc/PID/root of) another node's QEMU, dnsmasq or
 * the manager, on any systemd. The group lets the manager reach what they make (sockets,
 * leases: UMask 0007) and them the files the manager made for them (0660).
 */
function ownUidSandbox(description: string, ownUser: string, group: string): UnitProperty[] {
  return [
    ["Description", "s", description],
    ["DynamicUser", "b", true],
    ["User", "s", ownUser],
    ["Group", "s", group],
    ...sharedSandbox().map(([k, sig, v]): UnitProperty =>
      k === "UMask" ? [k, sig, 0o007] : [k, sig, v]
    ),
  ];
}

/**
 * The sandbox every helper unit shares. No unit is bound to the manager
 * (BindsTo=/StopPropagatedFrom= would stop guests when the manager crashes):
 * the manager stops them itself on a real stop.
 */
function sharedSandbox(): UnitProperty[] {
  return [
    ["NoNewPrivileges", "b", true],
    ["ProtectSystem", "s", "strict"],
    ["ProtectHome", "s", "yes"],
    ["PrivateTmp", "b", true],
    ["ProtectKernelTunables", "b", true],
    ["ProtectKernelModules", "b", true],
    ["ProtectKernelLogs", "b", true],
    ["ProtectControlGroups", "b", true],
    ["ProtectClock", "b", true],
    ["ProtectHostname", "b", true],
    ["ProtectProc", "s", "invisible"],
    // The set of namespace types still allowed: none.
    ["RestrictNamespaces", "t", 0],
    ["RestrictRealtime", "b", true],
    ["RestrictSUIDSGID", "b", true],
    ["LockPersonality", "b", true],
    ["RemoveIPC", "b", true],
    ["SystemCallArchitectures", "as", ["native"]],
    // (allow-list, syscalls); seccomp: QEMU's own -sandbox filter goes on top.
    ["SystemCallFilter", "(bas)", [true, ["@system-service", "seccomp"]]],
    ["SystemCallErrorNumber", "i", 1], // EPERM
    // No bus: the aos-unit user's polkit grants (stop/restart/kill aos-unit's units) stay
    // with the manager, and nothing here can talk to systemd or resolved.
    ["InaccessiblePaths", "as", ["-/run/dbus"]],
    ["UMask", "u", 0o027],
  ];
}

/** systemd >= 257 has PrivatePIDs=: a PID namespace per process (see privatePids()). */
export const PRIVATE_PIDS_SINCE = 257;

/**
 * A PID namespace of its own, where systemd has one: a broken-out QEMU (or dnsmasq) sees
 * and signals no other process, although they all run as the one service user.
 */
function privatePids(systemdVersion: number): UnitProperty[] {
  return systemdVersion >= PRIVATE_PIDS_SINCE ? [["PrivatePIDs", "s", "yes"]] : [];
}

/** systemd >= 254: restart in place, so a crash is never a "failed" state (see RestartMode=). */
function restartMode(systemdVersion: number): UnitProperty[] {
  return systemdVersion >= RESTART_MODE_DIRECT_SINCE ? [["RestartMode", "s", "direct"]] : [];
}

/**
 * A short fingerprint of the properties given: a running unit with the same
 * fingerprint is adopted as it is, one with another is replaced.
 */
export function planHash(properties: readonly UnitProperty[], extra = ""): string {
  return sha256Hex(JSON.stringify(properties) + extra).slice(0, 16);
}

/**
 * What a running guest is: its QEMU command line (machine, disks, network, firmware) and
 * the resources and devices it has. A change here replaces the node; a change anywhere
 * else (sandbox, hooks, restart policy, environment) waits for the node's next start, so
 * that an upgrade never reboots a guest for a property the guest cannot see.
 */
const NODE_HARDWARE = new Set([
  "ExecStart",
  "MemoryMax",
  "CPUQuotaPerSecUSec",
  "DeviceAllow",
  "SupplementaryGroups",
  "NetworkNamespacePath",
]);

function withPlanHash(
  name: string,
  properties: UnitProperty[],
  extra: string,
  fingerprinted?: ReadonlySet<string>,
): TransientUnit {
  const hash = fingerprinted
    ? planHash(properties.filter(([key]) => fingerprinted.has(key)), `hardware\n${extra}`)
    : planHash(properties, extra);
  return {
    name,
    properties: properties.map(([key, sig, value]) =>
      key === "Environment"
        ? [key, sig, [...(value as string[]), `${PLAN_HASH_ENV}=${hash}`]] as UnitProperty
        : [key, sig, value] as UnitProperty
    ),
    hash,
    // Units made before fingerprints covered only the hardware carry the hash of every
    // property: the same guest, adopted too.
    ...(fingerprinted ? { accepts: [planHash(properties, extra)] } : {}),
  };
}

export interface NodeUnitInput {
  name: string;
  /** The node's names in its unit's record: unit, dynamic user, failed-unit instance. */
  names: NodeNames;
  /** The unit's slice. */
  slice: string;
  arch: string;
  accel: Accel;
  cpu: number;
  memoryMaxMiB: number;
  qemu: string[];
  /** The ExecStop= hook: aos-unit powerdown while QEMU runs, nothing after it exited. */
  stopHook: string;
  /**
   * The ExecStopPost= hook: records a failure (aos-unit failed) and nothing on a clean stop.
   * It runs in the node's sandbox, so it writes the record into the node's own directory;
   * the manager moves it into the shared failure log, which no node can write.
   */
  stoppedHook: string;
  user: string;
  paths: Paths;
  nodeDir: string;
  /** The node's runtime directory (sockets), absolute. */
  runDir: string;
  /** The node's runtime directory, relative to /run (RuntimeDirectory=). */
  runtimeDirectory: string;
  serialLog: string;
  /** What no node sees (plan/layout.ts, hiddenFromHelpers) but its own files. */
  hidden: Hidden;
  stopTimeoutSec: number;
  systemdVersion: number;
  /** Anything outside the unit that a running guest depends on (its network). */
  attachedTo: string;
  /** The network namespace it joins (an isolated unit's), made before by the broker. */
  netns?: string;
}

/** Joins an isolated unit's namespace, where its taps and bridge are. */
function inNamespace(netns: string | undefined): UnitProperty[] {
  return netns ? [["NetworkNamespacePath", "s", netns]] : [];
}

/**
 * A node's unit. It runs under a uid of its own, made by systemd for the unit (DynamicUser=,
 * names.user): stable across restarts (hashed from the name), gone when the unit is.
 */
export function nodeUnit(n: NodeUnitInput): TransientUnit {
  return withPlanHash(
    n.names.unit,
    [
      ...ownUidSandbox(
        `AosEdge node ${n.name} (QEMU ${n.arch}, ${n.accel.toUpperCase()})`,
        n.names.user,
        n.user,
      ),
      ["Type", "s", "exec"],
      ["Slice", "s", n.slice],
      ["ExecStart", "a(sasb)", exec(n.qemu)],
      // Every stop asks the guest first (ACPI power button over QMP) and waits for it.
      [
        "ExecStop",
        "a(sasb)",
        exec([n.stopHook, n.name, "--timeout", String(n.stopTimeoutSec)]),
      ],
      // After every stop; records a forensic entry only when the stop was a failure.
      ["ExecStopPost", "a(sasb)", exec([n.stoppedHook, n.name], true)],
      ["OnFailure", "as", [n.names.failedUnit]],
      ["Restart", "s", "on-failure"],
      ...restartMode(n.systemdVersion),
      ["RestartUSec", "t", NODE_RESTART_SEC * USEC],
      ["StartLimitIntervalUSec", "t", NODE_START_LIMIT_INTERVAL_SEC * USEC],
      ["StartLimitBurst", "u", NODE_START_LIMIT_BURST],
      // The powerdown gets stopTimeoutSec; systemd signals QEMU only after that.
      ["TimeoutStopUSec", "t", (n.stopTimeoutSec + 5) * USEC],
      ["MemoryAccounting", "b", true],
      ["MemoryMax", "t", n.memoryMaxMiB * MIB],
      ["CPUAccounting", "b", true],
      ["CPUQuotaPerSecUSec", "t", n.cpu * USEC],
      ["TasksMax", "t", 512],
      ["DevicePolicy", "s", "closed"],
      [
        "DeviceAllow",
        "a(ss)",
        [["/dev/net/tun", "rw"], ...(n.accel === "kvm" ? [["/dev/kvm", "rw"]] : [])],
      ],
      ...(n.accel === "kvm" ? [["SupplementaryGroups", "as", ["kvm"]] as UnitProperty] : []),
      // QEMU never needs a capability: the tap is made for it by the broker.
      ["CapabilityBoundingSet", "t", 0],
      ["RestrictAddressFamilies", "(bas)", [true, ["AF_UNIX"]]],
      ["IPAddressDeny", "a(iayu)", [[2, [0, 0, 0, 0], 0], [10, new Array(16).fill(0), 0]]],
      // Sockets live in a directory of the node's own (systemd makes it before the sandbox).
      ["RuntimeDirectory", "as", [n.runtimeDirectory]],
      ["RuntimeDirectoryMode", "u", 0o750],
      // Visible and writable: this node's disks and UEFI variables, its sockets, its serial
      // log (made by `prepare`). Nothing else of this or any other unit's directories.
      ...onlyOwnFiles(
        [...n.hidden.state, ...n.hidden.runtime, ...n.hidden.logs],
        [n.nodeDir, n.runDir, n.serialLog],
      ),
      ...privatePids(n.systemdVersion),
      ...inNamespace(n.netns),
      ["Environment", "as", directoryEnvironment(n.paths)],
      ["SyslogIdentifier", "s", n.names.process],
    ],
    n.attachedTo,
    NODE_HARDWARE,
  );
}

/**
 * A node's unit made to load a saved state: its QEMU waits (`-incoming defer`) until the
 * manager streams the state of snapshot `snapshot` in. The fingerprint stays the plain
 * unit's: the guest is the same hardware, so a later start adopts it as it runs, and never
 * boots it again. The marker tells the manager which QEMU waits for a state, and that one of
 * them started again (after a crash) can never get one: the manager then hands it back to
 * the broker, which makes it the plain unit again.
 */
export function withIncoming(unit: TransientUnit, snapshot: string): TransientUnit {
  return {
    ...unit,
    properties: unit.properties.map(([key, sig, value]): UnitProperty => {
      if (key === "ExecStart") {
        const [path, argv, ignore] = (value as [string, string[], boolean][])[0]!;
        // -S: paused once loaded, whatever the guest was when saved (a live save records
        // the first guest as running), until the manager resumes them all at once.
        return [key, sig, [[path, [...argv, "-S", "-incoming", "defer"], ignore]]];
      }
      if (key === "Environment") {
        return [key, sig, [...(value as string[]), `${INCOMING_ENV}=${snapshot}`]];
      }
      return [key, sig, value];
    }),
  };
}

export interface DnsmasqUnitInput {
  /** The sidecar's unit and its DynamicUser= (in the service user's group). */
  name: string;
  dynamicUser: string;
  argv: string[];
  user: string;
  paths: Paths;
  /** The directory holding dnsmasq's lease file and leases.json (the only place it writes). */
  dhcpDir: string;
  /** What the sidecar never sees (plan/layout.ts, hiddenFromHelpers) but its DHCP directory. */
  hidden: Hidden;
  systemdVersion: number;
  attachedTo: string;
  /** The network namespace it joins (an isolated unit's). */
  netns?: string;
}

/** The sidecar's view: everything hidden but its own DHCP directory. */
function sidecarView(h: Hidden, dhcpDir: string): UnitProperty[] {
  const hidden = [...h.state.filter((dir) => dir !== dhcpDir), ...h.runtime, ...h.logs];
  const inside = hidden.some((dir) => dhcpDir.startsWith(`${dir}/`));
  return inside ? onlyOwnFiles(hidden, [dhcpDir]) : [
    ["TemporaryFileSystem", "a(ss)", hidden.map((dir) => [dir, "ro"])],
  ];
}

export function dnsmasqUnit(d: DnsmasqUnitInput): TransientUnit {
  const caps = capabilityMask([CAP_NET_BIND_SERVICE, CAP_NET_ADMIN, CAP_NET_RAW]);
  return withPlanHash(
    d.name,
    [
      ...ownUidSandbox("aos-unit DHCP and DNS sidecar (dnsmasq)", d.dynamicUser, d.user),
      ["Type", "s", "exec"],
      ["ExecStart", "a(sasb)", exec(d.argv)],
      // A crash is repaired in place within a second; guests and the manager are not touched.
      ["Restart", "s", "on-failure"],
      ...restartMode(d.systemdVersion),
      ["RestartUSec", "t", USEC / 2],
      ["StartLimitIntervalUSec", "t", 60 * USEC],
      ["StartLimitBurst", "u", 10],
      // DHCP needs port 67 and raw sockets; nothing else.
      ["AmbientCapabilities", "t", caps],
      ["CapabilityBoundingSet", "t", caps],
      ["RestrictAddressFamilies", "(bas)", [true, [
        "AF_UNIX",
        "AF_INET",
        "AF_INET6",
        "AF_NETLINK",
        "AF_PACKET",
      ]]],
      ["MemoryMax", "t", 64 * MIB],
      ["TasksMax", "t", 32],
      ["ReadWritePaths", "as", [d.dhcpDir]],
      // No node's disks, sockets or serial log, nothing of the runtime directories, and no
      // other unit's leases (a named unit's own DHCP directory is bound back in).
      ...sidecarView(d.hidden, d.dhcpDir),
      ...privatePids(d.systemdVersion),
      ...inNamespace(d.netns),
      // The lease hook (aos-unit lease-hook) reads the directories from here.
      ["Environment", "as", directoryEnvironment(d.paths)],
    ],
    d.attachedTo,
  );
}
