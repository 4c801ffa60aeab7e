import assert from "node:assert/strict";
import { planCase } from "../../tests/golden/plan_golden_test.ts";
import { nodeFailureSpool } from "./layout.ts";
import { parsePreparation, preparationOf } from "./preparation.ts";

Deno.test("preparationOf(): what prepare makes, all inside the unit's state, through JSON intact", () => {
  for (const name of ["default", "named-unit", "aarch64-tcg"]) {
    const { plan } = planCase(name);
    const prep = preparationOf(plan);
    assert.deepEqual(parsePreparation(JSON.stringify(prep)), JSON.parse(JSON.stringify(prep)));
    assert.deepEqual(prep.nodes.map((n) => n.name), plan.nodes.map((n) => n.name));
    for (const [i, n] of prep.nodes.entries()) {
      const node = plan.nodes[i]!;
      assert.equal(n.spool, nodeFailureSpool(plan.paths, n.name));
      assert.equal(n.overlay, node.overlay);
      assert.equal(n.image.path, node.image.path);
      assert.deepEqual(n.efiVars, node.efiVars);
    }
    const made = [prep.dhcpDir, prep.leaseFile, prep.leaseState, prep.failureLog, ...prep.dirs]
      .concat(prep.nodes.flatMap((n) => [n.dir, n.overlay, n.serialLog, n.spool]));
    for (const path of made) {
      const inside = path.startsWith(`${plan.paths.stateDir}/`) ||
        path.startsWith(`${plan.paths.logsDir}/`);
      assert.ok(inside, `${name}: ${path} outside the unit's own directories`);
    }
  }
});

Deno.test("parsePreparation(): anything but the broker's JSON is refused with the reason", () => {
  const prep = preparationOf(planCase("default").plan);
  assert.match(parsePreparation("") as string, /^not JSON/);
  assert.match(parsePreparation("{}") as string, /path is missing/);
  assert.match(
    parsePreparation(JSON.stringify({ ...prep, dhcpDir: "dhcp" })) as string,
    /absolute/,
  );
  assert.equal(parsePreparation(JSON.stringify({ ...prep, nodes: "x" })), "no nodes");
  const noOverlay = { ...prep, nodes: [{ ...prep.nodes[0]!, overlay: undefined }] };
  assert.match(parsePreparation(JSON.stringify(noOverlay)) as string, /node "main"/);
});
