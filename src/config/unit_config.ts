/**
 * unit_config.yaml: full YAML (comments, anchors, merge keys, flow style) with
 * every problem reported at the line and column of the offending value.
 */

import {
  type Document,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  type Pair,
  parseDocument,
  type YAMLMap,
} from "yaml";
import type { Diagnostic } from "../base/errors.ts";
import { dnsmasqMisreads, isNodeName } from "../base/names.ts";
import { parseForwards } from "./forwards.ts";
import { closest } from "./suggest.ts";
import type {
  Arch,
  Forward,
  NodeConfig,
  SourceLocation,
  UnitConfig,
} from "../base/config_types.ts";

export const NODE_KEYS = [
  "name",
  "cpu",
  "mem",
  "ip",
  "arch",
  "image",
  "machine_type",
  "cpu_type",
  "uefi",
  "forward",
] as const;
type NodeKey = typeof NODE_KEYS[number];
const REQUIRED_KEYS: readonly NodeKey[] = ["name", "cpu", "mem"];

export const MAX_CPUS = 255;
export const MIN_MEM_MIB = 16;
export const MAX_MEM_MIB = 1024 * 1024;

const ARCHES: Record<string, Arch> = {
  amd64: "x86_64",
  x86_64: "x86_64",
  arm64: "aarch64",
  aarch64: "aarch64",
};

/** Shows a YAML value in a message: strings quoted, other values as YAML would print them. */
export function show(value: unknown): string {
  if (typeof value === "string") return `"${value}"`;
  if (value === null || value === undefined) return "nothing";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  return String(value);
}

/** Parses `8G`, `512M`, `8` (GiB) or a YAML number (GiB) into MiB; undefined if malformed. */
export function parseMem(value: unknown): number | undefined {
  if (typeof value === "number") {
    return Number.isInteger(value) && value >= 0 ? value * 1024 : undefined;
  }
  if (typeof value !== "string") return undefined;
  const m = /^([0-9]+)\s*(M|MB|MiB|G|GB|GiB)?$/i.exec(value.trim());
  if (!m?.[1]) return undefined;
  const n = Number(m[1]);
  return m[2]?.toUpperCase().startsWith("M") ? n : n * 1024;
}

/** One key's check: the value it stands for, or the one problem with it. */
type Field = (v: unknown) => { value: unknown } | { problem: string };

/** One validator per key; each message names the key and shows the value it got. */
const FIELDS: { [K in NodeKey]: Field } = {
  name: (v) => {
    if (typeof v !== "string") {
      return { problem: `name must be a string, got ${show(v)}` };
    }
    if (!isNodeName(v)) {
      return {
        problem: `name ${
          show(v)
        } is not a DNS label (1-63 letters, digits or "-", not starting or ending with "-")`,
      };
    }
    const misread = dnsmasqMisreads(v);
    if (misread) {
      return { problem: `name ${show(v)} cannot be used: ${misread}` };
    }
    return { value: v };
  },
  cpu: (v) => {
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1) {
      return { problem: `cpu must be a positive integer, got ${show(v)}` };
    }
    if (v > MAX_CPUS) {
      return { problem: `cpu must be at most ${MAX_CPUS}, got ${v}` };
    }
    return { value: v };
  },
  mem: (v) => {
    const mib = parseMem(v);
    if (mib === undefined) {
      return {
        problem: `mem must be <n>M, <n>G or a bare number of GiB (8G, 512M, 4), got ${show(v)}`,
      };
    }
    if (mib === 0) {
      return { problem: `mem must be more than zero, got ${show(v)}` };
    }
    if (mib < MIN_MEM_MIB || mib > MAX_MEM_MIB) {
      return {
        problem: `mem ${show(v)} is out of range (${MIN_MEM_MIB}M to ${MAX_MEM_MIB / 1024}G)`,
      };
    }
    return { value: mib };
  },
  ip: (v) => {
    // `ip: null` (or ~) clears a reservation a merged anchor brought in.
    if (v === null) return { value: undefined };
    if (
      typeof v !== "string" || !/^[0-9]+(\.[0-9]+){3}$/.test(v) ||
      v.split(".").some((o) => Number(o) > 255 || (o.length > 1 && o.startsWith("0")))
    ) {
      return { problem: `ip must be an IPv4 address like 10.200.1.10, got ${show(v)}` };
    }
    return { value: v };
  },
  arch: (v) => {
    const arch = typeof v === "string" ? ARCHES[v] : undefined;
    if (!arch) {
      return { problem: `arch must be one of amd64, x86_64, arm64, aarch64, got ${show(v)}` };
    }
    return { value: arch };
  },
  image: (v) => {
    if (typeof v !== "string" || v === "") {
      return { problem: `image must be a file name, got ${show(v)}` };
    }
    if (v.includes("/")) {
      return {
        problem: `image must be a file name in the images directory, not a path, got ${show(v)}`,
      };
    }
    if (!/^[^\0]+\.qcow2$/.test(v) || v.startsWith(".")) {
      return { problem: `image must be a .qcow2 file (only qcow2 is supported), got ${show(v)}` };
    }
    return { value: v };
  },
  machine_type: (v) => {
    if (typeof v !== "string" || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(v)) {
      return {
        problem: `machine_type must be a QEMU machine name like q35 or virt, got ${show(v)}`,
      };
    }
    return { value: v };
  },
  cpu_type: (v) => {
    if (typeof v !== "string" || !/^[A-Za-z0-9][A-Za-z0-9._+=,-]*$/.test(v)) {
      return {
        problem: `cpu_type must be a QEMU CPU model like max or cortex-a57, got ${show(v)}`,
      };
    }
    return { value: v };
  },
  uefi: (v) => {
    if (typeof v !== "boolean") {
      return { problem: `uefi must be true or false, got ${show(v)}` };
    }
    return { value: v };
  },
  // Parsed entry by entry (parseForwards), for a location per entry.
  forward: (v) => ({ value: v }),
};

