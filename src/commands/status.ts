/** `aos-unit status [--json]`: every node's state, address, MAC, uptime, restarts and last failure. */

import { EXIT_OK, EXIT_RUNTIME } from "../base/errors.ts";
import { envOverrides, loadAndPlan } from "../host/load.ts";
import { readLeaseState } from "../host/leases.ts";
import { linkInfo } from "../net/links.ts";
import { readSmallFile } from "../host/safe_file.ts";
import { createRunner } from "../host/runner.ts";
import { gaveUp } from "../systemd/node_state.ts";
import { readReadiness, stillReady } from "../systemd/readiness.ts";
import { readinessFile } from "../plan/layout.ts";
import { withSystemd } from "../systemd/connect.ts";
import type { UnitState } from "../systemd/systemd1.ts";
import { lastFailures } from "../vm/failures.ts";
import type { CommandContext } from "./_context.ts";
import { type CommandSpec, flag } from "./_spec.ts";

export interface NodeStatus {
  name: string;
  unit: string;
  /** The name the host resolves the node by (NODE.aos-unit, NODE.UNIT.aos-unit). */
  hostName: string;
  /** The guest's console output, appended across boots. */
  serialLog: string;
  state: string;
  address: string | null;
  addressSince: string | null;
  reserved: string | null;
  /**
   * The manager's verdict (systemd/readiness.ts): the unit runs and the node answered at
   * `judgedAddress` since its unit last became active.
   */
  usable: boolean;
  judgedAddress: string | null;
  answeredAt: string | null;
  mac: string;
  uptimeSec: number | null;
  restarts: number | null;
  lastFailure: { time: string; result: string; final: boolean } | null;
}

export interface Status {
  /** The unit (null: the default unit) and its service. */
  unit: string | null;
  manager: string;
  healthy: boolean;
  service: string;
  sidecars: Record<string, string>;
  bridge: { name: string; address: string; present: boolean; operstate: string | null };
  /**
   * A named unit's own namespace, its link to the host (present/operstate above are the
   * link's), its host block, and its subnet as the host sees it (a node's place in it).
   */
  isolation?: { namespace: string; link: string; block: string; mapped: string };
  uplinks: string[];
  dnsPort: number;
  nodes: NodeStatus[];
}

function stateText(s: UnitState | undefined): string {
  return s ? `${s.activeState}/${s.subState}` : "not loaded";
}

function duration(sec: number): string {
  const d = Math.floor(sec / 86400);
  const h = Math.floor((sec % 86400) / 3600);
  const m = Math.floor((sec % 3600) / 60);
  const s = Math.floor(sec % 60);
  return d > 0 ? `${d}d${h}h` : h > 0 ? `${h}h${m}m` : m > 0 ? `${m}m${s}s` : `${s}s`;
}

