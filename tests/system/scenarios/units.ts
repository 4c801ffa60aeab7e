/**
 * Tier-3 scenario "units": aos-unit@NAME beside the default unit, all on the same subnet.
 * Each named unit has a network namespace of its own, seen from the host at a mapped
 * subnet; each owns its node units, sidecar, bridge, taps, tables and names (its record);
 * what one unit's crash, stop or cleanup does never reaches another's.
 */

import assert from "node:assert/strict";
import { waitFor } from "../../lib/proc.ts";
import { SerialConsole } from "../../lib/serial.ts";
import { ssh } from "../../lib/ssh.ts";
import { INTERNET_IP } from "../../lib/topology.ts";
import { BRIDGE, MAIN_MAC, type Scenario, type SystemBed, UNIT_CONFIG } from "../system_bed.ts";

/**
 * Unit NAME's configuration on subnet 10.200.N.0/24 (N = 1: the default unit's): the
 * default unit's nodes, or its main alone (`mainOnly`, where a second node would only cost
 * boot time).
 */
async function configureUnit(
  c: SystemBed,
  name: string,
  subnet: number,
  mainOnly = false,
  forward?: number,
): Promise<void> {
  const dir = `/etc/aos-unit/units/${name}`;
  await c.sh(`mkdir -p ${dir}`);
  const config = UNIT_CONFIG.replace(
    "ip: 10.200.1.100",
    `ip: 10.200.${subnet}.100${forward ? `\n      forward: [{ host: ${forward}, port: 22 }]` : ""}`,
  );
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
  // A named unit's bridge, taps and own tables are in its namespace; its link's table on the host.
  const ns = name === undefined ? "" : `ip netns exec aos-unit-${name} `;
  const links =
    (await c.sh(`${ns}ip -br link show master ${bridge}; ${ns}ip -br link show ${bridge}`))
      .split("\n").map((l) => l.split(/\s+/).slice(0, 2).join(" ")).sort().join("\n");
  const table = name === undefined ? "aos_unit" : `aos_unit_${name.replaceAll("-", "_")}`;
  const tables = await c.sh(
    `${ns}nft -s list table inet ${table}; ${ns}nft -s list table bridge ${table}` +
      (name === undefined ? "" : `; nft -s list table inet ${table}`),
  );
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
      "the default unit and aos-unit@lab1 (the same nodes, the same subnet and addresses) start at once and are READY",
      async () => {
        await configureUnit(c, "lab1", 1);
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
        const iso = (lab1 as unknown as { isolation: { namespace: string; mapped: string } })
          .isolation;
        assert.equal(iso.namespace, "aos-unit-lab1");
        assert.match(iso.mapped, /^172\.3[01]\.\d+\.0\/24$/);
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
        // The same addresses inside; the host sees lab1's at their place in its mapped subnet.
        assert.match(await sh("getent hosts main.aos-unit"), /^10\.200\.1\.100\s/);
        assert.match(await sh("getent hosts main.lab1.aos-unit"), /^172\.3[01]\.\d+\.100\s/);
        assert.match(await sh("getent hosts secondary.lab1.aos-unit"), /^172\.3[01]\.\d+\.\d+\s/);
        const inside = JSON.parse(await sh("aos-unit status --unit lab1 --json")) as {
          nodes: { address: string }[];
        };
        assert.equal(inside.nodes[0]!.address, "10.200.1.100");
        assert.match(await answers(c, "main.aos-unit"), new RegExp(MAIN_MAC));
        assert.doesNotMatch(await answers(c, "main.lab1.aos-unit"), new RegExp(MAIN_MAC));
      },
    );

    await t.step(
      "a memory snapshot of lab1, restored with --unit: lab1's guests resume without a boot, the default unit's run on as they were",
      async () => {
        const boots = () =>
          c.sh("cat /var/log/aos-units/lab1/*-serial.log | grep -c 'AOSTEST boot' || true");
        const before = await boots();
        const others = await Promise.all(nodeUnits().map((u) => c.show(u, "InvocationID")));
        const save = await c.bed.exec([
          "aos-unit",
          "snapshot",
          "save",
          "--memory",
          "--unit",
          "lab1",
          "live",
        ]);
        assert.equal(save.code, 0, save.stderr);
        const r = await c.bed.exec(["aos-unit", "snapshot", "restore", "--unit", "lab1", "live"]);
        assert.equal(r.code, 0, r.stderr + r.stdout);
        assert.match(r.stdout, /the guests resumed, no boot/);
        assert.equal(await boots(), before, "no guest of lab1 booted");
        assert.deepEqual(
          await Promise.all(nodeUnits().map((u) => c.show(u, "InvocationID"))),
          others,
          "the default unit's nodes are the same",
        );
        await answers(c, "main.lab1.aos-unit");
        // lab1's request and record are its own, and gone.
        assert.equal((await c.sh("ls /run/aos-unit-root | grep -c resume || true")).trim(), "0");
        assert.equal(
          (await c.bed.exec(["aos-unit", "snapshot", "delete", "--unit", "lab1", "live"])).code,
          0,
        );
      },
    );

    await t.step(
      "attack as lab1's manager (its uid, groups and mount namespace): no node or sidecar of the default unit is stopped, no other manager signalled, no other unit's guest socket reached; and the reverse",
      async () => {
        const manager = async (unit: string) => {
          const pid = (await show(unit, "MainPID")).MainPID!;
          const credentials = await c.credentialsOf(pid);
          return {
            pid,
            credentials,
            run: (script: string) =>
              bed.exec(["nsenter", "-t", pid, "-m", "setpriv", ...credentials, "sh", "-c", script]),
          };
        };
        const lab1 = await manager("aos-unit@lab1.service");
        const main = await manager("aos-unit.service");
        assert.match(
          lab1.credentials[0]!,
          new RegExp(`=${(await sh("id -u aos-unit-lab1")).trim()}$`),
        );
        assert.match(main.credentials[0]!, new RegExp(`=${(await sh("id -u aos-unit")).trim()}$`));
        const call = (method: string, unit: string) =>
          `busctl call org.freedesktop.systemd1 /org/freedesktop/systemd1 ` +
          `org.freedesktop.systemd1.Manager ${method} ${
            method === "ResetFailedUnit" ? "s" : "ss"
          } ${unit}${method === "ResetFailedUnit" ? "" : " replace"}`;
        // Its own units: granted (a reset of an active unit changes nothing).
        for (
          const [m, unit] of [[lab1, "aos-node-lab1_main.service"], [
            main,
            "aos-node-main.service",
          ]] as const
        ) {
          const r = await m.run(call("ResetFailedUnit", unit));
          assert.equal(r.code, 0, `${unit}: ${r.stderr}`);
        }
        // Another unit's: refused, whatever the verb.
        for (
          const [m, unit] of [
            [lab1, "aos-node-main.service"],
            [lab1, "aos-unit-dnsmasq.service"],
            [main, "aos-node-lab1_main.service"],
            [main, "aos-unit-dnsmasq@lab1.service"],
          ] as const
        ) {
          for (const method of ["StopUnit", "RestartUnit", "ResetFailedUnit"]) {
            const r = await m.run(call(method, unit));
            assert.notEqual(r.code, 0, `${method} ${unit} was granted`);
            assert.match(r.stderr, /denied|authenticat/i, `${method} ${unit}: ${r.stderr}`);
          }
        }
        // No signal to the other manager, and no path to the other unit's guest sockets.
        assert.notEqual((await lab1.run(`kill -0 ${main.pid}`)).code, 0);
        assert.notEqual((await main.run(`kill -0 ${lab1.pid}`)).code, 0);
        for (const path of ["/run/aos-unit/nodes/main/qmp", "/var/lib/aos-unit/nodes/main"]) {
          assert.notEqual(
            (await lab1.run(`test -e ${path}`)).code,
            0,
            `lab1's manager sees ${path}`,
          );
        }
        for (const path of ["/run/aos-units/lab1", "/var/lib/aos-units/lab1"]) {
          assert.notEqual(
            (await main.run(`test -e ${path}`)).code,
            0,
            `the default manager sees ${path}`,
          );
        }
        // Every node of both still runs.
        for (const u of [...nodeUnits(), ...nodeUnits("lab1")]) {
          assert.equal((await show(u, "ActiveState")).ActiveState, "active", u);
        }
      },
    );

    await t.step(
      "a default-route change: the default unit's and lab1's guests reach the internet through the new uplink, nothing restarts",
      async () => {
        const before = await Promise.all(
          [service(), service("lab1")].map((u) => show(u, "InvocationID")),
        );
        const guests = [
          await SerialConsole.connect(bed.path("/run/aos-unit/nodes/main/serial")),
          await SerialConsole.connect(bed.path("/run/aos-units/lab1/nodes/main/serial")),
        ];
        try {
          for (const [index, uplink] of [[1, "uplink2"], [0, "uplink1"]] as const) {
            await c.topo.setDefault(index);
            for (const [i, guest] of guests.entries()) {
              await waitFor(
                `${i === 0 ? "the default unit's" : "lab1's"} main through ${uplink}`,
                async () => (await c.http(guest)) === uplink ? true : undefined,
                15_000,
                200,
              );
            }
            for (const run of ["/run/aos-unit", "/run/aos-units/lab1"]) {
              await waitFor(
                `${run}/uplinks: ${uplink}`,
                async () =>
                  (await bed.exec(["cat", `${run}/uplinks`])).stdout.trim() === uplink
                    ? true
                    : undefined,
                5000,
              );
            }
          }
        } finally {
          for (const guest of guests) guest.close();
          await c.topo.setDefault(0);
        }
        assert.deepEqual(
          await Promise.all([service(), service("lab1")].map((u) => show(u, "InvocationID"))),
          before,
        );
      },
    );

    await t.step(
      "lab1's secondary over its start limit: its final handler (the aos-unit user) leaves its record in lab1's own log, through the node's spool",
      async () => {
        const node = "aos-node-lab1_secondary.service";
        await c.killPastStartLimit(node);
        assert.equal((await show(node, "ActiveState")).ActiveState, "failed");
        const handler = "aos-unit-vm-failed@lab1_secondary.service";
        await waitFor(
          "the final handler done",
          async () => {
            const u = await show(handler, "ActiveState", "Result");
            return u.ActiveState === "inactive" && u.Result !== undefined ? u : undefined;
          },
          20_000,
          200,
        );
        assert.equal((await show(handler, "Result")).Result, "success");
        // The manager moves the spooled records into lab1's log (every pass).
        const records = await waitFor(
          "lab1's records",
          async () => {
            const lines = (await sh("cat /var/log/aos-units/lab1/vm-failures.log")).trim()
              .split("\n").filter(Boolean).map((l) =>
                JSON.parse(l) as { node: string; unit: string }
              );
            return lines.length >= 2 ? lines : undefined;
          },
          20_000,
          500,
        );
        assert.ok(
          records.every((r) => r.node === "secondary" && r.unit === node),
          JSON.stringify(records),
        );
        assert.equal(
          (await sh("cat /var/log/aos-unit/vm-failures.log")).trim(),
          "",
          "none in the default unit's",
        );
        await sh("systemctl restart aos-unit@lab1");
        await unitRunning(c, "lab1");
      },
    );

    await t.step(
      "two more units on the same subnet, started at once, both run, each on a host block of its own",
      async () => {
        await configureUnit(c, "race1", 1, true);
        await configureUnit(c, "race2", 1, true);
        await sh("systemctl start aos-unit@race1 aos-unit@race2");
        await Promise.all([unitRunning(c, "race1", true), unitRunning(c, "race2", true)]);
        const isolation = await Promise.all(
          ["race1", "race2", "lab1"].map(async (u) =>
            (JSON.parse(await sh(`aos-unit status --unit ${u} --json`)) as {
              isolation: { block: string; mapped: string };
            }).isolation
          ),
        );
        assert.equal(new Set(isolation.map((i) => i.block)).size, 3, JSON.stringify(isolation));
        // A guest of race1 reaches the internet, and nothing of race2: neither its main nor
        // its DNS at their mapped addresses.
        const race2 = isolation[1]!.mapped.replace(/\.0\/24$/, "");
        const guest = await SerialConsole.connect(
          bed.path("/run/aos-units/race1/nodes/main/serial"),
        );
        try {
          assert.match((await c.http(guest)) ?? "", /^uplink\d$/);
          assert.equal(await c.guestOk(guest, `ping -c 1 -W 1 ${INTERNET_IP}`), true);
          for (const other of [`${race2}.100`, `${race2}.1`]) {
            assert.equal(await c.guestOk(guest, `ping -c 1 -W 1 ${other}`), false, other);
          }
        } finally {
          guest.close();
        }
        await sh("systemctl stop aos-unit@race1 aos-unit@race2");
        await sh("rm -r /etc/aos-unit/units/race1 /etc/aos-unit/units/race2");
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
        assert.doesNotMatch(await sh("ip netns list"), /aos-unit-lab1/);
        assert.match(await answers(c, "main.aos-unit"), new RegExp(MAIN_MAC));
      },
    );

    await t.step(
      "and the reverse: the default unit's kill, stop and cleanup leave lab1 as it was; lab1's host block is never the service user's choice",
      async () => {
        // Attack as lab1's service user: a record in lab1's runtime directory (its own to
        // write) naming a block outside the pool, for root to route at the next start.
        const forged = await bed.exec([
          "sh",
          "-c",
          "echo HOST_BLOCK=1.1.1.0/23 > /run/aos-units/lab1/network.conf",
        ], {
          user: "aos-unit-lab1",
        });
        assert.equal(forged.code, 0, forged.stderr);
        await sh("systemctl start aos-unit@lab1");
        await unitRunning(c, "lab1");
        const block = (JSON.parse(await sh("aos-unit status --unit lab1 --json")) as {
          isolation: { block: string };
        }).isolation.block;
        assert.match(block, /^172\.3[01]\./);
        assert.equal((await sh("ip route show 1.1.1.0/24; ip route show 1.1.1.0/23")).trim(), "");
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
        // lab runs with a forward; lab-1 then declares its host port: refused by validate
        // at both lines, and at start (exit 2) naming lab. With lab's configuration gone
        // (lab still running), its table is what refuses lab-1.
        await configureUnit(c, "lab", 1, true, 2203);
        await sh("systemctl start aos-unit@lab");
        await unitRunning(c, "lab", true);
        await configureUnit(c, "lab-1", 1, true, 2203);
        const clash = await bed.exec(["aos-unit", "validate", "--unit", "lab-1"]);
        assert.equal(clash.code, 2, clash.stderr);
        for (const [unit, other] of [["lab-1", "lab"], ["lab", "lab-1"]]) {
          assert.match(
            clash.stderr,
            new RegExp(
              `units/${unit}/unit_config\\.yaml:8:\\d+: .*tcp/2203 is also forwarded by unit ${other} `,
            ),
          );
        }
        const refused = async (why: RegExp) => {
          const r = await bed.exec(["systemctl", "start", "aos-unit@lab-1"]);
          assert.notEqual(r.code, 0);
          assert.match(await sh("journalctl -u aos-unit@lab-1 --no-pager -o cat"), why);
          assert.match((await show("aos-unit@lab-1.service", "Result")).Result ?? "", /exit-code/);
          await sh("systemctl reset-failed aos-unit@lab-1");
        };
        await refused(
          /units\/lab-1\/unit_config\.yaml:8:\d+: host port tcp\/2203 is also forwarded by unit lab \(to "main", \/etc\/aos-unit\/units\/lab\/unit_config\.yaml:8:\d+\)/,
        );
        await sh("mv /etc/aos-unit/units/lab /root/lab-config");
        await refused(
          /units\/lab-1\/unit_config\.yaml:8:\d+: host port tcp\/2203 is taken: running unit lab forwards it \(to main:22\)/,
        );
        await sh("mv /root/lab-config /etc/aos-unit/units/lab");
        await configureUnit(c, "lab-1", 1, true, 2204);
        await sh("systemctl start aos-unit@lab aos-unit@lab-1");
        await Promise.all([unitRunning(c, "lab", true), unitRunning(c, "lab-1", true)]);
        assert.equal(
          (await show("aos-node-lab-1_main.service", "Slice")).Slice,
          "aos-unit-lab\\x2d1.slice",
        );
        const before = await footprint(c, "lab-1");
        await sh("systemctl stop aos-unit@lab");
        assert.deepEqual(await footprint(c, "lab-1"), before);
        assert.match(await sh("getent hosts main.lab-1.aos-unit"), /^172\.3[01]\.\d+\.100\s/);
        const list = JSON.parse(await sh("aos-unit list --json")) as {
          name: string;
          forwards: { node: string; host: number; port: number }[];
        }[];
        assert.deepEqual(
          list.filter((u) => u.name.startsWith("lab-") || u.name === "lab").map((u) => [
            u.name,
            u.forwards.map((f) => `${f.host}->${f.node}:${f.port}`),
          ]),
          [["lab", ["2203->main:22"]], ["lab-1", ["2204->main:22"]]],
        );
        await sh("systemctl stop aos-unit@lab-1");
      },
    );

    await t.step("every unit stopped, nothing of any is left", async () => {
      await sh("systemctl stop aos-unit aos-unit@lab1 aos-unit@lab aos-unit@lab-1");
      await noLeftovers();
    });
  },
};