/** Keys starting with "x-" are extension keys (as in Compose files): ignored, anchors live there. */
export function isExtensionKey(key: unknown): boolean {
  return typeof key === "string" && key.startsWith("x-");
}

/** Pairs of a map, with `<<` merge keys expanded (explicit keys win), without x- keys. */
function pairsOf(doc: Document, map: YAMLMap): Pair[] {
  const own: Pair[] = [];
  const merged: Pair[] = [];
  for (const pair of map.items as Pair[]) {
    if (isExtensionKey(keyOf(pair))) continue;
    if (isScalar(pair.key) && (pair.key.value === "<<" || typeof pair.key.value === "symbol")) {
      const sources = isSeq(pair.value) ? pair.value.items : [pair.value];
      for (const source of sources) {
        const target = resolve(doc, source as Node);
        if (isMap(target)) merged.push(...pairsOf(doc, target));
      }
    } else {
      own.push(pair);
    }
  }
  const ownKeys = new Set(own.map((p) => keyOf(p)));
  return [...own, ...merged.filter((p) => !ownKeys.has(keyOf(p)))];
}

function keyOf(pair: Pair): unknown {
  return isScalar(pair.key) ? pair.key.value : pair.key;
}

function resolve(doc: Document, node: Node | null | undefined): Node | null | undefined {
  return isAlias(node) ? (node.resolve(doc) as Node | undefined) : node;
}

/** What one parse needs everywhere: the document, positions, the problems found so far. */
interface Parse {
  doc: Document;
  file: string;
  diagnostics: Diagnostic[];
  at(offset: number | undefined): SourceLocation;
}

function located(p: Parse, node: Node | null | undefined, fallback: SourceLocation) {
  return node?.range ? p.at(node.range[0]) : fallback;
}

function error(p: Parse, where: SourceLocation, message: string): void {
  p.diagnostics.push({ severity: "error", ...where, message });
}

/**
 * "Unknown key" with the closest known key, or - when the key only holds an
 * anchor for merging - the hint to name it x-something.
 */
function unknownKey(
  p: Parse,
  pair: Pair,
  where: string,
  known: readonly string[],
  fallback: SourceLocation,
  expected: string,
): void {
  const key = keyOf(pair);
  const hint = closest(String(key), known);
  const value = pair.value as Node | null;
  const anchor = value && !isAlias(value) && "anchor" in value ? value.anchor : undefined;
  const suggestion = anchor
    ? `; it holds the anchor &${anchor}: name it "x-${
      String(key)
    }" (keys starting with "x-" are ignored)`
    : hint
    ? `; did you mean "${hint}"?`
    : "";
  error(
    p,
    located(p, pair.key as Node, fallback),
    `Unknown key ${show(key)} ${where}${suggestion} (${expected})`,
  );
}

