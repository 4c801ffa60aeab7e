/**
 * Every name a unit owns, from one record: its systemd units and slice, the sidecar's
 * unit and user, the nft tables, the DNS domain, the bridge, and for each node its unit,
 * dynamic user, failed-unit instance, MAC and tap (lima's dirnames/filenames are the
 * model). Pure: the same unit name and machine-id give the same names on every host.
 *
 * The default unit (no name, aos-unit.service) keeps every name the README documents, so
 * hosts, scripts and running guests (adopted across an upgrade) see no change; a pin test
 * (unit_identity_test.ts) holds them. A named unit (aos-unit@NAME.service) gets names that
 * never collide with the default unit's or another unit's:
 * - node units, users and failed-unit instances join unit and node with "_", which neither
 *   a unit nor a node name (DNS labels) can hold: unit lab1's node main is never a default
 *   unit's node "lab1-main";
 * - interface names come from a hash of the unit (and node) name, within 15 characters;
 * - the slice escapes "-" as systemd does, since slices nest by dash.
 */

import { md5Hex, sha256Hex } from "./hash.ts";

function md5(text: string): string {
  return md5Hex(text);
}

/** The longest unit name: a DNS label short enough for every name derived from it. */
export const MAX_UNIT_NAME = 20;

/** What `list` and `export` call the default unit: no named unit may take it. */
export const DEFAULT_UNIT_LABEL = "default";

/**
 * Names no unit may take: the default unit's label, and "dnsmasq", whose service user
 * would be the default unit's sidecar user (aos-unit-dnsmasq).
 */
const RESERVED_UNIT_NAMES = [DEFAULT_UNIT_LABEL, "dnsmasq"];

/**
 * A unit name: a DNS label (lowercase letters, digits, inner "-"), at most 20 characters,
 * other than a reserved one ("default", "dnsmasq").
 */
export function isUnitName(name: string): boolean {
  return name.length <= MAX_UNIT_NAME && /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(name) &&
    !RESERVED_UNIT_NAMES.includes(name);
}

/** A named unit's manager is an instance of this template: aos-unit@NAME.service. */
export const MANAGER_TEMPLATE = "aos-unit";

/** systemd's escaping of a unit-name component (systemd-escape): "-" nests slices. */
export function systemdEscape(text: string): string {
  return [...text].map((c) =>
    /[A-Za-z0-9:_.]/.test(c) ? c : `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`
  ).join("");
}

/** The names one node of a unit owns. */
export interface NodeNames {
  /** The transient unit QEMU runs in. */
  unit: string;
  /** Its unit without ".service": QEMU's process name and the journal's identifier. */
  process: string;
  /** Its DynamicUser= (at most 31 characters). */
  user: string;
  /** The aos-unit-vm-failed@ instance that records its crash. */
  failedUnit: string;
  mac: string;
  /** Its tap on the unit's bridge (at most 15 characters). */
  tap: string;
}

/** The names of a unit that do not depend on the host. */
export interface UnitNames {
  /** undefined: the default unit. */
  name: string | undefined;
  managerUnit: string;
  /**
   * The user its manager runs as: aos-unit for the default unit, aos-unit-NAME (a uid of
   * its own, in the group aos-unit; aos-unit-user@.service) for unit NAME.
   */
  serviceUser: string;
  slice: string;
  dnsmasqUnit: string;
  dnsmasqUser: string;
  /** The nft tables' name (in the inet and bridge families). */
  nftTable: string;
  /** Where the host resolves the unit's nodes: NODE.<dnsDomain>. */
  dnsDomain: string;
  /**
   * The owner's mark: its bridge's ifalias is "OWNER CIDR", each tap's "OWNER tap"; a link
   * is this unit's only when it carries the mark (teardown and startup touch no other).
   */
  owner: string;
  /** The ifalias on each of its taps: teardown removes only taps that carry it. */
  tapAlias: string;
  /**
   * The network namespace a named unit's bridge, taps, dnsmasq and nodes live in (ip-netns
   * name); undefined for the default unit, which keeps the host's (plan/isolation.ts).
   */
  namespace: string | undefined;
  node(name: string): NodeNames;
  /** True for a node unit of this unit (teardown and discovery act on nothing else). */
  ownsNodeUnit(unitName: string): boolean;
  /** The node a node unit of this unit runs; undefined for any other unit. */
  nodeOfUnit(unitName: string): string | undefined;
}

