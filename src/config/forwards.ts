/**
 * A node's port forwards (unit_config.yaml `forward:`): a host port on the uplink
 * side, optionally on one host address, reaches a port of the node. Each entry is
 * checked on its own and located at its own line, so a host port used twice is
 * reported at both.
 */

import { type Document, isAlias, isMap, isScalar, isSeq, type Node, type Pair } from "yaml";
import type { Forward, SourceLocation } from "../base/config_types.ts";
import type { Diagnostic } from "../base/errors.ts";
import { parseIpv4 } from "../base/ipv4.ts";

export const FORWARD_KEYS = ["host", "port", "address", "proto"] as const;

export interface ForwardParse {
  doc: Document;
  at(offset: number | undefined): SourceLocation;
  error(where: SourceLocation, message: string): void;
}

function resolved(doc: Document, node: unknown): Node | null | undefined {
  return isAlias(node) ? (node.resolve(doc) as Node | undefined) : node as Node | null | undefined;
}

function port(value: unknown): number | undefined {
  return typeof value === "number" && Number.isInteger(value) && value >= 1 && value <= 65535
    ? value
    : undefined;
}

/** One `{host: 2222, port: 22}` entry; undefined (with errors) when it is wrong. */
function parseOne(p: ForwardParse, item: Node, fallback: SourceLocation): Forward | undefined {
  const entry = resolved(p.doc, item);
  const at = entry?.range ? p.at(entry.range[0]) : fallback;
  if (!isMap(entry)) {
    p.error(at, "forward entries must be mappings like { host: 2222, port: 22 }");
    return undefined;
  }
  const values: Record<string, unknown> = {};
  for (const pair of entry.items as Pair[]) {
    const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
    if (!(FORWARD_KEYS as readonly string[]).includes(key)) {
      const keyAt = (pair.key as Node)?.range ? p.at((pair.key as Node).range![0]) : at;
      p.error(keyAt, `Unknown key "${key}" in a forward (known keys: ${FORWARD_KEYS.join(", ")})`);
      return undefined;
    }
    values[key] = resolved(p.doc, pair.value)?.toJSON?.() ?? null;
  }
  const host = port(values.host);
  const to = port(values.port);
  if (host === undefined || to === undefined) {
    p.error(
      at,
      `a forward needs host and port, each a port number 1-65535, like { host: 2222, port: 22 }`,
    );
    return undefined;
  }
  const address = values.address;
  // A loopback address would reach the node from any host of the LAN: prerouting's DNAT
  // happens before the kernel drops martians.
  if (typeof address === "string" && /^127\./.test(address)) {
    p.error(
      at,
      `address of a forward cannot be a loopback address (${address}): use the host's own address`,
    );
    return undefined;
  }
  if (address !== undefined && (typeof address !== "string" || parseIpv4(address) === undefined)) {
    p.error(
      at,
      `address of a forward must be an IPv4 address of the host, got ${JSON.stringify(address)}`,
    );
    return undefined;
  }
  const proto = values.proto ?? "tcp";
  if (proto !== "tcp" && proto !== "udp") {
    p.error(at, `proto of a forward must be tcp or udp, got ${JSON.stringify(proto)}`);
    return undefined;
  }
  return { host, port: to, proto, ...(typeof address === "string" ? { address } : {}), at };
}

/** The `forward:` list of one node. */
export function parseForwards(p: ForwardParse, value: Node | null | undefined, at: SourceLocation) {
  const list = resolved(p.doc, value);
  if (!isSeq(list)) {
    p.error(at, "forward must be a list like [{ host: 2222, port: 22 }]");
    return undefined;
  }
  const out: Forward[] = [];
  let ok = true;
  for (const item of list.items) {
    const f = parseOne(p, item as Node, at);
    if (f) out.push(f);
    else ok = false;
  }
  return ok ? out : undefined;
}