/** The top level: exactly one "unit" mapping. */
function unitSection(p: Parse, top: YAMLMap, start: SourceLocation): YAMLMap | undefined {
  let unit: Node | null | undefined;
  for (const pair of pairsOf(p.doc, top)) {
    if (keyOf(pair) === "unit") {
      unit = resolve(p.doc, pair.value as Node);
      if (!isMap(unit)) {
        error(
          p,
          located(p, unit ?? (pair.key as Node), start),
          `"unit" must be a mapping with "node_configs", got ${
            show((unit as Node | null)?.toJSON?.() ?? null)
          }`,
        );
      }
    } else {
      unknownKey(p, pair, "at the top level", ["unit"], start, 'expected "unit"');
    }
  }
  if (unit === undefined) {
    error(p, located(p, top, start), 'Missing "unit": expected unit.node_configs, a list of nodes');
    return undefined;
  }
  return isMap(unit) ? unit : undefined;
}

/** unit.node_configs: a non-empty list. */
function nodeList(p: Parse, unit: YAMLMap, start: SourceLocation) {
  let list: Node | null | undefined;
  let listKey: Node | undefined;
  for (const pair of pairsOf(p.doc, unit)) {
    if (keyOf(pair) === "node_configs") {
      list = resolve(p.doc, pair.value as Node);
      listKey = pair.key as Node;
    } else {
      unknownKey(p, pair, 'in "unit"', ["node_configs"], start, 'expected "node_configs"');
    }
  }
  if (list === undefined) {
    error(p, located(p, unit, start), 'Missing "node_configs" in "unit": expected a list of nodes');
    return undefined;
  }
  if (!isSeq(list)) {
    error(
      p,
      located(p, list ?? listKey, start),
      `"node_configs" must be a list of nodes, got ${show(list?.toJSON() ?? null)}`,
    );
    return undefined;
  }
  if (list.items.length === 0) {
    error(
      p,
      located(p, list, located(p, listKey, start)),
      '"node_configs" is empty: define at least one node',
    );
    return undefined;
  }
  return list;
}

/**
 * One node: every field validated on its own, so all problems are reported.
 * @returns the node, or only its name (for the collision check) when it has errors
 */
function parseNode(
  p: Parse,
  item: Node,
  index: number,
  listAt: SourceLocation,
): { node?: NodeConfig; ipAt?: SourceLocation; name?: { name: string; at: SourceLocation } } {
  const entry = resolve(p.doc, item);
  const entryAt = located(p, entry, listAt);
  if (!isMap(entry)) {
    error(
      p,
      entryAt,
      `Node ${index + 1} must be a mapping with name, cpu and mem, got ${
        show(entry?.toJSON() ?? null)
      }`,
    );
    return {};
  }
  const values: Partial<Record<NodeKey, unknown>> = {};
  const locations: Partial<Record<NodeKey, SourceLocation>> = {};
  let ok = true;
  const pairs = pairsOf(p.doc, entry);
  for (const pair of pairs) {
    const key = String(keyOf(pair));
    if (!(NODE_KEYS as readonly string[]).includes(key)) {
      unknownKey(
        p,
        pair,
        `in node ${index + 1}`,
        NODE_KEYS,
        entryAt,
        `known keys: ${NODE_KEYS.join(", ")}`,
      );
      ok = false;
      continue;
    }
    const valueNode = resolve(p.doc, pair.value as Node);
    const where = located(p, valueNode, located(p, pair.key as Node, entryAt));
    if (key === "forward") {
      const forwards = parseForwards(
        { doc: p.doc, at: p.at, error: (at, message) => error(p, at, message) },
        valueNode,
        where,
      );
      if (forwards) values.forward = forwards;
      else ok = false;
      continue;
    }
    const result = FIELDS[key as NodeKey](valueNode ? valueNode.toJSON() : null);
    if ("value" in result) {
      values[key as NodeKey] = result.value;
      locations[key as NodeKey] = where;
    } else {
      ok = false;
      error(p, where, result.problem);
    }
  }
  const missing = REQUIRED_KEYS.filter((k) => !(k in values) && !pairs.some((x) => keyOf(x) === k));
  if (missing.length > 0) {
    const label = typeof values.name === "string" ? `Node "${values.name}"` : `Node ${index + 1}`;
    error(
      p,
      entryAt,
      `${label} is missing ${missing.map((k) => `"${k}"`).join(", ")} (required: name, cpu, mem)`,
    );
    ok = false;
  }
  if (!ok) {
    // Keep a well-formed name in play so later checks (collisions) still see it.
    return typeof values.name === "string"
      ? { name: { name: values.name, at: locations.name ?? entryAt } }
      : {};
  }
  const node: NodeConfig = {
    name: values.name as string,
    cpu: values.cpu as number,
    memMiB: values.mem as number,
    ip: values.ip as string | undefined,
    arch: values.arch as Arch | undefined,
    image: values.image as string | undefined,
    machineType: values.machine_type as string | undefined,
    cpuType: values.cpu_type as string | undefined,
    uefi: values.uefi as boolean | undefined,
    forwards: (values.forward as Forward[] | undefined) ?? [],
    at: locations.name ?? entryAt,
    imageAt: locations.image,
    ipAt: values.ip === undefined ? undefined : locations.ip,
  };
  return { node, ...(node.ip && locations.ip ? { ipAt: locations.ip } : {}) };
}

