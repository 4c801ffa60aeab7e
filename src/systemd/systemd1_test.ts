import assert from "node:assert/strict";
import { parseSystemdVersion, unitNameFromPath, unitPath } from "./systemd1.ts";

Deno.test("unitPath() escapes a unit name as systemd does, and unitNameFromPath() reverses it", () => {
  assert.equal(
    unitPath("aos-node-main.service"),
    "/org/freedesktop/systemd1/unit/aos_2dnode_2dmain_2eservice",
  );
  assert.equal(
    unitPath("aos-unit-vm-failed@x1.service"),
    "/org/freedesktop/systemd1/unit/aos_2dunit_2dvm_2dfailed_40x1_2eservice",
  );
  for (const name of ["aos-node-main.service", "aos-unit-dnsmasq.service", "aos-node-n2.service"]) {
    assert.equal(unitNameFromPath(unitPath(name)), name);
  }
});

Deno.test("parseSystemdVersion() takes the leading number", () => {
  assert.equal(parseSystemdVersion("252.39-1~deb12u2"), 252);
  assert.equal(parseSystemdVersion("257.13-1~deb13u1"), 257);
  assert.equal(parseSystemdVersion("v-unknown"), 0);
});
