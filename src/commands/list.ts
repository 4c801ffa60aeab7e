/**
 * `aos-unit list [--json]`: every unit of this host, with its state: the default unit
 * (when /etc/aos-unit has its configuration), each unit configured in
 * /etc/aos-unit/units/NAME/, and any unit systemd still runs whose configuration is gone.
 */

import { EXIT_OK } from "../base/errors.ts";
import {
  DEFAULT_UNIT,
  DEFAULT_UNIT_LABEL,
  isUnitName,
  MANAGER_TEMPLATE,
  unitNames,
} from "../base/unit_identity.ts";
import { configuredUnits, loadConfigFiles } from "../host/config_files.ts";
import { rootsOf, unitPaths } from "../host/paths.ts";
import { withSystemd } from "../systemd/connect.ts";
import type { CommandContext } from "./_context.ts";
import { type CommandSpec, flag } from "./_spec.ts";

/** One unit as `list` shows it. */
export interface UnitEntry {
  /** The unit's name; "default" for the default unit (never a named unit's name). */
  name: string;
  default: boolean;
  /** Its manager's service. */
  service: string;
  /** ActiveState/SubState of the service ("inactive/dead" when systemd does not have it). */
  state: string;
  /** Its unit_config.yaml, or null when only systemd still knows the unit. */
  config: string | null;
  /** Where the host resolves its nodes: NODE.<hostDomain>. */
  hostDomain: string;
  /** The host ports it forwards (from its configuration; none when it does not load). */
  forwards: ListedForward[];
}

/** A forward as `list` shows it. */
export interface ListedForward {
  node: string;
  proto: "tcp" | "udp";
  host: number;
  port: number;
  address?: string;
}

/** "2222->main:22", "udp/5000->main:5000", "192.0.2.7:2222->main:22" */
export function forwardText(f: ListedForward): string {
  return `${f.address ? `${f.address}:` : ""}${
    f.proto === "tcp" ? "" : "udp/"
  }${f.host}->${f.node}:${f.port}`;
}

/** A running manager service, as systemd lists it. */
export interface RunningService {
  name: string;
  activeState: string;
  subState: string;
}

/** The unit a manager service runs (undefined: the default unit), or null for another. */
function unitOfService(service: string): string | undefined | null {
  if (service === DEFAULT_UNIT.managerUnit) return undefined;
  const name = service.startsWith(`${MANAGER_TEMPLATE}@`) && service.endsWith(".service")
    ? service.slice(MANAGER_TEMPLATE.length + 1, -".service".length)
    : "";
  return isUnitName(name) ? name : null;
}

/**
 * The list: configured units first (the default unit, then by name), then units only
 * systemd knows. Pure.
 * @param configured each configured unit (undefined: the default) and its unit_config.yaml
 */
export function unitList(
  configured: readonly { unit: string | undefined; config: string; forwards?: ListedForward[] }[],
  services: readonly RunningService[],
): UnitEntry[] {
  const entries = new Map<string | undefined, UnitEntry>();
  const entry = (
    unit: string | undefined,
    config: string | null,
    forwards: ListedForward[] = [],
  ): UnitEntry => {
    const names = unitNames(unit);
    return {
      name: unit ?? DEFAULT_UNIT_LABEL,
      default: unit === undefined,
      service: names.managerUnit,
      state: "inactive/dead",
      config,
      hostDomain: names.dnsDomain,
      forwards,
    };
  };
  const sorted = [...configured].sort((a, b) =>
    a.unit === undefined ? -1 : b.unit === undefined ? 1 : a.unit.localeCompare(b.unit)
  );
  for (const c of sorted) entries.set(c.unit, entry(c.unit, c.config, c.forwards));
  for (const s of services) {
    const unit = unitOfService(s.name);
    if (unit === null) continue;
    const e = entries.get(unit) ?? entry(unit, null);
    e.state = `${s.activeState}/${s.subState}`;
    entries.set(unit, e);
  }
  return [...entries.values()];
}

export function renderUnitList(entries: readonly UnitEntry[]): string {
  const rows = [["UNIT", "SERVICE", "STATE", "NODES RESOLVE AS", "FORWARDS", "CONFIGURATION"]];
  for (const e of entries) {
    rows.push([
      e.name,
      e.service,
      e.state,
      `NODE.${e.hostDomain}`,
      e.forwards.map(forwardText).join(",") || "-",
      e.config ?? "(gone)",
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n");
}

/** A unit's forwards from its configuration; none when it does not load (validate says why). */
function forwardsOf(root: string, unit: string | undefined): ListedForward[] {
  const dirs = { configDir: root, stateDir: "/", logsDir: "/", runtimeDir: "/" };
  try {
    return loadConfigFiles(unitPaths(dirs, unit)).config.unit.nodes.flatMap((n) =>
      n.forwards.map((f) => ({
        node: n.name,
        proto: f.proto,
        host: f.host,
        port: f.port,
        ...(f.address ? { address: f.address } : {}),
      }))
    );
  } catch {
    return [];
  }
}

export async function listCommand(ctx: CommandContext, json: boolean): Promise<number> {
  // Every unit, whichever one --unit named: below the configuration root.
  const root = rootsOf(ctx.paths, ctx.paths.unit).configDir;
  const configured = configuredUnits(root).map((c) => ({
    ...c,
    forwards: forwardsOf(root, c.unit),
  }));
  let services: RunningService[] = [];
  let problem: string | undefined;
  try {
    services = await withSystemd((systemd) =>
      systemd.listUnits([DEFAULT_UNIT.managerUnit, `${MANAGER_TEMPLATE}@*.service`])
    );
  } catch (error) {
    problem = (error as Error).message;
  }
  const entries = unitList(configured, services);
  if (problem !== undefined) {
    for (const e of entries) e.state = `unknown (${problem})`;
  }
  if (entries.length === 0 && !json) {
    ctx.err(`No unit is configured in ${root} (unit_config.yaml) or ${root}/units/NAME/`);
    return EXIT_OK;
  }
  ctx.out(json ? JSON.stringify(entries, null, 2) : renderUnitList(entries));
  return EXIT_OK;
}

export const listSpec: CommandSpec = {
  name: "list",
  summary: "show every unit of this host (the default unit and aos-unit@NAME) and its state",
  group: "user",
  options: [{ flags: "--json", description: "print the units as JSON" }],
  examples: `
Examples:
  aos-unit list
  aos-unit list --json | jq -r '.[] | select(.state == "active/running") | .name'

A unit is configured in /etc/aos-unit (the default unit, aos-unit.service) or in
/etc/aos-unit/units/NAME/ (aos-unit@NAME.service). Needs no root and changes nothing.`,
  run: (ctx, call) => listCommand(ctx, flag(call, "json")),
};