/** Node names are compared case-insensitively (DNS); nodes with other errors take part too. */
function checkNames(p: Parse, names: { name: string; at: SourceLocation }[]): void {
  const seen = new Map<string, SourceLocation>();
  for (
    const { name, at: where } of [...names].sort((a, b) =>
      a.at.line - b.at.line || a.at.column - b.at.column
    )
  ) {
    const key = name.toLowerCase();
    const first = seen.get(key);
    if (first) {
      error(
        p,
        where,
        `Node name "${name}" is already used on line ${first.line} (names are compared case-insensitively)`,
      );
    } else {
      seen.set(key, where);
    }
  }
}

/**
 * Parses and validates unit_config.yaml.
 * @returns the nodes that parsed cleanly, every problem found, and where each node's IP
 *   came from (for cross-checks against runtime.conf)
 */
export function parseUnitConfig(
  file: string,
  text: string,
): { config: UnitConfig; diagnostics: Diagnostic[]; ipAt: Map<NodeConfig, SourceLocation> } {
  const diagnostics: Diagnostic[] = [];
  const ipAt = new Map<NodeConfig, SourceLocation>();
  const config: UnitConfig = { file, nodes: [] };
  const start = { file, line: 1, column: 1 };
  const result = { config, diagnostics, ipAt };

  if (text.trim() === "") {
    diagnostics.push({
      severity: "error",
      ...start,
      message: 'File is empty; expected a "unit:" mapping with "node_configs"',
    });
    return result;
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, {
    lineCounter,
    merge: true,
    prettyErrors: false,
    uniqueKeys: true,
  });
  const p: Parse = {
    doc,
    file,
    diagnostics,
    at: (offset) => {
      const pos = lineCounter.linePos(offset ?? 0);
      return { file, line: pos.line, column: pos.col };
    },
  };
  for (const e of doc.errors) {
    const pos = e.linePos?.[0];
    error(
      p,
      pos ? { file, line: pos.line, column: pos.col } : p.at(e.pos[0]),
      `YAML syntax error: ${e.message.split("\n")[0]}`,
    );
  }
  if (doc.errors.length > 0) return result;

  const top = resolve(doc, doc.contents as Node | null);
  if (top === null || top === undefined || (isScalar(top) && top.value === null)) {
    error(
      p,
      start,
      'File has no content (only comments?); expected a "unit:" mapping with "node_configs"',
    );
    return result;
  }
  if (!isMap(top)) {
    error(p, located(p, top, start), 'Expected a mapping with a "unit" key at the top level');
    return result;
  }
  const unit = unitSection(p, top, start);
  if (!unit) return result;
  const list = nodeList(p, unit, start);
  if (!list) return result;

  const names: { name: string; at: SourceLocation }[] = [];
  list.items.forEach((item, index) => {
    const parsed = parseNode(p, item as Node, index, located(p, list, start));
    if (parsed.node) {
      config.nodes.push(parsed.node);
      names.push({ name: parsed.node.name, at: parsed.node.at });
      if (parsed.ipAt) ipAt.set(parsed.node, parsed.ipAt);
    } else if (parsed.name) {
      names.push(parsed.name);
    }
  });
  checkNames(p, names);
  return result;
}
