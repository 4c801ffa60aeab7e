/**
 * Tier-3 scenario "units": aos-unit@NAME beside the default unit. Each unit owns its node
 * units, sidecar, bridge, taps, tables and names (its record); what one unit's crash, stop
 * or cleanup does never reaches another's.
 */

import assert from "node:assert/strict";
import { waitFor } from "../../lib/proc.ts";
import { ssh } from "../../lib/ssh.ts";
import { BRIDGE, MAIN_MAC, type Scenario, type SystemBed, UNIT_CONFIG } from "../system_bed.ts";

/**
 * Unit NAME's configuration on subnet 10.200.N.0/24: the default unit's nodes, or its main
 * alone (`mainOnly`, where a second node would only cost boot time).
 */
async function configureUnit(
  c: SystemBed,
  name: string,
  subnet: number,
  mainOnly = false,
): Promise<void> {
  const dir = `/etc/aos-unit/units/${name}`;
  await c.sh(`mkdir -p ${dir}`);
  const config = UNIT_CONFIG.replace("10.200.1.100", `10.200.${subnet}.100`);
  await c.bed.exec(["sh", "-c", `cat > ${dir}/unit_config.yaml`], {
    stdin: mainOnly ? config.replace(/\n {4}- name: secondary\n[\s\S]*$/, "\n") : config,
  });
  await c.bed.exec(["sh", "-c", `cat > ${dir}/runtime.conf`], {
    stdin: `DHCP_CIDR="10.200.${subnet}.0/24"\n`,
  });
}

/** The manager of unit `name` (undefined: the default unit). */
function service(name?: string): string {
  return name === undefined ? "aos-unit.service" : `aos-unit@${name}.service`;
}

/** READY: the unit's manager active and every node (main, or both) running with an address. */
function unitRunning(c: SystemBed, name?: string, mainOnly = false, timeoutMs = 90_000) {
  const status = mainOnly ? /^Running: main=\S+$/ : /^Running: main=\S+ secondary=\S+$/;
  return waitFor(
    `${service(name)} running with every node`,
    async () => {
      const u = await c.show(service(name), "ActiveState", "SubState", "StatusText");
      return u.ActiveState === "active" && u.SubState === "running" &&
          status.test(u.StatusText ?? "")
        ? u
        : undefined;
    },
    timeoutMs,
    200,
  );
}

/** The node units of unit `name`, as systemd names them. */
function nodeUnits(name?: string): string[] {
  const prefix = name === undefined ? "aos-node-" : `aos-node-${name}_`;
  return [`${prefix}main.service`, `${prefix}secondary.service`];
}

/**
 * What a unit has on the host, to compare before and after another unit's fault: its node
 * units and sidecar (same InvocationID: never restarted), its bridge and taps, its tables
 * (without counters) and its answers.
 */
async function footprint(c: SystemBed, name?: string) {
  const sidecar = name === undefined
    ? "aos-unit-dnsmasq.service"
    : `aos-unit-dnsmasq@${name}.service`;
  const units = Object.fromEntries(
    await Promise.all(
      [...nodeUnits(name), sidecar].map(async (u) =>
        [u, await c.show(u, "ActiveState", "InvocationID")] as const
      ),
    ),
  );
  const status = JSON.parse(
    (await c.bed.exec(["aos-unit", "status", "--json", ...(name ? ["--unit", name] : [])])).stdout,
  ) as { bridge: { name: string }; nodes: { name: string; address: string }[] };
  const bridge = status.bridge.name;
  const links = (await c.sh(`ip -br link show master ${bridge}; ip -br link show ${bridge}`))
    .split("\n").map((l) => l.split(/\s+/).slice(0, 2).join(" ")).sort().join("\n");
  const table = name === undefined ? "aos_unit" : `aos_unit_${name.replaceAll("-", "_")}`;
  const tables = await c.sh(`nft -s list table inet ${table}; nft -s list table bridge ${table}`);
  return { units, bridge, links, tables, addresses: status.nodes.map((n) => n.address) };
}

