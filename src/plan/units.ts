/** Transient systemd units: names and D-Bus properties (StartTransientUnit's a(sv)). */

import type { Accel, Paths, TransientUnit, UnitProperty } from "./types.ts";

export const MANAGER_UNIT = "aos-unit.service";
export const SLICE = "aos-unit.slice";
export const DNSMASQ_UNIT = "aos-unit-dnsmasq.service";
export const MONITOR_UNIT = "aos-unit-route-monitor.service";
export const NODE_UNIT_PREFIX = "aos-node-";

export function nodeUnitName(name: string): string {
  return `${NODE_UNIT_PREFIX}${name}.service`;
}

export function failedUnitName(name: string): string {
  return `aos-unit-vm-failed@${name}.service`;
}

/** A node is restarted at most this many times per interval, then left failed. */
export const NODE_START_LIMIT_BURST = 3;
export const NODE_START_LIMIT_INTERVAL_SEC = 300;
export const NODE_RESTART_SEC = 2;

const USEC = 1_000_000;
const MIB = 1024 * 1024;

// capability(7) numbers, for the AmbientCapabilities bit mask.
const CAP_NET_BIND_SERVICE = 10;
const CAP_NET_ADMIN = 12;
const CAP_NET_RAW = 13;

function capabilityMask(caps: number[]): number {
  return caps.reduce((mask, cap) => mask + 2 ** cap, 0);
}

/** The environment the helper units need to find aos-unit's directories (as systemd would set). */
export function directoryEnvironment(paths: Paths): string[] {
  return [
    `CONFIGURATION_DIRECTORY=${paths.configDir}`,
    `STATE_DIRECTORY=${paths.stateDir}`,
    `LOGS_DIRECTORY=${paths.logsDir}`,
    `RUNTIME_DIRECTORY=${paths.runtimeDir}`,
  ];
}

function exec(argv: string[], ignoreFailure = false): UnitProperty[2] {
  return [[argv[0], argv, ignoreFailure]];
}

/** Properties every aos-unit helper unit shares: bound to the manager, stopped before it. */
function bound(description: string, user: string): UnitProperty[] {
  return [
    ["Description", "s", description],
    // Stopping the manager stops this unit; restarting it does not restart this unit
    // (BindsTo= would, racing the manager's own graceful stop and start).
    ["StopPropagatedFrom", "as", [MANAGER_UNIT]],

    // Ordered before the manager so that on stop the manager goes first and powers guests down.
    ["Before", "as", [MANAGER_UNIT]],
    ["User", "s", user],
    ["Group", "s", user],
  ];
}

export interface NodeUnitInput {
  name: string;
  arch: string;
  accel: Accel;
  cpu: number;
  memoryMaxMiB: number;
  qemu: string[];
  executable: string;
  user: string;
  paths: Paths;
  nodeDir: string;
  stopTimeoutSec: number;
}

export function nodeUnit(n: NodeUnitInput): TransientUnit {
  return {
    name: nodeUnitName(n.name),
    properties: [
      ...bound(`AosEdge node ${n.name} (QEMU ${n.arch}, ${n.accel.toUpperCase()})`, n.user),
      ["Type", "s", "exec"],
      ["Slice", "s", SLICE],
      ["ExecStart", "a(sasb)", exec(n.qemu)],
      // Runs after every stop; records a forensic entry when the stop was a failure.
      ["ExecStopPost", "a(sasb)", exec([n.executable, "failed", n.name], true)],
      ["OnFailure", "as", [failedUnitName(n.name)]],
      ["Restart", "s", "on-failure"],
      ["RestartUSec", "t", NODE_RESTART_SEC * USEC],
      ["StartLimitIntervalUSec", "t", NODE_START_LIMIT_INTERVAL_SEC * USEC],
      ["StartLimitBurst", "u", NODE_START_LIMIT_BURST],
      ["TimeoutStopUSec", "t", (n.stopTimeoutSec + 10) * USEC],
      ["MemoryAccounting", "b", true],
      ["MemoryMax", "t", n.memoryMaxMiB * MIB],
      ["CPUAccounting", "b", true],
      ["CPUQuotaPerSecUSec", "t", n.cpu * USEC],
      ["DevicePolicy", "s", "closed"],
      [
        "DeviceAllow",
        "a(ss)",
        [["/dev/net/tun", "rw"], ...(n.accel === "kvm" ? [["/dev/kvm", "rw"]] : [])],
      ],
      // /dev/kvm for KVM; the journal for the forensic handler in ExecStopPost=.
      [
        "SupplementaryGroups",
        "as",
        n.accel === "kvm" ? ["kvm", "systemd-journal"] : ["systemd-journal"],
      ],
      ["NoNewPrivileges", "b", true],
      ["ProtectSystem", "s", "strict"],
      ["ProtectHome", "s", "yes"],
      ["PrivateTmp", "b", true],
      ["ReadWritePaths", "as", [n.nodeDir, n.paths.runtimeDir, n.paths.logsDir]],
      // The aos-unit user may create transient units through polkit (systemd < 257 cannot
      // narrow that by name): QEMU, the part a guest could break out into, gets no bus.
      ["InaccessiblePaths", "as", ["-/run/dbus"]],

      ["Environment", "as", directoryEnvironment(n.paths)],
      ["SyslogIdentifier", "s", `aos-node-${n.name}`],
    ],
  };
}

export function dnsmasqUnit(dnsmasqArgv: string[], user: string, paths: Paths): TransientUnit {
  return {
    name: DNSMASQ_UNIT,
    properties: [
      ...bound("aos-unit DHCP and DNS sidecar (dnsmasq)", user),
      ["Type", "s", "exec"],
      ["ExecStart", "a(sasb)", exec(dnsmasqArgv)],
      ["Restart", "s", "on-failure"],
      ["RestartUSec", "t", 1 * USEC],
      // DHCP needs port 67 and raw sockets; nothing else.
      [
        "AmbientCapabilities",
        "t",
        capabilityMask([CAP_NET_BIND_SERVICE, CAP_NET_ADMIN, CAP_NET_RAW]),
      ],
      [
        "CapabilityBoundingSet",
        "t",
        capabilityMask([CAP_NET_BIND_SERVICE, CAP_NET_ADMIN, CAP_NET_RAW]),
      ],
      // The lease hook (aos-unit lease-hook) reads the directories from here.
      ["Environment", "as", directoryEnvironment(paths)],
    ],
  };
}

export function monitorUnit(executable: string, user: string, paths: Paths): TransientUnit {
  return {
    name: MONITOR_UNIT,
    properties: [
      ...bound("aos-unit route monitor (smart NAT)", user),
      ["Type", "s", "exec"],
      ["ExecStart", "a(sasb)", exec([executable, "monitor"])],
      ["Restart", "s", "on-failure"],
      ["RestartUSec", "t", 1 * USEC],
      ["AmbientCapabilities", "t", capabilityMask([CAP_NET_ADMIN])],
      ["CapabilityBoundingSet", "t", capabilityMask([CAP_NET_ADMIN])],
      ["Environment", "as", directoryEnvironment(paths)],
    ],
  };
}
