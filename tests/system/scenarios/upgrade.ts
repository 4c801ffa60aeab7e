/** Tier-3 scenario "upgrade": a newer package under running guests. */

import assert from "node:assert/strict";
import { type Scenario, UNIT_CONFIG } from "../system_bed.ts";

export const upgrade: Scenario = {
  name: "upgrade",
  summary: "a newer package under running guests",
  start: "running",
  async run(t, c) {
    const { bed, deb2, sh, show, boots, waitRunning } = c;
    let overlays = "";
    await t.step(
      "installing a newer package that changes a node sandbox property: no guest reboot, the new version runs, conffiles kept",
      async () => {
        const tasks = await show("aos-node-main.service", "TasksMax", "InvocationID");
        assert.equal(tasks.TasksMax, "512");
        overlays = await sh(
          "stat -c '%n %i' /var/lib/aos-unit/nodes/*/overlay.qcow2 /var/lib/aos-unit/nodes/*/efivars.fd",
        );
        const before = await boots();
        const version = (await sh("aos-unit --version")).trim();
        const invocation = (await show("aos-unit.service", "InvocationID")).InvocationID;
        const started = performance.now();
        const r = await bed.exec(["apt-get", "install", "-y", `/tmp/${deb2.split("/").pop()}`]);
        assert.equal(r.code, 0, r.stderr + r.stdout);
        await waitRunning();
        console.log(
          `apt-get install of a new build -> READY: ${Math.round(performance.now() - started)} ms`,
        );
        assert.notEqual((await sh("aos-unit --version")).trim(), version, "the new version");
        assert.notEqual(
          (await show("aos-unit.service", "InvocationID")).InvocationID,
          invocation,
        );
        assert.equal(
          await sh("cat /etc/aos-unit/unit_config.yaml"),
          UNIT_CONFIG,
          "conffile kept",
        );
        assert.deepEqual(await boots(), before, "no guest rebooted");
        // TasksMax=511 in the new release applies at the node's next start, not now.
        assert.deepEqual(
          await show("aos-node-main.service", "TasksMax", "InvocationID"),
          tasks,
          "the node unit adopted as it runs",
        );
        assert.equal(
          await sh(
            "stat -c '%n %i' /var/lib/aos-unit/nodes/*/overlay.qcow2 /var/lib/aos-unit/nodes/*/efivars.fd",
          ),
          overlays,
        );
      },
    );
  },
};
