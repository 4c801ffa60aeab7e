/**
 * What `aos-unit prepare` makes, as data: the broker (root) derives it from the plan it has
 * already made and hands it to prepare (the unit's service user) on stdin. prepare then
 * loads no configuration, inspects no image and plans nothing: it is a small, quick
 * process on the first start, where it sits on the way to the first node (aos-unit(8),
 * FOOTPRINT).
 */

import { hiddenFromHelpers, nodeFailureSpool } from "./layout.ts";
import { snapshotsDir } from "./snapshot.ts";
import type { NodePlan, Plan } from "./types.ts";

/** A node's files, and the base image they come from. */
export type NodeFiles = Pick<NodePlan, "name" | "arch" | "dir" | "overlay" | "serialLog"> & {
  image: Pick<NodePlan["image"], "path">;
  efiVars: { template: string; path: string } | undefined;
};

export interface PreparedNode extends NodeFiles {
  /** Where its failure records wait for the manager (open to its QEMU). */
  spool: string;
}

export interface Preparation {
  /** The unit's state directory (leases of older versions sit at its top). */
  stateDir: string;
  /** Directories to make, 0750 (the snapshots; those the helper units hide). */
  dirs: string[];
  dhcpDir: string;
  leaseFile: string;
  leaseState: string;
  failureLog: string;
  nodes: PreparedNode[];
}

export function preparationOf(plan: Plan): Preparation {
  return {
    stateDir: plan.paths.stateDir,
    dirs: [
      snapshotsDir(plan.paths),
      ...hiddenFromHelpers(plan.paths).state.filter((d) => d.startsWith(`${plan.paths.stateDir}/`)),
    ],
    dhcpDir: plan.dnsmasq.dhcpDir,
    leaseFile: plan.dnsmasq.leaseFile,
    leaseState: plan.leaseState,
    failureLog: plan.failureLog,
    nodes: plan.nodes.map((n) => ({
      name: n.name,
      arch: n.arch,
      dir: n.dir,
      overlay: n.overlay,
      serialLog: n.serialLog,
      image: { path: n.image.path },
      efiVars: n.efiVars ? { template: n.efiVars.template, path: n.efiVars.path } : undefined,
      spool: nodeFailureSpool(plan.paths, n.name),
    })),
  };
}

const isPath = (v: unknown): v is string => typeof v === "string" && v.startsWith("/");

/**
 * The preparation sent on stdin, checked for its shape.
 * @returns the preparation, or why it is not one
 */
export function parsePreparation(text: string): Preparation | string {
  let value: Partial<Preparation>;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return `not JSON: ${(error as Error).message}`;
  }
  const top = [value.stateDir, value.dhcpDir, value.leaseFile, value.leaseState, value.failureLog];
  if (!top.every(isPath) || !Array.isArray(value.dirs) || !value.dirs.every(isPath)) {
    return "a path is missing or not absolute";
  }
  if (!Array.isArray(value.nodes)) return "no nodes";
  for (const n of value.nodes as Partial<PreparedNode>[]) {
    const files = [n.dir, n.overlay, n.serialLog, n.spool, n.image?.path];
    if (n.efiVars !== undefined) files.push(n.efiVars?.template, n.efiVars?.path);
    if (typeof n.name !== "string" || typeof n.arch !== "string" || !files.every(isPath)) {
      return `node ${JSON.stringify(n.name)}: a name or path is missing`;
    }
  }
  return value as Preparation;
}
