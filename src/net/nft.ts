/** Applying aos-unit's nftables table: checked first, then one atomic transaction. */

import type { Runner } from "../host/runner.ts";
import { NFT_FAMILY, NFT_TABLE } from "../plan/nft.ts";
import { TOOLS } from "../permissions.ts";

/** Writes the ruleset to `file`, checks it with `nft -c -f`, then applies it with `nft -f`. */
export async function applyRuleset(runner: Runner, file: string, ruleset: string): Promise<number> {
  const started = performance.now();
  await Deno.writeTextFile(file, ruleset);
  await runner.run([TOOLS.nft, "-c", "-f", file]);
  await runner.run([TOOLS.nft, "-f", file]);
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

/** Number of rules per chain the ruleset text declares (to notice tampering). */
export function expectedRuleCount(ruleset: string): number {
  // The last `table ... {` block is the real one; count lines that are rules.
  const body = ruleset.slice(ruleset.lastIndexOf(`table ${NFT_FAMILY} ${NFT_TABLE} {`));
  return body.split("\n").map((l) => l.trim()).filter((l) =>
    l !== "" && !l.startsWith("#") && !l.startsWith("type ") && !l.startsWith("chain ") &&
    !l.startsWith("set ") && !l.startsWith("table ") && !l.startsWith("comment ") &&
    !l.startsWith("elements ") && l !== "}"
  ).length;
}

/** Rules currently in the table, or undefined when the table is gone. */
export async function currentRuleCount(runner: Runner): Promise<number | undefined> {
  const r = await runner.run([TOOLS.nft, "-j", "list", "table", NFT_FAMILY, NFT_TABLE], {
    okCodes: [0, 1],
  });
  if (r.code !== 0) return undefined;
  const parsed = JSON.parse(r.stdout) as { nftables: Record<string, unknown>[] };
  return parsed.nftables.filter((o) => "rule" in o).length;
}
