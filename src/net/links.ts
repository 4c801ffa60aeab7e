/** Links, addresses and routes as `ip -j` reports them. */

import type { Runner } from "../host/runner.ts";
import { TOOLS } from "../base/tools.ts";

export interface LinkInfo {
  ifname: string;
  ifindex: number;
  address?: string;
  master?: string;
  ifalias?: string;
  operstate?: string;
  /** With `ip -d`: a tap's owner, group and persistence (info_data). */
  linkinfo?: {
    info_kind?: string;
    info_data?: { user?: string; group?: string; persist?: boolean };
  };
  flags?: string[];
}

export interface AddrInfo {
  ifname: string;
  addr_info: { family: string; local: string; prefixlen: number }[];
}

export interface RouteInfo {
  dst: string;
  dev?: string;
  gateway?: string;
  metric?: number;
}

export async function listLinks(runner: Runner): Promise<LinkInfo[]> {
  const r = await runner.run([TOOLS.ip, "-j", "-d", "link", "show"]);
  return JSON.parse(r.stdout || "[]") as LinkInfo[];
}

/** One link by name (`ip -j link show dev NAME`), or undefined when there is none. */
export async function linkInfo(runner: Runner, name: string): Promise<LinkInfo | undefined> {
  const r = await runner.run([TOOLS.ip, "-j", "link", "show", "dev", name], { okCodes: [0, 1] });
  if (r.code !== 0) return undefined;
  return (JSON.parse(r.stdout || "[]") as LinkInfo[])[0];
}

export async function listAddresses(runner: Runner): Promise<AddrInfo[]> {
  const r = await runner.run([TOOLS.ip, "-j", "-4", "addr", "show"]);
  return JSON.parse(r.stdout || "[]") as AddrInfo[];
}

/** The IPv4 routes of the main table (or of every table: "all"). */
export async function listRoutes(runner: Runner, table = "main"): Promise<RouteInfo[]> {
  const r = await runner.run([TOOLS.ip, "-j", "-4", "route", "show", "table", table]);
  return JSON.parse(r.stdout || "[]") as RouteInfo[];
}

/** The mark written to a unit's bridge's ifalias: how startup and cleanup know it is theirs. */
export function ownerAlias(owner: string, cidr: string): string {
  return `${owner} ${cidr}`;
}

/** A bridge that carries this unit's mark (`owner`: the unit record's; never another unit's). */
export function isOurs(link: LinkInfo, owner: string): boolean {
  const alias = link.ifalias ?? "";
  return link.linkinfo?.info_kind === "bridge" &&
    (alias === owner || alias.startsWith(`${owner} `));
}

/** Interfaces with a default route, lowest metric first. */
export function defaultRouteDevices(routes: readonly RouteInfo[]): string[] {
  return [
    ...new Set(
      routes.filter((r) => r.dst === "default" && r.dev).sort((a, b) =>
        (a.metric ?? 0) - (b.metric ?? 0)
      )
        .map((r) => r.dev!),
    ),
  ];
}

/**
 * The host's routes as CIDRs, but those on the unit's own link to its namespace (by the
 * link's mark "OWNER link"): where an isolated unit's host block must not go.
 */
export function routesOfOthers(
  routes: readonly RouteInfo[],
  links: readonly LinkInfo[],
  owner: string,
): string[] {
  const own = new Set(
    links.filter((l) => l.ifalias === ownerAlias(owner, "link")).map((l) => l.ifname),
  );
  // (Table "all" also lists local, broadcast and multicast routes: every one counts.)
  return routes.filter((r) =>
    r.dst !== "default" && /^\d/.test(r.dst) && !(r.dev !== undefined && own.has(r.dev))
  ).map((r) => r.dst.includes("/") ? r.dst : `${r.dst}/32`);
}

/** Where an isolated unit's host block must not go: routes and addresses of other links. */
export function takenByOthers(
  routes: readonly RouteInfo[],
  addresses: readonly AddrInfo[],
  links: readonly LinkInfo[],
  owner: string,
): string[] {
  const mark = ownerAlias(owner, "link");
  const own = new Set(links.filter((l) => l.ifalias === mark).map((l) => l.ifname));
  return [
    ...routesOfOthers(routes, links, owner),
    ...addresses.filter((a) => !own.has(a.ifname)).flatMap((a) =>
      a.addr_info.map((i) => `${i.local}/32`)
    ),
  ];
}
