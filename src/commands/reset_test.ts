import assert from "node:assert/strict";
import { snapshotsKept } from "./reset.ts";

Deno.test("reset names the snapshots that keep the node", () => {
  assert.equal(snapshotsKept("main", []), "No snapshot holds main");
  assert.equal(
    snapshotsKept("secondary", ["provisioned", "after-ota"]),
    "Snapshots keep their own copy of secondary (provisioned, after-ota); " +
      "snapshot restore brings it back",
  );
});
