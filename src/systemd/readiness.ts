/**
 * The manager's one judgement of "usable", published with the facts it came from.
 *
 * A node is usable when its unit is active, its address is the one the lease records hold
 * (or its `ip:` reservation, for a node that has one), and it answered the readiness probe
 * at that address since its unit last became active. The manager writes the verdicts to
 * the runtime directory before it sends READY=1 or a new STATUS=, and `status` reads them:
 * it probes nothing itself, so it can never call healthy what READY did not (or the
 * reverse). A verdict holds only for the unit activation it was made for: `status`
 * compares it with the unit's current ActiveEnterTimestamp.
 */

import { rethrowAccessErrors } from "../base/errors.ts";
import { writeFileAtomic } from "../host/atomic.ts";
import { readSmallFile } from "../host/safe_file.ts";
import { classify, type NodeCondition } from "./node_state.ts";
import type { UnitState } from "./systemd1.ts";

/** Where a judged address comes from. */
export type AddressSource = "lease" | "reservation";

export interface NodeVerdict {
  name: string;
  condition: NodeCondition;
  /** The address the node is judged at; null for a DHCP node with no lease recorded yet. */
  address: string | null;
  source: AddressSource | null;
  /** The unit activation this verdict holds for (ActiveEnterTimestamp, usec; 0: not active). */
  activeSinceUsec: number;
  /** When the node answered the probe at `address` (ISO time), null when it has not. */
  answeredAt: string | null;
}

export interface Readiness {
  version: 1;
  /** When the manager made these verdicts. */
  at: string;
  phase: "starting" | "running";
  nodes: NodeVerdict[];
}

/**
 * The address a node is judged at (pure): its lease record, else its reservation. The
 * planned pool address never counts: a DHCP node that answers there but whose lease is
 * not recorded yet is not usable, since nothing a user reads knows that address.
 */
export function judgedAddress(
  leaseIp: string | undefined,
  reserved: string | undefined,
): { address: string; source: AddressSource } | undefined {
  if (leaseIp) return { address: leaseIp, source: "lease" };
  if (reserved) return { address: reserved, source: "reservation" };
  return undefined;
}

/** An answer to the readiness probe: at which address, for which unit activation, when. */
export interface Answer {
  since: number;
  address: string;
  at: string;
}

/**
 * Whether an answer counts now (pure): the unit is active, in the very activation the
 * answer came in, and the node's judged address is still the one that answered.
 */
export function answerHolds(
  answer: Answer | undefined,
  state: UnitState | undefined,
  judged: string | undefined,
): boolean {
  return answer !== undefined && state?.activeState === "active" &&
    answer.since === state.activeEnterUsec && answer.address === judged;
}

/** One node's verdict from its facts (pure): unit state, lease, reservation, last answer. */
export function judgeNode(
  name: string,
  facts: {
    state: UnitState | undefined;
    leaseIp: string | undefined;
    reserved: string | undefined;
    answer: Answer | undefined;
  },
  nowUsec = Date.now() * 1000,
): NodeVerdict {
  const judged = judgedAddress(facts.leaseIp, facts.reserved);
  const holds = answerHolds(facts.answer, facts.state, judged?.address);
  return {
    name,
    condition: classify(facts.state, holds, nowUsec),
    address: judged?.address ?? null,
    source: judged?.source ?? null,
    activeSinceUsec: facts.state?.activeState === "active" ? facts.state.activeEnterUsec : 0,
    answeredAt: holds ? facts.answer!.at : null,
  };
}

/**
 * Whether a verdict still holds for the unit as it is now (pure): made for this very
 * activation, and ready.
 */
export function stillReady(verdict: NodeVerdict | undefined, activeSinceUsec: number): boolean {
  return verdict?.condition === "ready" && activeSinceUsec > 0 &&
    verdict.activeSinceUsec === activeSinceUsec;
}

/** How large the record may be: far more than any unit's verdicts. */
const MAX_READINESS_FILE = 256 * 1024;

export function writeReadiness(file: string, readiness: Readiness): void {
  writeFileAtomic(file, JSON.stringify(readiness, null, 2) + "\n", 0o644);
}

/**
 * The manager's last verdicts, or undefined when there are none (no manager ran since
 * boot) or the file is not a record (read without following links, bounded: the
 * runtime directory is the service user's).
 */
export function readReadiness(file: string): Readiness | undefined {
  let parsed: Readiness;
  try {
    parsed = JSON.parse(readSmallFile(file, MAX_READINESS_FILE) ?? "null") as Readiness;
  } catch (error) {
    rethrowAccessErrors(error, file);
    return undefined;
  }
  if (parsed?.version !== 1 || !Array.isArray(parsed.nodes)) return undefined;
  return parsed;
}
