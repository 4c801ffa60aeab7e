/**
 * Powering a node down when the unit stops, the same way whoever does it (the
 * manager, or cleanup when the manager is gone): the ACPI power button first;
 * a guest that is up gets STOP_TIMEOUT_SEC, one still booting (it cannot
 * react to ACPI yet) a short grace; only then is QEMU signalled, and the unit
 * stopped so that no automatic restart follows.
 */

import type { Logger } from "../log.ts";
import type { Systemd } from "../systemd/systemd1.ts";
import { powerdownAndWait } from "./qmp.ts";

/** How long a guest that never answered gets to power down. */
export const BOOTING_GRACE_MS = 2000;

export interface NodeToStop {
  name: string;
  unit: string;
  qmpSocket: string;
  /** up: answered on its address; booting: not yet; restarting: between a crash and a restart. */
  phase: "up" | "booting" | "restarting";
}

/** Waits until the unit is inactive or gone; false after the timeout. */
export async function waitInactive(
  systemd: Systemd,
  unit: string,
  timeoutMs: number,
  changed?: () => Promise<unknown>,
): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    const state = await systemd.unitState(unit).catch(() => undefined);
    if (!state || state.activeState === "inactive" || state.activeState === "failed") return true;
    // A unit change wakes the wait early; at most 100 ms pass either way.
    await (changed?.() ?? new Promise((r) => setTimeout(r, 100)));
  }
  return false;
}

export async function powerDownNode(
  systemd: Systemd | undefined,
  node: NodeToStop,
  stopTimeoutSec: number,
  log: Logger,
  changed?: () => Promise<unknown>,
): Promise<void> {
  const started = performance.now();
  const grace = node.phase === "up" ? stopTimeoutSec * 1000 : BOOTING_GRACE_MS;
  const result = node.phase === "restarting"
    ? "unreachable"
    : await powerdownAndWait(node.qmpSocket, grace, undefined, node.name);
  if (result === "exited") {
    log.info(`Node ${node.name} powered down in ${Math.round(performance.now() - started)} ms`);
  } else if (node.phase === "up") {
    log.warning(`Node ${node.name} did not power down in ${stopTimeoutSec} s; stopping its unit`);
  }
  if (!systemd) return;
  // QEMU is on its way out: its unit ends by itself (no ExecStop= run needed).
  if (result === "exited" && await waitInactive(systemd, node.unit, 5000, changed)) return;
  // Ends QEMU if the guest did not go by itself (ExecStop= then finds nothing to ask), and
  // cancels a pending automatic restart. QEMU alone: a stop hook killed with it would make
  // the stop a failure (systemd runs ExecStop= after a main process that ended too).
  await systemd.killUnit(node.unit, "SIGTERM", "main").catch(() => {});
  await systemd.stopUnit(node.unit, (stopTimeoutSec + 10) * 1000).catch((e) =>
    log.warning(`Cannot stop ${node.unit}: ${(e as Error).message}`)
  );
}
