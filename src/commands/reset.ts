/** `aos-unit reset NODE [--efivars]`: start a stopped node from its base image again. */

import { EXIT_OK, RuntimeError, UsageError } from "../base/errors.ts";
import { envOverrides, loadAndPlan } from "../host/load.ts";
import { withSystemd } from "../systemd/connect.ts";
import { resetDisks } from "../vm/disk.ts";
import { listSnapshots } from "../vm/snapshot.ts";
import { againAsServiceUser } from "../host/as_service_user.ts";
import { type CommandContext, serviceUserOf } from "./_context.ts";
import { type CommandSpec, flag } from "./_spec.ts";

export async function resetCommand(
  ctx: CommandContext,
  name: string,
  efiVars: boolean,
): Promise<number> {
  // Root never deletes in a node directory the service user could have replaced with a link.
  const again = await againAsServiceUser(
    ["reset", name, ...(efiVars ? ["--efivars"] : [])],
    serviceUserOf(ctx),
  );
  if (again !== undefined) return again;
  const { plan } = loadAndPlan(ctx.paths, envOverrides(ctx.env));
  const node = plan.nodes.find((n) => n.name === name);
  if (!node) {
    throw new UsageError(
      `No node "${name}" in the configuration (nodes: ${plan.nodes.map((n) => n.name).join(", ")})`,
    );
  }
  try {
    const state = await withSystemd((systemd) => systemd.unitState(node.unit.name));
    if (state && (state.activeState === "active" || state.activeState === "activating")) {
      throw new RuntimeError(
        `Node ${name} is running; stop the unit first: systemctl stop aos-unit`,
      );
    }
  } catch (error) {
    if (error instanceof RuntimeError && error.name === "RuntimeError") throw error;
    // No systemd: the QMP socket tells whether QEMU runs.
    try {
      Deno.statSync(node.qmpSocket);
      throw new RuntimeError(
        `Node ${name} seems to be running (${node.qmpSocket} exists); stop it first`,
      );
    } catch (e) {
      if (e instanceof RuntimeError) throw e;
    }
  }
  const removed = await resetDisks(node, efiVars);
  ctx.out(
    removed.length === 0
      ? `Node ${name} has no overlay yet; nothing to reset`
      : `Node ${name} reset: removed ${
        removed.join(", ")
      }; it boots from ${node.image.path} next time`,
  );
  ctx.out(snapshotsKept(name, listSnapshots(plan).map((s) => s.name)));
  return EXIT_OK;
}

/** What a reset does to the snapshots: nothing, since each holds its own copy of the node. */
export function snapshotsKept(node: string, snapshots: readonly string[]): string {
  if (snapshots.length === 0) return `No snapshot holds ${node}`;
  return `Snapshots keep their own copy of ${node} (${snapshots.join(", ")}); ` +
    `snapshot restore brings it back`;
}

export const resetSpec: CommandSpec = {
  name: "reset",
  summary: "discard a stopped node's overlay so it boots from its base image again",
  group: "user",
  args: [{ name: "<node>", description: "node name from unit_config.yaml" }],
  options: [{
    flags: "--efivars",
    description: "also discard the node's UEFI variables (boot order, A/B state)",
  }],
  examples: `
Examples:
  sudo systemctl stop aos-unit && sudo aos-unit reset secondary
  sudo aos-unit reset main --efivars`,
  run: (ctx, call) => resetCommand(ctx, String(call.args[0]), flag(call, "efivars")),
};
