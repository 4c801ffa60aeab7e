/**
 * What a node's unit state means for the unit as a whole (pure): READY,
 * STATUS and the decision to fail are made from these conditions only.
 *
 * "systemd gave up" is never read from a momentary ActiveState=failed: on
 * systemd 252 (and on >= 254 without RestartMode=direct) every crash passes
 * through "failed" on its way to the automatic restart. It is the start-limit
 * result, or - because systemd 252 keeps the crash's result ("exit-code") when
 * the start limit refuses an automatic restart - a failed state that lasted.
 */

import type { UnitState } from "./systemd1.ts";

export type NodeCondition =
  /** The unit runs and the guest answered on its address. */
  | "ready"
  /** The unit runs or starts; the guest has not answered yet. */
  | "starting"
  /** Between a crash and systemd's automatic restart. */
  | "restarting"
  /** systemd hit the start limit and left the unit failed. */
  | "gave-up"
  /** Not running and nothing will start it (the guest powered itself off, or stopped by hand). */
  | "stopped";

/** How long "failed" must last to be final: the way to "auto-restart" takes microseconds. */
export const SETTLED_FAILURE_MS = 1000;

export function gaveUp(state: UnitState | undefined, nowUsec = Date.now() * 1000): boolean {
  if (state?.activeState !== "failed") return false;
  return state.result === "start-limit-hit" ||
    nowUsec - state.stateChangeUsec >= SETTLED_FAILURE_MS * 1000;
}

export function classify(
  state: UnitState | undefined,
  answered: boolean,
  nowUsec = Date.now() * 1000,
): NodeCondition {
  if (!state || state.loadState === "not-found") return "stopped";
  if (gaveUp(state, nowUsec)) return "gave-up";
  switch (state.activeState) {
    case "active":
    case "reloading":
      return answered ? "ready" : "starting";
    case "activating":
      return state.subState === "auto-restart" ? "restarting" : "starting";
    case "deactivating":
      return "restarting";
    case "failed":
      // A crash on its way to the automatic restart (the start limit was not hit).
      return "restarting";
    default:
      return "stopped";
  }
}

/** True while the node may still become ready without anyone acting. */
export function pending(condition: NodeCondition): boolean {
  return condition === "starting" || condition === "restarting";
}

export interface NodeView {
  name: string;
  condition: NodeCondition;
  address: string | undefined;
  /** Why a node that does not answer may never answer (its lease or image says otherwise). */
  note?: string;
}

/** How a node that is not ready reads in a running unit's STATUS. */
function problemText(n: NodeView): string {
  // Past READY, a node that runs but never answered on its address is silent, not starting.
  const what = n.condition === "starting" ? "silent" : n.condition;
  const at = n.condition === "starting" && n.address ? ` at ${n.address}` : "";
  return `${n.name} ${what}${at}${n.note ? ` (${n.note})` : ""}`;
}

/** The STATUS= line systemd shows for aos-unit.service. */
export function statusLine(
  nodes: readonly NodeView[],
  sidecar: { name: string; gaveUp: boolean },
  phase: "starting" | "running",
): string {
  const ready = nodes.filter((n) => n.condition === "ready");
  const missing = nodes.filter((n) => n.condition !== "ready");
  if (phase === "starting") {
    // Only nodes that may still come are waited for; the others are named as failed.
    const waiting = missing.filter((n) => pending(n.condition)).map((n) => n.name);
    const failed = missing.filter((n) => !pending(n.condition)).map((n) => n.name);
    return `${ready.length}/${nodes.length} nodes ready${
      waiting.length ? ` (waiting for ${waiting.join(", ")})` : ""
    }${failed.length ? `; failed: ${failed.join(", ")}` : ""}${
      sidecar.gaveUp ? `; ${sidecar.name} gave up` : ""
    }`;
  }
  const parts = ready.map((n) => `${n.name}=${n.address ?? "?"}`);
  const problems = missing.map(problemText);
  if (sidecar.gaveUp) problems.push(`${sidecar.name} gave up (DHCP and DNS down)`);
  const head = problems.length === 0 ? "Running" : "Degraded";
  return `${head}: ${parts.join(" ") || "no node ready"}${
    problems.length ? `; ${problems.join(", ")}` : ""
  }`;
}
