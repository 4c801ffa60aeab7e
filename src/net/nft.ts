/** Applying aos-unit's nftables table: checked first, then one atomic transaction. */

import type { Runner } from "../host/runner.ts";
import { NFT_FAMILY, NFT_TABLE } from "../plan/nft.ts";
import { TOOLS } from "../permissions.ts";

/**
 * Checks the ruleset with `nft -c`, then applies it, both from stdin: no file
 * in a directory other users can write stands between the plan and the kernel.
 * @returns how long it took, in ms
 */
export async function applyRuleset(runner: Runner, ruleset: string): Promise<number> {
  const started = performance.now();
  await runner.run([TOOLS.nft, "-c", "-f", "-"], { stdin: ruleset });
  await runner.run([TOOLS.nft, "-f", "-"], { stdin: ruleset });
  return Math.round(performance.now() - started);
}

export async function tableExists(runner: Runner): Promise<boolean> {
  const r = await runner.run([TOOLS.nft, "list", "table", NFT_FAMILY, NFT_TABLE], {
    okCodes: [0, 1],
  });
  return r.code === 0;
}

/** Deletes only aos-unit's table (never `flush ruleset`). */
export async function deleteTable(runner: Runner): Promise<boolean> {
  if (!(await tableExists(runner))) return false;
  await runner.run([TOOLS.nft, "delete", "table", NFT_FAMILY, NFT_TABLE]);
  return true;
}

/**
 * The table as the kernel holds it, without counters (`nft -s`): what a
 * tamper check compares. undefined when the table does not exist.
 */
export async function currentTable(runner: Runner): Promise<string | undefined> {
  const r = await runner.run([TOOLS.nft, "-s", "list", "table", NFT_FAMILY, NFT_TABLE], {
    okCodes: [0, 1],
  });
  return r.code === 0 ? r.stdout : undefined;
}
