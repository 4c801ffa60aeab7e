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
import { z } from "zod";
import type { Diagnostic } from "../errors.ts";
import { closest } from "./suggest.ts";
import type { Arch, NodeConfig, SourceLocation, UnitConfig } from "./types.ts";

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

const DNS_LABEL = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

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

type Field<T> = z.ZodType<T, unknown>;

/** One validator per key; each message names the key and shows the value it got. */
const FIELDS: { [K in NodeKey]: Field<unknown> } = {
  name: z.unknown().transform((v, ctx) => {
    if (typeof v !== "string") {
      ctx.addIssue({ code: "custom", message: `name must be a string, got ${show(v)}` });
      return z.NEVER;
    }
    if (!DNS_LABEL.test(v)) {
      ctx.addIssue({
        code: "custom",
        message: `name ${
          show(v)
        } is not a DNS label (1-63 letters, digits or "-", not starting or ending with "-")`,
      });
      return z.NEVER;
    }
    return v;
  }),
  cpu: z.unknown().transform((v, ctx) => {
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1) {
      ctx.addIssue({ code: "custom", message: `cpu must be a positive integer, got ${show(v)}` });
      return z.NEVER;
    }
    if (v > MAX_CPUS) {
      ctx.addIssue({ code: "custom", message: `cpu must be at most ${MAX_CPUS}, got ${v}` });
      return z.NEVER;
    }
    return v;
  }),
  mem: z.unknown().transform((v, ctx) => {
    const mib = parseMem(v);
    if (mib === undefined) {
      ctx.addIssue({
        code: "custom",
        message: `mem must be <n>M, <n>G or a bare number of GiB (8G, 512M, 4), got ${show(v)}`,
      });
      return z.NEVER;
    }
    if (mib === 0) {
      ctx.addIssue({ code: "custom", message: `mem must be more than zero, got ${show(v)}` });
      return z.NEVER;
    }
    if (mib < MIN_MEM_MIB || mib > MAX_MEM_MIB) {
      ctx.addIssue({
        code: "custom",
        message: `mem ${show(v)} is out of range (${MIN_MEM_MIB}M to ${MAX_MEM_MIB / 1024}G)`,
      });
      return z.NEVER;
    }
    return mib;
  }),
  ip: z.unknown().transform((v, ctx) => {
    if (
      typeof v !== "string" || !/^[0-9]+(\.[0-9]+){3}$/.test(v) ||
      v.split(".").some((o) => Number(o) > 255 || (o.length > 1 && o.startsWith("0")))
    ) {
      ctx.addIssue({
        code: "custom",
        message: `ip must be an IPv4 address like 10.200.1.10, got ${show(v)}`,
      });
      return z.NEVER;
    }
    return v;
  }),
  arch: z.unknown().transform((v, ctx) => {
    const arch = typeof v === "string" ? ARCHES[v] : undefined;
    if (!arch) {
      ctx.addIssue({
        code: "custom",
        message: `arch must be one of amd64, x86_64, arm64, aarch64, got ${show(v)}`,
      });
      return z.NEVER;
    }
    return arch;
  }),
  image: z.unknown().transform((v, ctx) => {
    if (typeof v !== "string" || v === "") {
      ctx.addIssue({ code: "custom", message: `image must be a file name, got ${show(v)}` });
      return z.NEVER;
    }
    if (v.includes("/")) {
      ctx.addIssue({
        code: "custom",
        message: `image must be a file name in the images directory, not a path, got ${show(v)}`,
      });
      return z.NEVER;
    }
    if (!/^[^\0]+\.qcow2$/.test(v) || v.startsWith(".")) {
      ctx.addIssue({
        code: "custom",
        message: `image must be a .qcow2 file (only qcow2 is supported), got ${show(v)}`,
      });
      return z.NEVER;
    }
    return v;
  }),
  machine_type: z.unknown().transform((v, ctx) => {
    if (typeof v !== "string" || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(v)) {
      ctx.addIssue({
        code: "custom",
        message: `machine_type must be a QEMU machine name like q35 or virt, got ${show(v)}`,
      });
      return z.NEVER;
    }
    return v;
  }),
  cpu_type: z.unknown().transform((v, ctx) => {
    if (typeof v !== "string" || !/^[A-Za-z0-9][A-Za-z0-9._+=,-]*$/.test(v)) {
      ctx.addIssue({
        code: "custom",
        message: `cpu_type must be a QEMU CPU model like max or cortex-a57, got ${show(v)}`,
      });
      return z.NEVER;
    }
    return v;
  }),
  uefi: z.unknown().transform((v, ctx) => {
    if (typeof v !== "boolean") {
      ctx.addIssue({ code: "custom", message: `uefi must be true or false, got ${show(v)}` });
      return z.NEVER;
    }
    return v;
  }),
};