/** A host port (and protocol) forwarded twice, on addresses that overlap: exit 2 at both. */
export function duplicateForwards(
  nodes: readonly { name: string; forwards: readonly Forward[] }[],
): Diagnostic[] {
  const all = nodes.flatMap((n) => n.forwards.map((f) => ({ node: n.name, f })));
  const out: Diagnostic[] = [];
  for (const a of all) {
    const clash = all.find((b) =>
      b !== a && b.f.host === a.f.host && b.f.proto === a.f.proto &&
      (a.f.address === undefined || b.f.address === undefined || a.f.address === b.f.address)
    );
    if (clash) {
      out.push({
        severity: "error",
        ...a.f.at,
        message:
          `host port ${a.f.proto}/${a.f.host} is forwarded twice (to "${a.node}" here and to "${clash.node}" on line ${clash.f.at.line}); give each forward its own host port`,
      });
    }
  }
  return out;
}

/** One unit's forwards, for checks across units. */
export interface UnitForwards {
  /** How a message names the unit: "unit lab1", "the default unit". */
  label: string;
  nodes: readonly { name: string; forwards: readonly Forward[] }[];
}

function sameHostPort(a: Forward, b: Forward): boolean {
  return a.host === b.host && a.proto === b.proto &&
    (a.address === undefined || b.address === undefined || a.address === b.address);
}

function at(f: Forward): string {
  return `${f.at.file}:${f.at.line}:${f.at.column}`;
}

/**
 * Host ports that this unit and another configured unit both forward: an error at each of
 * the two lines, since the two units could not run together.
 */
export function crossUnitForwardClashes(
  mine: UnitForwards,
  others: readonly UnitForwards[],
): Diagnostic[] {
  const out: Diagnostic[] = [];
  const flat = (u: UnitForwards) =>
    u.nodes.flatMap((n) => n.forwards.map((f) => ({ node: n.name, f })));
  for (const a of flat(mine)) {
    for (const other of others) {
      for (const b of flat(other).filter((b) => sameHostPort(a.f, b.f))) {
        const port = `${a.f.proto}/${a.f.host}`;
        out.push({
          severity: "error",
          ...a.f.at,
          message: `host port ${port} is also forwarded by ${other.label} (to "${b.node}", ${
            at(b.f)
          }); each unit needs host ports of its own`,
        }, {
          severity: "error",
          ...b.f.at,
          message: `host port ${port} is also forwarded by ${mine.label} (to "${a.node}", ${
            at(a.f)
          }); each unit needs host ports of its own`,
        });
      }
    }
  }
  return out;
}

/** A forward another unit's table holds now (from `nft list table`). */
export interface HeldForward {
  proto: "tcp" | "udp";
  host: number;
  address?: string;
  /** "NODE:PORT", as the rule's comment says. */
  to: string;
}

/** The forwards in a unit's table as `nft list table inet T` prints it (their DNAT rules). */
export function heldForwards(tableText: string): HeldForward[] {
  const out: HeldForward[] = [];
  for (const line of tableText.split("\n")) {
    const m = /comment "forward (tcp|udp)\/(\d+) to ([^"]+)"/.exec(line);
    if (!m || !/\bdnat\b/.test(line)) continue;
    const address = /\bip daddr (\d+\.\d+\.\d+\.\d+)\b/.exec(line)?.[1];
    out.push({
      proto: m[1] as "tcp" | "udp",
      host: Number(m[2]),
      ...(address ? { address } : {}),
      to: m[3]!,
    });
  }
  return out;
}

/**
 * This unit's forwards whose host port a running unit holds: an error at each line, naming
 * the unit (exit 2 at start).
 */
export function forwardsTaken(
  nodes: readonly { name: string; forwards: readonly Forward[] }[],
  held: readonly { label: string; forwards: readonly HeldForward[] }[],
): Diagnostic[] {
  return nodes.flatMap((n) =>
    n.forwards.flatMap((f) =>
      held.flatMap((h) =>
        h.forwards.filter((g) => sameHostPort(f, { ...g, port: 0, at: f.at })).map((g) => ({
          severity: "error" as const,
          ...f.at,
          message:
            `host port ${f.proto}/${f.host} is taken: running ${h.label} forwards it (to ${g.to}); stop that unit or choose another host port`,
        }))
      )
    )
  );
}