/** The human view: the service, sidecar and bridge, then one row per node. */
export function renderStatus(s: Status): string {
  const lines = [
    `${s.manager}: ${s.service}${s.healthy ? "" : "  (NOT HEALTHY)"}`,
    `sidecar: ${
      Object.entries(s.sidecars).map(([k, v]) => `${k} ${v}`).join(", ")
    }; route monitor: in ${s.manager}`,
    `bridge: ${s.bridge.name} ${s.bridge.address}${
      s.isolation
        ? ` in namespace ${s.isolation.namespace}, seen as ${s.isolation.mapped} on ${s.isolation.link}`
        : ""
    } (${s.bridge.operstate ?? "absent"}), uplink(s): ${
      s.uplinks.join(", ") || "unknown"
    }, DNS port ${s.dnsPort}`,
    "",
  ];
  const rows = [["NODE", "STATE", "ADDRESS", "MAC", "UPTIME", "RESTARTS", "LAST FAILURE"]];
  for (const n of s.nodes) {
    rows.push([
      n.name,
      n.state + (n.state === "active/running" && !n.usable ? " (not answering)" : ""),
      n.address ?? (n.reserved ? `${n.reserved} (reserved)` : "-"),
      n.mac,
      n.uptimeSec === null ? "-" : duration(n.uptimeSec),
      n.restarts === null ? "-" : String(n.restarts),
      n.lastFailure
        ? `${n.lastFailure.time} ${n.lastFailure.result}${n.lastFailure.final ? " (gave up)" : ""}`
        : "-",
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) lines.push(r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd());
  return lines.join("\n");
}

export async function statusCommand(ctx: CommandContext, json: boolean): Promise<number> {
  const { plan } = loadAndPlan(ctx.paths, envOverrides(ctx.env));
  const manager = plan.unit.managerUnit;
  const sidecar = plan.dnsmasq.unit.name;
  const units = new Map<string, UnitState | undefined>();
  let busProblem: string | undefined;
  try {
    await withSystemd(async (systemd) => {
      const names = [manager, sidecar, ...plan.nodes.map((n) => n.unit.name)];
      const states = await Promise.all(names.map((name) => systemd.unitState(name)));
      names.forEach((name, i) => units.set(name, states[i]));
    });
  } catch (error) {
    busProblem = (error as Error).message;
  }
  const leases = readLeaseState(plan.leaseState).leases;
  const failures = lastFailures(ctx.paths.logsDir);
  const verdicts = readReadiness(readinessFile(ctx.paths))?.nodes ?? [];
  const nowUsec = Date.now() * 1000;
  const nodes: NodeStatus[] = plan.nodes.map((n) => {
    const u = units.get(n.unit.name);
    const lease = leases[n.mac];
    const failure = failures.get(n.name);
    const verdict = verdicts.find((v) => v.name === n.name);
    const usable = u?.activeState === "active" &&
      stillReady(verdict, u.activeEnterUsec);
    return {
      name: n.name,
      unit: n.unit.name,
      hostName: `${n.name}.${plan.unit.dnsDomain}`,
      serialLog: n.serialLog,
      state: stateText(u),
      address: lease?.ip ?? null,
      addressSince: lease?.since ?? null,
      reserved: n.ip ?? null,
      usable,
      judgedAddress: usable ? verdict!.address : null,
      answeredAt: usable ? verdict!.answeredAt : null,
      mac: n.mac,
      uptimeSec: u?.activeState === "active" && u.activeEnterUsec > 0
        ? Math.round((nowUsec - u.activeEnterUsec) / 1e6)
        : null,
      restarts: u?.nRestarts ?? null,
      // "gave up" only while systemd really leaves the node failed.
      lastFailure: failure
        ? { time: failure.time, result: failure.result, final: failure.final && gaveUp(u) }
        : null,
    };
  });
  // An isolated unit's bridge is in its namespace: its link to the host stands for it here.
  const iso = plan.isolation;
  const link = await linkInfo(createRunner(), iso?.hostLink ?? plan.network.bridge);
  const operstate = link ? (link.operstate ?? "unknown").toLowerCase() : null;

  let uplinks: string[] = [];
  try {
    // The runtime directory is the service user's (sudo aos-unit status reads it as root).
    uplinks = (readSmallFile(`${ctx.paths.runtimeDir}/uplinks`, 4096) ?? "").trim().split(/\s+/)
      .filter(Boolean);
  } catch { /* monitor not running */ }
  const status: Status = {
    unit: plan.unit.name ?? null,
    manager,
    healthy: units.get(manager)?.activeState === "active" &&
      nodes.every((n) => n.state === "active/running" && n.usable),
    service: busProblem ? `unknown (${busProblem})` : stateText(units.get(manager)),
    sidecars: Object.fromEntries([[sidecar, stateText(units.get(sidecar))]]),
    bridge: {
      name: plan.network.bridge,
      address: `${plan.network.bridgeIp}/${plan.network.prefix}`,
      present: operstate !== null,
      operstate,
    },
    ...(iso
      ? {
        isolation: {
          namespace: iso.namespace,
          link: iso.hostLink,
          block: iso.block,
          mapped: iso.mapped,
        },
      }
      : {}),
    uplinks,
    dnsPort: plan.network.dnsPort,
    nodes,
  };
  ctx.out(json ? JSON.stringify(status, null, 2) : renderStatus(status));
  return status.healthy ? EXIT_OK : EXIT_RUNTIME;
}

export const statusSpec: CommandSpec = {
  name: "status",
  summary:
    "show every node: unit state, address, MAC, uptime, restarts, last failure; exit 1 if unhealthy",
  group: "user",
  options: [{ flags: "--json", description: "print the status as JSON" }],
  examples: `
Examples:
  aos-unit status
  aos-unit status --json | jq '.nodes[] | {name, address}'

Exit status: 0 when the unit runs and every node is usable (its unit runs and it answered at its
leased or reserved address: the manager's verdict, the same that READY and STATUS stand on), 1
otherwise.`,
  run: (ctx, call) => statusCommand(ctx, flag(call, "json")),
};
