/** Tier-3 scenario "arm": aarch64 nodes, without and with the arm emulator. */

import assert from "node:assert/strict";
import { type Scenario, UNIT_CONFIG } from "../system_bed.ts";

export const arm: Scenario = {
  name: "arm",
  summary: "aarch64 nodes, without and with the arm emulator",
  start: "installed",
  async run(t, c) {
    const {
      bed,
      armImages,
      sh,
      show,
      status,
      writeConfig,
      doctorJson,
      startUnit,
      serial,
      http,
      noLeftovers,
    } = c;
    await t.step(
      "an aarch64 node without the arm emulator: exit 2 naming the package to install",
      async () => {
        await sh(
          "cp /var/lib/aos-unit/aos-vm-secondary-qemux86-64.qcow2 /var/lib/aos-unit/aos-vm-arm-arm64.qcow2",
        );
        await writeConfig(UNIT_CONFIG + "    - { name: arm, cpu: 1, mem: 512M, arch: arm64 }\n");
        const since = (await sh("date +%s.%N")).trim();
        const r = await bed.exec(["systemctl", "start", "aos-unit"]);
        assert.notEqual(r.code, 0);
        const j = await sh(`journalctl --no-pager --since @${since}`);
        assert.match(
          j,
          /No QEMU for aarch64 guests on this host: install qemu-system-arm \(node "arm"\)/,
        );
        assert.match(j, /install qemu-efi-aarch64/);
        assert.match(j, /status=2/);
        const c = (await doctorJson()).checks.find((x) => x.id === "emulator")!;
        assert.equal(c.status, "fail");
        assert.equal(c.fix, "apt-get install qemu-system-arm");
        await sh("systemctl reset-failed aos-unit; rm /var/lib/aos-unit/aos-vm-arm-arm64.qcow2");
        await writeConfig(UNIT_CONFIG);
        await noLeftovers();
      },
    );

    await t.step(
      "a mixed unit: an x86_64 main and an aarch64 secondary, once the arm emulator is installed",
      async () => {
        const r = await bed.exec([
          "apt-get",
          "install",
          "-y",
          "qemu-system-arm",
          "qemu-efi-aarch64",
        ]);
        assert.equal(r.code, 0, r.stderr);
        await bed.cpIn(`${await armImages()}/aos-vm-arm-arm64-uefi.qcow2`, "/var/lib/aos-unit/");
        await sh("chown aos-unit:aos-unit /var/lib/aos-unit/*.qcow2");
        await writeConfig(`unit:
  node_configs:
    - { name: main, cpu: 1, mem: 512M, ip: 10.200.1.100 }
    - { name: arm, cpu: 1, mem: 512M, arch: arm64 }
`);
        const ms = await startUnit();
        console.log(`mixed unit (x86_64 + aarch64) start -> READY: ${ms} ms`);
        const { code, status: s } = await status();
        assert.equal(code, 0, JSON.stringify(s));
        const arm = s.nodes.find((n) => n.name === "arm")!;
        assert.match(arm.address ?? "", /^10\.200\.1\.\d+$/);
        assert.match(
          (await show("aos-node-arm.service", "ExecStart")).ExecStart ?? "",
          /qemu-system-aarch64 .*-machine virt/,
        );
        assert.match(
          await sh("getent hosts arm.aos-unit"),
          new RegExp(`^${arm.address!.replaceAll(".", "\\.")}\\s`),
        );
        const c = await serial("arm");
        assert.equal(await http(c), "uplink1", "the aarch64 guest reaches the internet host");
        c.close();
        await sh("systemctl stop aos-unit");
        assert.match(await sh("tail -n 5 /var/log/aos-unit/arm-serial.log"), /AOSTEST poweroff/);
        await noLeftovers();
        await writeConfig(UNIT_CONFIG);
      },
    );
  },
};
