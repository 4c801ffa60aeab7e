/** The plan: everything aos-unit will create, as plain data. */

import type { Arch, Forward } from "../base/config_types.ts";
import type { Diagnostic } from "../base/errors.ts";
import type { ImageNetwork } from "../base/image_network.ts";
import type { Isolation } from "./isolation.ts";
import type { NetworkPlan } from "./network.ts";
import type { PortForward, TapGuard } from "./nft.ts";
import type { UnitIdentity } from "../base/unit_identity.ts";

/** The four directories of one unit (systemd's, or their FHS defaults). */
export interface UnitDirs {
  configDir: string;
  stateDir: string;
  logsDir: string;
  runtimeDir: string;
}

/** Where one unit lives: its own four directories, and the host-wide ones it shares. */
export interface Paths extends UnitDirs {
  /** The unit these are (undefined: the default unit, aos-unit.service). */
  unit: string | undefined;
  /** The base images, shared by every unit and never written: the state root. */
  imagesDir: string;
  /** Root's host-wide records (KVM probe, image-network cache): /run/aos-unit-root. */
  hostDir: string;
}

export interface Firmware {
  /** Read-only firmware code (OVMF_CODE / AAVMF_CODE). */
  code: string;
  /** Template for a node's persistent variable store. */
  vars: string;
}

export interface ImageFile {
  name: string;
  readable: boolean;
}

/** What the planner needs to know about the host, gathered by src/host. */
export interface HostFacts {
  machineId: string;
  hostArch: Arch;
  /** /dev/kvm exists AND a probe showed it works (presence alone is not enough). */
  kvmUsable: boolean;
  firmware: Partial<Record<Arch, Firmware>>;
  /** The QEMU system emulators installed, by guest architecture. */
  emulators: Partial<Record<Arch, boolean>>;
  /** The .qcow2 files in the images directory (the state root, shared by every unit). */
  images: ImageFile[];
  /**
   * The group every unit's nodes, sidecar and manager share (aos-unit: it holds the base
   * images), named after the default unit's service user. A named unit's manager runs as a
   * user of its own in it (UnitNames.serviceUser).
   */
  serviceUser: string;
  /** The aos-unit executable, for ExecStart/ExecStopPost of helper units. */
  executable: string;
  /** The program dnsmasq runs as its dhcp-script (it takes no arguments). */
  leaseHook: string;
  /** The node units' ExecStop= hook (ACPI powerdown while QEMU runs). */
  nodeStopHook: string;
  /** The node units' ExecStopPost= hook (records failures only). */
  nodeStoppedHook: string;
  /** systemd's version number (252, 257, ...); 0 when unknown (then 252's semantics). */
  systemdVersion: number;
  /** Interfaces that currently carry a default route. */
  uplinks: string[];
  /** The address each MAC holds now (lease records), so a running dynamic node keeps it. */
  leases?: Record<string, string>;
  /** What each readable image configures for itself (host/image/inspect.ts), by file name. */
  imageNetworks?: Record<string, ImageNetwork>;
  /**
   * The host's routes (CIDRs) on any link but this unit's own: an isolated unit's host
   * block is chosen clear of them (plan/isolation.ts).
   */
  takenSubnets?: string[];
  /** The host block an isolated unit holds now (network.conf): kept while it is free. */
  hostBlock?: string;
}

/** A D-Bus property of a transient unit: name, D-Bus signature, value (numbers for t/u). */
export type UnitProperty = [name: string, signature: string, value: unknown];

export interface TransientUnit {
  name: string;
  properties: UnitProperty[];
  /** Fingerprint of what the unit runs (also in the unit's environment): adoption compares it. */
  hash: string;
  /** Older fingerprints of the same unit that a running unit may carry and still be adopted. */
  accepts?: string[];
}

export type Accel = "kvm" | "tcg";

export interface NodePlan {
  name: string;
  arch: Arch;
  accel: Accel;
  cpu: number;
  memMiB: number;
  /** MemoryMax: guest RAM plus QEMU's own overhead (see memoryMaxMiB). */
  memoryMaxMiB: number;
  mac: string;
  tap: string;
  /** Reserved address, or undefined for a dynamic lease. */
  ip: string | undefined;
  /** The one address the node gets and may use: its reservation, or its place in the pool. */
  address: string;
  /** Host ports forwarded to the node (unit_config.yaml `forward:`). */
  forwards: Forward[];
  uefi: boolean;
  machineType: string;
  cpuType: string;
  image: {
    file: string;
    path: string;
    /** explicit: from `image:`; discovered: matched the naming rule; expected: nothing found. */
    source: "explicit" | "discovered" | "expected";
    found: boolean;
    /** The network the image configures for itself, when it could be read. */
    network?: ImageNetwork;
  };
  /** This node's directory under the state directory. */
  dir: string;
  /** Copy-on-write overlay on the base image: the only disk QEMU writes. */
  overlay: string;
  /** Persistent UEFI variables (A/B boot state lives here). */
  efiVars: { template: string; path: string } | undefined;
  firmwareCode: string | undefined;
  /** The node's own runtime directory (its sockets), made by systemd for the unit. */
  runDir: string;
  serialSocket: string;
  /** The documented path of the serial socket (a symlink to serialSocket). */
  serialLink: string;
  serialLog: string;
  qmpSocket: string;
  qemu: string[];
  unit: TransientUnit;
}

export interface Plan {
  paths: Paths;
  /** Every name the unit owns (base/unit_identity.ts); as JSON, the names without the rules. */
  unit: UnitIdentity;
  network: NetworkPlan;
  nodes: NodePlan[];
  dnsmasq: {
    /** The configuration, as dnsmasq.conf lines (passed to dnsmasq as options, never as a file). */
    conf: string;
    /** The only directory dnsmasq and its lease hook write: the lease file and leases.json. */
    dhcpDir: string;
    leaseFile: string;
    /** The documented /run path that points at the persistent lease file. */
    leaseLink: string;
    unit: TransientUnit;
  };
  nft: {
    table: string;
    guards: TapGuard[];
    /** The forwards as the host's table holds them (to mapped addresses when isolated). */
    forwards: PortForward[];
    /** The unit's own tables (in its namespace when isolated). */
    ruleset: string;
    /** An isolated unit's table on the host, on its link (plan/nft_link.ts). */
    link?: string;
  };
  /** A named unit's own network namespace and its link to the host (plan/isolation.ts). */
  isolation?: Isolation;
  networkConf: { path: string; content: string };
  /** Lease events recorded by lease-hook. */
  leaseState: string;
  /** Forensic records of node failures (JSON lines). */
  failureLog: string;
  warnings: Diagnostic[];
}