/** The node answers by name from the host: ssh runs, and it is that unit's node (its MAC). */
async function answers(c: SystemBed, host: string): Promise<string> {
  const r = await ssh(c.bed, host, "echo AOSSSH $(hostname); cat /sys/class/net/*/address");
  assert.equal(r.code, 0, `ssh root@${host}: ${r.stderr}`);
  assert.match(r.stdout, /^AOSSSH main$/m);
  return r.stdout;
}

export const units: Scenario = {
  name: "units",
  summary:
    "aos-unit@NAME beside the default unit: names, list, and one unit's kill, stop and cleanup leave the other as it was",
  start: "installed",
  async run(t, c) {
    const { bed, sh, show, diagnosis, noLeftovers } = c;

    await t.step(
      "the default unit and aos-unit@lab1 (the same nodes, lab1 on its own subnet) start at once and are READY",
      async () => {
        await configureUnit(c, "lab1", 2);
        const r = await bed.exec(["systemctl", "start", "aos-unit", "aos-unit@lab1"]);
        assert.equal(r.code, 0, `${r.stderr}\n${await diagnosis()}`);
        await Promise.all([unitRunning(c), unitRunning(c, "lab1")]);
        const list = JSON.parse(await sh("aos-unit list --json")) as {
          name: string;
          state: string;
          service: string;
        }[];
        assert.deepEqual(list.map((u) => [u.name, u.service, u.state]), [
          ["default", "aos-unit.service", "active/running"],
          ["lab1", "aos-unit@lab1.service", "active/running"],
        ]);
        const lab1 = JSON.parse(await sh("aos-unit status --unit lab1 --json")) as {
          healthy: boolean;
          manager: string;
          nodes: { name: string; unit: string; hostName: string; serialLog: string }[];
        };
        assert.equal(lab1.healthy, true);
        assert.equal(lab1.manager, "aos-unit@lab1.service");
        assert.deepEqual(lab1.nodes.map((n) => [n.unit, n.hostName, n.serialLog]), [
          [
            "aos-node-lab1_main.service",
            "main.lab1.aos-unit",
            "/var/log/aos-units/lab1/main-serial.log",
          ],
          [
            "aos-node-lab1_secondary.service",
            "secondary.lab1.aos-unit",
            "/var/log/aos-units/lab1/secondary-serial.log",
          ],
        ]);
        assert.equal(
          (await show("aos-node-lab1_main.service", "Slice")).Slice,
          "aos-unit-lab1.slice",
        );
        const all = await sh("systemctl list-units --plain --no-legend 'aos-node-*'");
        for (const u of [...nodeUnits(), ...nodeUnits("lab1")]) assert.match(all, new RegExp(u));
      },
    );

    await t.step(
      "main.aos-unit and main.lab1.aos-unit each answer with their own node",
      async () => {
        assert.match(await sh("getent hosts main.aos-unit"), /^10\.200\.1\.100\s/);
        assert.match(await sh("getent hosts main.lab1.aos-unit"), /^10\.200\.2\.100\s/);
        assert.match(await sh("getent hosts secondary.lab1.aos-unit"), /^10\.200\.2\.\d+\s/);
        assert.match(await answers(c, "main.aos-unit"), new RegExp(MAIN_MAC));
        assert.doesNotMatch(await answers(c, "main.lab1.aos-unit"), new RegExp(MAIN_MAC));
      },
    );

    await t.step(
      "a unit on a running unit's subnet does not start (exit 2); of two started at once, one runs",
      async () => {
        await configureUnit(c, "clash", 2);
        const r = await bed.exec(["systemctl", "start", "aos-unit@clash"]);
        assert.notEqual(r.code, 0);
        const log = await sh("journalctl -u aos-unit@clash --no-pager -o cat");
        // Both units' files: this one's at DHCP_CIDR, the one holding the subnet by name.
        assert.match(
          log,
          /units\/clash\/runtime\.conf:1:\d+: DHCP_CIDR 10\.200\.2\.0\/24 overlaps the host's .*aosbr\S+ \(unit lab1, \/etc\/aos-unit\/units\/lab1\/runtime\.conf\)/,
        );
        assert.match(
          (await show("aos-unit@clash.service", "ExecMainStatus", "Result")).Result ?? "",
          /exit-code/,
        );
        assert.equal(
          (await sh("systemctl list-units --plain --no-legend --all 'aos-node-clash_*'")).trim(),
          "",
        );
        await sh("systemctl reset-failed aos-unit@clash; rm -r /etc/aos-unit/units/clash");
        // Two brokers at once on one free subnet: the host-wide lock lets one take it. Each
        // is settled once it failed (the loser's manager reports the refusal and exits 2) or
        // its manager follows its nodes (a STATUS=, which the loser never sends).
        await configureUnit(c, "race1", 5, true);
        await configureUnit(c, "race2", 5, true);
        await sh("systemctl start --no-block aos-unit@race1 aos-unit@race2");
        const settled = await waitFor(
          "both racing brokers done",
          async () => {
            const s = await Promise.all(
              ["race1", "race2"].map((u) => show(service(u), "ActiveState", "StatusText")),
            );
            return s.every((u) => u.ActiveState === "failed" || (u.StatusText ?? "") !== "")
              ? s
              : undefined;
          },
          60_000,
          100,
        );
        assert.equal(
          settled.filter((u) => u.ActiveState === "failed").length,
          1,
          JSON.stringify(settled),
        );
        await sh("systemctl stop aos-unit@race1 aos-unit@race2");
        await sh(
          "systemctl reset-failed 'aos-unit@*'; rm -r /etc/aos-unit/units/race1 /etc/aos-unit/units/race2",
        );
      },
    );

    await t.step(
      "lab1's kill, stop and cleanup leave the default unit's nodes, links, tables and answers as they were",
      async () => {
        const before = await footprint(c);
        assert.equal(before.bridge, BRIDGE);
        await sh("systemctl kill -s KILL --kill-whom=main aos-unit@lab1.service");
        await unitRunning(c, "lab1");
        await sh("systemctl stop aos-unit@lab1");
        assert.equal(
          (await sh("systemctl list-units --plain --no-legend --all 'aos-node-lab1_*'")).trim(),
          "",
        );
        await sh("aos-unit cleanup --unit lab1");
        assert.deepEqual(await footprint(c), before);
        assert.doesNotMatch(await sh("nft list tables"), /aos_unit_lab1/);
        assert.match(await answers(c, "main.aos-unit"), new RegExp(MAIN_MAC));
      },
    );

    await t.step(
      "and the reverse: the default unit's kill, stop and cleanup leave lab1 as it was",
      async () => {
        await sh("systemctl start aos-unit@lab1");
        await unitRunning(c, "lab1");
        const before = await footprint(c, "lab1");
        await sh("systemctl kill -s KILL --kill-whom=main aos-unit.service");
        await unitRunning(c);
        await sh("systemctl stop aos-unit");
        await sh("aos-unit cleanup");
        assert.deepEqual(await footprint(c, "lab1"), before);
        assert.doesNotMatch(await sh("ip -br link"), new RegExp(BRIDGE));
        assert.doesNotMatch(await answers(c, "main.lab1.aos-unit"), new RegExp(MAIN_MAC));
        await sh("systemctl stop aos-unit@lab1");
      },
    );

    await t.step(
      "units lab and lab-1 run side by side; stopping lab leaves lab-1 running",
      async () => {
        await configureUnit(c, "lab", 3, true);
        await configureUnit(c, "lab-1", 4, true);
        await sh("systemctl start aos-unit@lab aos-unit@lab-1");
        await Promise.all([unitRunning(c, "lab", true), unitRunning(c, "lab-1", true)]);
        assert.equal(
          (await show("aos-node-lab-1_main.service", "Slice")).Slice,
          "aos-unit-lab\\x2d1.slice",
        );
        const before = await footprint(c, "lab-1");
        await sh("systemctl stop aos-unit@lab");
        assert.deepEqual(await footprint(c, "lab-1"), before);
        assert.match(await sh("getent hosts main.lab-1.aos-unit"), /^10\.200\.4\.100\s/);
        await sh("systemctl stop aos-unit@lab-1");
      },
    );

    await t.step("every unit stopped, nothing of any is left", async () => {
      await sh("systemctl stop aos-unit aos-unit@lab1 aos-unit@lab aos-unit@lab-1");
      await noLeftovers();
    });
  },
};
