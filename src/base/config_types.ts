/** The validated configuration: what an operator wrote, with defaults applied. */

import type { Subnet } from "./ipv4.ts";

export type Arch = "x86_64" | "aarch64";

/** Where a value came from, for messages that point at it. */
export interface SourceLocation {
  file: string;
  line: number;
  column: number;
}

/** A port forward: host port (on the uplink side, optionally one address) -> a port of the node. */
export interface Forward {
  host: number;
  port: number;
  proto: "tcp" | "udp";
  /** Only this host address (default: any address of the uplinks). */
  address?: string;
  at: SourceLocation;
}

export interface NodeConfig {
  name: string;
  cpu: number;
  /** Guest RAM in MiB. */
  memMiB: number;
  ip: string | undefined;
  arch: Arch | undefined;
  image: string | undefined;
  machineType: string | undefined;
  cpuType: string | undefined;
  uefi: boolean | undefined;
  /** Location of the node's `name` (or the entry itself). */
  at: SourceLocation;
  /** Location of the node's `image` key, when given. */
  imageAt: SourceLocation | undefined;
  /** Location of the node's `ip` value, when given. */
  ipAt: SourceLocation | undefined;
  /** Host ports forwarded to the node (none by default: the fence stays closed). */
  forwards: Forward[];
}

export interface UnitConfig {
  file: string;
  nodes: NodeConfig[];
}

export interface RuntimeConfig {
  /** The file read, or where it would be (all keys are optional). */
  file: string;
  subnet: Subnet;
  /** Where DHCP_CIDR is set (line 1 of the file when it is not). */
  subnetAt: SourceLocation;
  dnsPort: number;
  upstreamDns: string;
  /** Pinned uplink; undefined = follow the default route(s). */
  internetInterface: string | undefined;
  enableKvm: boolean;
  /** Quiet time the route monitor waits for before it acts. */
  routeDebounceMs: number;
  /** How long `run` waits for every node to be leased before it gives up. */
  readyTimeoutSec: number;
  /** How long a guest gets to power down after ACPI powerdown. */
  stopTimeoutSec: number;
  /** A node's serial log is rotated (one old copy kept) before it grows past this. */
  serialLogMaxKb: number;
  /** vm-failures.log likewise. */
  failureLogMaxKb: number;
  /**
   * internet: guests reach what the uplinks reach and the host's services (as libvirt's NAT
   * network); strict: only DHCP and DNS on the host, and no private, shared or link-local
   * destination (the uplink LAN, 169.254.169.254).
   */
  guestFence: "internet" | "strict";
}

export interface Config {
  runtime: RuntimeConfig;
  unit: UnitConfig;
}
