/**
 * A memory restore's last step, in the manager: every node's QEMU, which the broker
 * started to wait for a state (plan/units.ts, withIncoming), loads its saved RAM and
 * devices from the snapshot; then every guest resumes at once, so that no guest runs
 * ahead of the others it talks to. Each state is read by the service user (the snapshot
 * is hidden from every node) and streamed to its QEMU's socket in the node's own runtime
 * directory (vm/running_state.ts).
 */

import { incomingSocket, snapshotDir, stateIn } from "../plan/snapshot.ts";
import type { NodePlan, Plan } from "../plan/types.ts";
import { allSettledOrThrow } from "../base/settled.ts";
import { QmpError, QmpSession } from "./qmp.ts";
import { loadState, stateTimeoutMs } from "./running_state.ts";

/** How long a QEMU the broker just started may take to open its QMP socket. */
const QMP_WAIT_MS = 15_000;

export interface Resumed {
  /** The longest load of a node's state, in milliseconds. */
  loadMs: number;
  /** From the first connection to every guest running, in milliseconds. */
  totalMs: number;
}

/** The longest a resume of this plan's nodes may take (the start timeout is extended by it). */
export function resumeTimeoutMs(plan: Plan): number {
  return QMP_WAIT_MS + Math.max(0, ...plan.nodes.map((n) => stateTimeoutMs(n.memMiB)));
}

/** Connects once the QEMU that was just started listens (its socket appears with it). */
async function openWhenListening(node: NodePlan, deadline: number): Promise<QmpSession> {
  while (true) {
    try {
      return await QmpSession.open(node.qmpSocket, 5000, node.name);
    } catch (error) {
      if (!(error instanceof QmpError) || performance.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/**
 * Loads snapshot `snapshot`'s state into every node's waiting QEMU, then resumes them all.
 * A failure resumes none (a QEMU that refused its state has exited; systemd's restart of it
 * waits for a state again, and the restore that asked for this puts the unit back).
 * @throws {QmpError} when a node's QEMU cannot be reached or does not take its state
 */
export async function resumeNodes(plan: Plan, snapshot: string): Promise<Resumed> {
  const started = performance.now();
  const dir = snapshotDir(plan.paths, snapshot);
  const sessions = new Map<string, QmpSession>();
  try {
    const loads = await Promise.allSettled(plan.nodes.map(async (n) => {
      const session = await openWhenListening(n, started + QMP_WAIT_MS);
      sessions.set(n.name, session);
      // The QEMU that answered as this node owns its QMP socket: its state socket must be
      // that uid's too.
      return await loadState(
        session,
        { socket: incomingSocket(n), file: stateIn(dir, n.name) },
        stateTimeoutMs(n.memMiB),
        Deno.lstatSync(n.qmpSocket).uid ?? undefined,
      );
    }));
    const failed = loads.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
    await allSettledOrThrow([...sessions.values()].map((s) => s.execute("cont")));
    return {
      loadMs: Math.max(0, ...loads.map((r) => (r as PromiseFulfilledResult<number>).value)),
      totalMs: Math.round(performance.now() - started),
    };
  } finally {
    for (const s of sessions.values()) s.close();
  }
}

/** Whether a node's QEMU waits for a state (started to load one). */
export async function waitsForState(node: NodePlan): Promise<boolean> {
  let session: QmpSession;
  try {
    session = await QmpSession.open(node.qmpSocket, 2000, node.name);
  } catch {
    return false; // not running (or not yet): its unit's state tells the rest
  }
  try {
    const status = await session.execute("query-status") as { status?: string };
    return status.status === "inmigrate";
  } catch {
    return false;
  } finally {
    session.close();
  }
}
