/** Applying aos-unit's nftables table: checked first, then one atomic transaction. */

import type { Runner } from "../host/runner.ts";
import { NFT_BRIDGE_FAMILY, NFT_FAMILY } from "../plan/nft.ts";

/** aos-unit's tables: the inet one (NAT, fence) and the bridge one (per-tap guard). */
const FAMILIES = [NFT_FAMILY, NFT_BRIDGE_FAMILY] as const;
import { TOOLS } from "../base/tools.ts";
import { isUnitTable } from "../base/unit_identity.ts";

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

/**
 * Deletes only the unit's tables, by their name in its record (never `flush ruleset`).
 * @returns the tables deleted
 */
export async function deleteTable(runner: Runner, table: string): Promise<string[]> {
  const deleted: string[] = [];
  for (const family of FAMILIES) {
    const r = await runner.run([TOOLS.nft, "delete", "table", family, table], {
      okCodes: [0, 1],
    });
    if (r.code === 0) deleted.push(`table ${family} ${table}`);
  }
  return deleted;
}

/**
 * Both tables as the kernel holds them, without counters (`nft -s`): what a
 * tamper check compares. undefined when either table does not exist.
 */
export async function currentTable(
  runner: Runner,
  table: string,
  families: readonly string[] = FAMILIES,
): Promise<string | undefined> {
  let text = "";
  for (const family of families) {
    const r = await runner.run([TOOLS.nft, "-s", "list", "table", family, table], {
      okCodes: [0, 1],
    });
    if (r.code !== 0) return undefined;
    text += r.stdout;
  }
  return text;
}

/** Other units' `inet` tables on this host, as `nft list table` prints them. */
export async function otherUnitTables(
  runner: Runner,
  own: string,
): Promise<{ table: string; text: string }[]> {
  const r = await runner.run([TOOLS.nft, "-j", "list", "tables"], { okCodes: [0, 1] });
  if (r.code !== 0) return [];
  const names = (JSON.parse(r.stdout).nftables as { table?: { family: string; name: string } }[])
    .flatMap((o) =>
      o.table?.family === NFT_FAMILY && isUnitTable(o.table.name) && o.table.name !== own
        ? [o.table.name]
        : []
    );
  return await Promise.all(names.map(async (table) => ({
    table,
    text: (await runner.run([TOOLS.nft, "list", "table", NFT_FAMILY, table], { okCodes: [0, 1] }))
      .stdout,
  })));
}