/** Everything a unit owns on one host: its names, and its bridge (from the machine-id). */
export interface UnitIdentity extends UnitNames {
  /** The unit's bridge (at most 15 characters) and its fixed MAC. */
  bridge: string;
  bridgeMac: string;
  /** A named unit's link to its namespace, on the host's side (at most 15 characters). */
  hostLink: string | undefined;
}

/** A node's DynamicUser=: the readable name, or a hash of it where that is too long. */
function userName(readable: string, key: string): string {
  return readable.length <= 31 ? readable : `aos-node-${sha256Hex(key).slice(0, 16)}`;
}

/** `52:54:00:` + the first 6 hex digits of md5(key), as the existing tool did for a node. */
function macOf(key: string): string {
  const hex = md5(key);
  return `52:54:00:${hex.slice(0, 2)}:${hex.slice(2, 4)}:${hex.slice(4, 6)}`;
}

/** Every unit's taps start so (at most 15 characters in all). */
export const TAP_PREFIX = "aostap";
/** Every unit's bridge starts so: `aosbr` + 6 hex digits. */
export const BRIDGE_PREFIX = "aosbr";
/** A named unit's link to its namespace starts so: `aosv` + 6 hex digits. */
export const LINK_PREFIX = "aosv";

/** `aostap` + the last 6 hex digits of the MAC. */
function tapOf(mac: string): string {
  return `${TAP_PREFIX}${mac.replaceAll(":", "").slice(-6)}`;
}

/** A name of a unit's bridge's form (what cleanup, as root, may delete when recorded). */
export function isBridgeName(name: string): boolean {
  return new RegExp(`^${BRIDGE_PREFIX}[0-9a-f]{6}$`).test(name);
}

/** A table some unit owns (the default unit's aos_unit, a named unit's aos_unit_NAME). */
export function isUnitTable(name: string): boolean {
  return /^aos_unit(_[a-z0-9_]+)?$/.test(name);
}

/**
 * The unit a table of isUnitTable()'s form belongs to (undefined: the default unit): a
 * unit name has no "_", so the "-" its table name turned into "_" comes back unambiguously.
 */
export function unitOfTable(table: string): string | undefined {
  return table === "aos_unit" ? undefined : table.slice("aos_unit_".length).replaceAll("_", "-");
}

/** The default unit: the names the README documents, unchanged. */
export const DEFAULT_UNIT: UnitNames = {
  name: undefined,
  managerUnit: "aos-unit.service",
  serviceUser: "aos-unit",
  slice: "aos-unit.slice",
  dnsmasqUnit: "aos-unit-dnsmasq.service",
  dnsmasqUser: "aos-unit-dnsmasq",
  nftTable: "aos_unit",
  dnsDomain: "aos-unit",
  owner: "aos-unit",
  tapAlias: "aos-unit tap",
  namespace: undefined,
  node: (name) => {
    const mac = macOf(name);
    return {
      unit: `aos-node-${name}.service`,
      process: `aos-node-${name}`,
      user: userName(`aos-node-${name}`, name),
      failedUnit: `aos-unit-vm-failed@${name}.service`,
      mac,
      tap: tapOf(mac),
    };
  },
  // A default unit's node is a DNS label: no "_" (a named unit's nodes have one).
  ownsNodeUnit: (u) => /^aos-node-[A-Za-z0-9-]+\.service$/.test(u),
  nodeOfUnit: (u) => /^aos-node-([A-Za-z0-9-]+)\.service$/.exec(u)?.[1],
};

/** A locally administered MAC from a key. */
function bridgeMacOf(key: string): string {
  const hex = md5(key);
  return ["02", ...(hex.slice(0, 10).match(/../g) ?? [])].join(":");
}

/** Unit NAME (aos-unit@NAME.service). */
function namedNames(name: string): UnitNames {
  const prefix = `aos-node-${name}_`;
  return {
    name,
    managerUnit: `${MANAGER_TEMPLATE}@${name}.service`,
    // At most 9 + 20 characters (useradd takes 32).
    serviceUser: `${MANAGER_TEMPLATE}-${name}`,
    slice: `aos-unit-${systemdEscape(name)}.slice`,
    dnsmasqUnit: `aos-unit-dnsmasq@${name}.service`,
    // A uid of its own (DynamicUser= shares one uid per name): no unit's dnsmasq can signal
    // or trace another's. At most 8 + 20 characters.
    dnsmasqUser: `aos-dns-${name}`,
    // "-" is the only character a unit name has that nft names do not: "_" is free.
    nftTable: `aos_unit_${name.replaceAll("-", "_")}`,
    dnsDomain: `${name}.aos-unit`,
    owner: `${MANAGER_TEMPLATE}@${name}`,
    tapAlias: `${MANAGER_TEMPLATE}@${name} tap`,
    namespace: `aos-unit-${name}`,
    node: (node) => {
      const mac = macOf(`${name}/${node}`);
      return {
        unit: `${prefix}${node}.service`,
        process: `${prefix}${node}`,
        user: userName(`${prefix}${node}`, `${name}/${node}`),
        failedUnit: `aos-unit-vm-failed@${name}_${node}.service`,
        mac,
        tap: tapOf(mac),
      };
    },
    ownsNodeUnit: (u) => u.startsWith(prefix) && u.endsWith(".service"),
    nodeOfUnit: (u) =>
      u.startsWith(prefix) && u.endsWith(".service")
        ? u.slice(prefix.length, -".service".length)
        : undefined,
  };
}

