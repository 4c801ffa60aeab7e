/** Tier-3 scenario "start-failures": starts that must fail cleanly, and stops during start-up. */

import assert from "node:assert/strict";
import type { CheckResult } from "../../../src/commands/_doctor_checks.ts";
import { waitFor } from "../../lib/proc.ts";
import { type Scenario, UNIT_CONFIG } from "../system_bed.ts";

export const startFailures: Scenario = {
  name: "start-failures",
  summary: "starts that must fail cleanly, and stops during start-up",
  start: "installed",
  async run(t, c) {
    const {
      bed,
      sh,
      show,
      status,
      writeConfig,
      doctorJson,
      journal,
      startUnit,
      noLeftovers,
    } = c;
    await t.step(
      "a serial log left to root: exit 2 naming the file and the fix, no node started",
      async () => {
        // As an older run by hand as root would leave it (the unit never ran in this bed).
        await sh(
          "touch /var/log/aos-unit/main-serial.log && " +
            "chown root:root /var/log/aos-unit/main-serial.log && chmod 644 /var/log/aos-unit/main-serial.log",
        );
        let j = "";
        let c: CheckResult;
        let code = 0;
        try {
          const since = (await sh("date +%s.%N")).trim();
          code = (await bed.exec(["systemctl", "start", "aos-unit"])).code;
          j = await sh(`journalctl --no-pager --since @${since}`);
          c = (await doctorJson()).checks.find((x) => x.id === "node-files")!;
        } finally {
          // Put back whatever failed: the steps after this one need the log.
          await sh(
            "chown aos-unit:aos-unit /var/log/aos-unit/main-serial.log; systemctl reset-failed aos-unit",
          );
        }
        assert.notEqual(code, 0);
        assert.match(
          j,
          /QEMU \(user aos-node-NAME, group aos-unit\) cannot write the serial log \/var\/log\/aos-unit\/main-serial\.log .*fix: chown aos-unit:aos-unit \/var\/log\/aos-unit\/main-serial\.log/,
        );
        assert.match(j, /status=2/);
        assert.doesNotMatch(j, /Started aos-node-/, "no node unit started");
        assert.equal(c.status, "fail");
        assert.match(c.fix!, /chown aos-unit:aos-unit \/var\/log\/aos-unit\/main-serial\.log/);
        await noLeftovers();
      },
    );

    await t.step(
      "a root-owned 0600 base image (a plain sudo cp): exit 2 with the chown, no restart",
      async () => {
        const image = "/var/lib/aos-unit/aos-vm-main-qemux86-64.qcow2";
        await sh(`chown root:root ${image} && chmod 600 ${image}`);
        try {
          const restarts = (await show("aos-unit.service", "NRestarts")).NRestarts;
          const since = (await sh("date +%s.%N")).trim();
          const r = await bed.exec(["systemctl", "start", "aos-unit"]);
          assert.notEqual(r.code, 0);
          // systemd decided when the start job failed: a restart it scheduled would show as
          // activating/auto-restart now, not failed/failed.
          const u = await show("aos-unit.service", "ActiveState", "SubState", "NRestarts");
          assert.equal(`${u.ActiveState}/${u.SubState}`, "failed/failed", "no restart scheduled");
          assert.equal(u.NRestarts, restarts, "no restart loop");
          const j = await sh(`journalctl -u aos-unit --no-pager --since @${since}`);
          assert.match(
            j,
            new RegExp(
              `QEMU \\(user aos-unit\\) cannot read the base image ${image}.*fix: chown aos-unit:aos-unit ${image}`,
            ),
          );
          assert.match(j, /status=2/);
          assert.doesNotMatch(j, /Started aos-node-/, "no node unit started");
          await noLeftovers();
        } finally {
          await sh(
            `chown aos-unit:aos-unit ${image} && chmod 640 ${image}; systemctl reset-failed aos-unit`,
          );
        }
      },
    );

    await t.step("SIGTERM during start-up stops quickly and leaves nothing", async () => {
      await sh("systemctl start --no-block aos-unit");
      await waitFor(
        "a node starting",
        async () => {
          const u = await show("aos-node-main.service", "ActiveState");
          return u.ActiveState === "active" ? true : undefined;
        },
        10_000,
        50,
      );
      const started = performance.now();
      await sh("systemctl stop aos-unit");
      const ms = Math.round(performance.now() - started);
      console.log(`stop during start-up: ${ms} ms`);
      assert.ok(ms < 8000, `stop took ${ms} ms:\n${await journal(60)}`);
      await noLeftovers();
    });

    await t.step(
      "a stop after the broker finished but before the manager began takes everything down",
      async () => {
        // A second ExecStartPre= that exits 0 on SIGTERM holds the unit in that window: the
        // stop then ends with SERVICE_RESULT=success and no manager ever ran.
        const dropIn = "/run/systemd/system/aos-unit.service.d/window.conf";
        await sh(
          `mkdir -p ${dropIn.replace(/\/[^/]+$/, "")} && printf '%s\\n' '[Service]' ` +
            `'ExecStartPre=+/bin/sh -c "trap \\"exit 0\\" TERM; sleep 60 & wait"' > ${dropIn} ` +
            "&& systemctl daemon-reload",
        );
        try {
          await sh("systemctl start --no-block aos-unit");
          await waitFor(
            "the broker done, the manager not started",
            async () => (await bed.exec(["pgrep", "-f", "^sleep 60$"])).code === 0 || undefined,
            30_000,
            100,
          );
          assert.equal(
            (await show("aos-node-main.service", "ActiveState")).ActiveState,
            "active",
          );
          await sh("systemctl stop aos-unit");
          await noLeftovers();
        } finally {
          await sh(
            `rm -f ${dropIn} && systemctl daemon-reload && systemctl reset-failed aos-unit`,
          )
            .catch(() => {});
        }
      },
    );

    await t.step(
      "a node failing at start: READY without it, STATUS names it, the rest works",
      async () => {
        await writeConfig(
          UNIT_CONFIG.replace(
            /(name: secondary\n\s+cpu: 1\n\s+mem: 512M)/,
            "$1\n      machine_type: no-such-machine",
          ),
        );
        await startUnit();
        const text = (await show("aos-unit.service", "StatusText")).StatusText ?? "";
        assert.match(text, /^Degraded: main=10\.200\.1\.100; secondary gave-up$/);
        assert.equal((await show("aos-unit.service", "ActiveState")).ActiveState, "active");
        assert.equal((await status()).code, 1, "status: not healthy");
        await sh("systemctl stop aos-unit");
        await noLeftovers();
        await writeConfig(UNIT_CONFIG);
      },
    );

    await t.step(
      "every node failing at start: systemctl start fails naming each node; nothing left",
      async () => {
        await writeConfig(
          UNIT_CONFIG.replace(/mem: 512M/g, "mem: 512M\n      machine_type: no-such-machine"),
        );
        const r = await bed.exec(["systemctl", "start", "aos-unit"]);
        assert.notEqual(r.code, 0, "systemctl start failed");
        // The whole attempt: systemd restarts the manager meanwhile, with lines of its own.
        const j = await journal(600);
        assert.match(
          j,
          /No node could start: main: exit-code \(exited 1\)[^;]*; secondary: exit-code \(exited 1\)/,
        );
        await sh("systemctl stop aos-unit; systemctl reset-failed");
        await noLeftovers();
        await writeConfig(UNIT_CONFIG);
      },
    );

    await t.step(
      "a bad config fails the service with exit 2, no restart loop, no leftovers",
      async () => {
        await writeConfig(
          "unit:\n  node_configs:\n    - name: main\n      cpu: lots\n      mem: 1G\n",
        );
        const restarts = (await show("aos-unit.service", "NRestarts")).NRestarts;
        const r = await bed.exec(["systemctl", "start", "aos-unit"]);
        assert.notEqual(r.code, 0);
        // systemd decided when the start job failed: a restart it scheduled would show as
        // activating/auto-restart now, not failed/failed.
        const u = await show("aos-unit.service", "ActiveState", "SubState", "NRestarts");
        assert.equal(`${u.ActiveState}/${u.SubState}`, "failed/failed", "no restart scheduled");
        assert.equal(u.NRestarts, restarts, "no restart loop");
        const j = await sh("journalctl -u aos-unit.service -n 30 --no-pager");
        assert.match(j, /unit_config\.yaml:4:\d+: cpu must be a positive integer, got "lots"/);
        assert.match(j, /status=2/);
        await noLeftovers();
        await sh("systemctl reset-failed aos-unit.service");
        await writeConfig(UNIT_CONFIG);
      },
    );
  },
};