/** Pairs of a map, with `<<` merge keys expanded (explicit keys win). */
function pairsOf(doc: Document, map: YAMLMap): Pair[] {
  const own: Pair[] = [];
  const merged: Pair[] = [];
  for (const pair of map.items as Pair[]) {
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
  const lineCounter = new LineCounter();
  const at = (offset: number | undefined): SourceLocation => {
    const pos = lineCounter.linePos(offset ?? 0);
    return { file, line: pos.line, column: pos.col };
  };
  const nodeAt = (node: Node | null | undefined, fallback: SourceLocation): SourceLocation =>
    node?.range ? at(node.range[0]) : fallback;
  const error = (where: SourceLocation, message: string) =>
    diagnostics.push({ severity: "error", ...where, message });
  const config: UnitConfig = { file, nodes: [] };

  if (text.trim() === "") {
    error(
      { file, line: 1, column: 1 },
      'File is empty; expected a "unit:" mapping with "node_configs"',
    );
    return { config, diagnostics, ipAt };
  }

  const doc = parseDocument(text, {
    lineCounter,
    merge: true,
    prettyErrors: false,
    uniqueKeys: true,
  });
  for (const e of doc.errors) {
    const pos = e.linePos?.[0];
    error(
      pos ? { file, line: pos.line, column: pos.col } : at(e.pos[0]),
      `YAML syntax error: ${e.message.split("\n")[0]}`,
    );
  }
  if (doc.errors.length > 0) return { config, diagnostics, ipAt };

  const top = resolve(doc, doc.contents as Node | null);
  const start = { file, line: 1, column: 1 };
  if (top === null || top === undefined || (isScalar(top) && top.value === null)) {
    error(
      start,
      'File has no content (only comments?); expected a "unit:" mapping with "node_configs"',
    );
    return { config, diagnostics, ipAt };
  }
  if (!isMap(top)) {
    error(nodeAt(top, start), 'Expected a mapping with a "unit" key at the top level');
    return { config, diagnostics, ipAt };
  }
  let unit: Node | null | undefined;
  for (const pair of pairsOf(doc, top)) {
    const key = keyOf(pair);
    if (key === "unit") {
      unit = resolve(doc, pair.value as Node);
      if (!isMap(unit)) {
        error(
          nodeAt(unit ?? (pair.key as Node), start),
          `"unit" must be a mapping with "node_configs", got ${
            show((unit as Node | null)?.toJSON?.() ?? null)
          }`,
        );
      }
    } else {
      const hint = closest(String(key), ["unit"]);
      error(
        nodeAt(pair.key as Node, start),
        `Unknown key ${show(key)} at the top level${
          hint ? `; did you mean "${hint}"?` : ""
        } (expected "unit")`,
      );
    }
  }
  if (unit === undefined) {
    error(nodeAt(top, start), 'Missing "unit": expected unit.node_configs, a list of nodes');
    return { config, diagnostics, ipAt };
  }
  if (!isMap(unit)) return { config, diagnostics, ipAt };

  let list: Node | null | undefined;
  let listKey: Node | undefined;
  for (const pair of pairsOf(doc, unit)) {
    const key = keyOf(pair);
    if (key === "node_configs") {
      list = resolve(doc, pair.value as Node);
      listKey = pair.key as Node;
    } else {
      const hint = closest(String(key), ["node_configs"]);
      error(
        nodeAt(pair.key as Node, start),
        `Unknown key ${show(key)} in "unit"${
          hint ? `; did you mean "${hint}"?` : ""
        } (expected "node_configs")`,
      );
    }
  }
  if (list === undefined) {
    error(nodeAt(unit, start), 'Missing "node_configs" in "unit": expected a list of nodes');
    return { config, diagnostics, ipAt };
  }
  if (!isSeq(list)) {
    error(
      nodeAt(list ?? listKey, start),
      `"node_configs" must be a list of nodes, got ${show(list?.toJSON() ?? null)}`,
    );
    return { config, diagnostics, ipAt };
  }
  if (list.items.length === 0) {
    error(
      nodeAt(list, nodeAt(listKey, start)),
      '"node_configs" is empty: define at least one node',
    );
    return { config, diagnostics, ipAt };
  }

  const nameOnly: { name: string; at: SourceLocation }[] = [];
  list.items.forEach((item, index) => {
    const entry = resolve(doc, item as Node);
    const entryAt = nodeAt(entry, nodeAt(list, start));
    if (!isMap(entry)) {
      error(
        entryAt,
        `Node ${index + 1} must be a mapping with name, cpu and mem, got ${
          show(entry?.toJSON() ?? null)
        }`,
      );
      return;
    }
    const values: Partial<Record<NodeKey, unknown>> = {};
    const locations: Partial<Record<NodeKey, SourceLocation>> = {};
    let ok = true;
    for (const pair of pairsOf(doc, entry)) {
      const key = String(keyOf(pair));
      if (!(NODE_KEYS as readonly string[]).includes(key)) {
        const hint = closest(key, NODE_KEYS);
        error(
          nodeAt(pair.key as Node, entryAt),
          `Unknown key ${show(key)} in node ${index + 1}${
            hint ? `; did you mean "${hint}"?` : ""
          } (known keys: ${NODE_KEYS.join(", ")})`,
        );
        ok = false;
        continue;
      }
      const valueNode = resolve(doc, pair.value as Node);
      const where = nodeAt(valueNode, nodeAt(pair.key as Node, entryAt));
      const result = FIELDS[key as NodeKey].safeParse(valueNode ? valueNode.toJSON() : null);
      if (result.success) {
        values[key as NodeKey] = result.data;
        locations[key as NodeKey] = where;
      } else {
        ok = false;
        for (const issue of result.error.issues) error(where, issue.message);
      }
    }
    const missing = REQUIRED_KEYS.filter((k) =>
      !(k in values) && !pairsOf(doc, entry).some((p) => keyOf(p) === k)
    );
    if (missing.length > 0) {
      const label = typeof values.name === "string" ? `Node "${values.name}"` : `Node ${index + 1}`;
      error(
        entryAt,
        `${label} is missing ${missing.map((k) => `"${k}"`).join(", ")} (required: name, cpu, mem)`,
      );
      ok = false;
    }
    if (!ok) {
      // Keep a well-formed name in play so later checks (collisions) still see it.
      if (typeof values.name === "string") {
        nameOnly.push({ name: values.name, at: locations.name ?? entryAt });
      }
      return;
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
      at: locations.name ?? entryAt,
      imageAt: locations.image,
    };
    if (locations.ip) ipAt.set(node, locations.ip);
    config.nodes.push(node);
  });

  // Names of nodes with other errors still take part in the collision check.
  const seen = new Map<string, SourceLocation>();
  for (
    const { name, at: where } of [
      ...config.nodes.map((n) => ({ name: n.name, at: n.at })),
      ...nameOnly,
    ]
      .sort((a, b) => a.at.line - b.at.line || a.at.column - b.at.column)
  ) {
    const key = name.toLowerCase();
    const first = seen.get(key);
    if (first) {
      error(
        where,
        `Node name "${name}" is already used on line ${first.line} (names are compared case-insensitively)`,
      );
    } else {
      seen.set(key, where);
    }
  }
  return { config, diagnostics, ipAt };
}