/** The names of unit `name` (undefined: the default unit); throws for an invalid name. */
export function unitNames(name: string | undefined): UnitNames {
  if (name === undefined) return DEFAULT_UNIT;
  if (!isUnitName(name)) {
    throw new Error(
      `unit name ${
        JSON.stringify(name)
      } is not a DNS label of at most ${MAX_UNIT_NAME} characters (other than "default" and "dnsmasq")`,
    );
  }
  return namedNames(name);
}

/**
 * Everything unit `name` owns (undefined: the default unit) on the host with this
 * machine-id: the default unit's bridge is `aosbr` + the machine-id's first 6 characters,
 * a named unit's a hash of its name and the machine-id.
 */
export function unitIdentity(name: string | undefined, machineId: string): UnitIdentity {
  const names = unitNames(name);
  return name === undefined
    ? {
      ...names,
      bridge: `${BRIDGE_PREFIX}${machineId.slice(0, 6)}`,
      bridgeMac: bridgeMacOf(`aos-unit bridge ${machineId}`),
      hostLink: undefined,
    }
    : {
      ...names,
      bridge: `${BRIDGE_PREFIX}${md5(`aos-unit ${name} ${machineId}`).slice(0, 6)}`,
      bridgeMac: bridgeMacOf(`aos-unit bridge ${name} ${machineId}`),
      hostLink: `${LINK_PREFIX}${md5(`aos-unit link ${name} ${machineId}`).slice(0, 6)}`,
    };
}

/** How messages name a unit: "the default unit", "unit lab1". */
export function unitLabel(unit: string | undefined): string {
  return unit === undefined ? "the default unit" : `unit ${unit}`;
}

/** A machine-id: 32 lowercase hex digits (machine-id(5)). */
export function isMachineId(text: string): boolean {
  return /^[0-9a-f]{32}$/.test(text);
}

/** The default unit's bridge: `aosbr` + the first 6 characters of the host's machine-id. */
export function bridgeName(machineId: string): string {
  return unitIdentity(undefined, machineId).bridge;
}

/**
 * The default unit's bridge MAC: fixed and locally administered, so it does not change as
 * ports come and go (the kernel would otherwise pick the lowest port MAC).
 */
export function bridgeMac(machineId: string): string {
  return unitIdentity(undefined, machineId).bridgeMac;
}

/** A default-unit node's MAC: `52:54:00:` + the first 6 hex digits of md5(name). */
export function nodeMac(name: string): string {
  return macOf(name);
}

/** The tap of the node with this MAC: `aostap` + the MAC's last 6 hex digits. */
export function tapName(mac: string): string {
  return tapOf(mac);
}

/**
 * The unit and node of an aos-unit-vm-failed@ instance: NODE for the default unit's node,
 * NAME_NODE for unit NAME's (see node().failedUnit).
 */
export function failedInstanceOf(instance: string): { unit: string | undefined; node: string } {
  const at = instance.indexOf("_");
  return at < 0
    ? { unit: undefined, node: instance }
    : { unit: instance.slice(0, at), node: instance.slice(at + 1) };
}

/**
 * The unit whose owner's mark (UnitNames.owner) starts a link's ifalias: undefined for the
 * default unit, its name for a named unit, null for a link of no unit.
 */
export function unitOfMark(alias: string): string | undefined | null {
  const owner = alias.split(" ")[0] ?? "";
  if (owner === DEFAULT_UNIT.owner) return undefined;
  const name = owner.startsWith(`${MANAGER_TEMPLATE}@`)
    ? owner.slice(MANAGER_TEMPLATE.length + 1)
    : "";
  return isUnitName(name) ? name : null;
}

/** The prefix of every node unit of every unit (systemctl list-units 'aos-node-*'). */
export const NODE_UNIT_PREFIX = "aos-node-";
