/** Tier-3 scenario "stock": the stock-like images with the shipped configuration. */

import assert from "node:assert/strict";
import { run, waitFor } from "../../lib/proc.ts";
import { SerialConsole } from "../../lib/serial.ts";
import { ssh } from "../../lib/ssh.ts";
import { NODES, type Scenario, type SystemBed } from "../system_bed.ts";

/**
 * The silent-node step's READY_TIMEOUT_SEC: main (4 vCPUs, TCG) answers in about 15 s on a
 * quiet machine, and in about 25 s with the other release's bed booting guests beside it.
 */
const SILENT_READY_SEC = 45;
/**
 * How long after the degraded READY the step watches for a boot or restart that must not
 * come (a restart would come within RestartSec=2 s, a reboot loop within seconds).
 */
const SILENT_WATCH_SEC = 10;

export const stock: Scenario = {
  name: "stock",
  summary: "the stock-like images with the shipped configuration",
  start: "stock",
  async run(t, c) {
    const {
      bed,
      sh,
      show,
      status,
      failures,
      boots,
      writeRuntime,
      startUnit,
      serial,
      http,
      noLeftovers,
      fetchFromHost,
      stockRunning,
    } = c;
    await t.step(
      "the Quick Start with stock-like images and the shipped configuration: READY, 8089 from the host, main from the secondary, the internet from both",
      async () => {
        const before = await boots();
        const ms = await startUnit();
        console.log(`stock images, shipped configuration: systemctl start -> READY ${ms} ms`);
        const { code, status: s } = await status();
        assert.equal(code, 0, JSON.stringify(s));
        assert.equal(s.nodes.find((n) => n.name === "main")?.reserved, "10.0.0.100");
        assert.match(
          s.nodes.find((n) => n.name === "secondary")?.address ?? "",
          /^10\.0\.0\.(1[3-9][0-9]|2[0-5][0-9]|12[89])$/,
        );
        assert.match(await sh("getent hosts main.aos-unit"), /^10\.0\.0\.100\s+main\.aos-unit/);
        assert.equal(await fetchFromHost("main.aos-unit", 8089), "aos-main name=main");
        await waitFor(
          "the secondary reaching main:8089",
          async () =>
            (await bed.exec([
                "grep",
                "-c",
                "AOSTEST main-reached ok ip=10.0.0.100",
                "/var/log/aos-unit/secondary-serial.log",
              ]))
                .stdout.trim() !== "0"
              ? true
              : undefined,
          30_000,
          500,
        );
        for (const name of NODES) {
          const c = await serial(name);
          assert.equal(await http(c), "uplink1", `${name} reaches the internet host`);
          c.close();
        }
        const after = await boots();
        assert.deepEqual(
          NODES.map((n) => after[n]! - before[n]!),
          [1, 1],
          "each guest booted once",
        );
      },
    );

    await t.step(
      "aos-unit@lab1 and aos-unit@lab2 with the shipped configuration beside the default unit: all READY, each main answers 8089 by name with its own node, each secondary reaches its own main, every guest the internet, a forward from the uplink lab2's main and nothing else; lab1's kill and stop leave the others as they were",
      async () => {
        await stockUnits(c);
      },
    );

    await t.step(
      "a stock guest rebooting itself (an update) is no crash: no record, no restart, the same unit",
      async () => {
        await sh(": > /var/log/aos-unit/vm-failures.log");
        const before = await show(
          "aos-node-secondary.service",
          "NRestarts",
          "InvocationID",
          "MainPID",
        );
        const c = await serial("secondary");
        await c.send("aos-probe reboot");
        await c.expect(/^AOSTEST boot name=secondary count=2$/, 60_000, "the second boot");
        await c.expect(/^AOSTEST main-reached ok /, 60_000, "main reached again");
        c.close();
        assert.deepEqual(
          await show("aos-node-secondary.service", "NRestarts", "InvocationID", "MainPID"),
          before,
          "the same QEMU, no restart",
        );
        assert.deepEqual(await failures(), [], "no failure record");
        await stockRunning();
      },
    );

    await t.step(
      `a node silent on port 22, READY_TIMEOUT_SEC=${SILENT_READY_SEC}: READY degraded, no boot but the first for ${SILENT_WATCH_SEC} s more`,
      async () => {
        await sh("systemctl stop aos-unit");
        await writeRuntime(
          `DHCP_CIDR="10.0.0.0/24"\nREADY_TIMEOUT_SEC="${SILENT_READY_SEC}"\n`,
        );
        // The host's probes to the secondary (a pool address) go unanswered: no RST, nothing.
        await sh(
          "nft add table inet aostest && nft add chain inet aostest out '{ type filter hook output priority 0; }' && " +
            "nft add rule inet aostest out ip daddr 10.0.0.128/25 tcp dport 22 drop",
        );
        try {
          const before = await boots();
          const started = performance.now();
          await startUnit();
          const readyMs = Math.round(performance.now() - started);
          console.log(
            `one node silent: READY after ${readyMs} ms (READY_TIMEOUT_SEC=${SILENT_READY_SEC})`,
          );
          const u = await show("aos-unit.service", "ActiveState", "StatusText", "NRestarts");
          assert.equal(u.ActiveState, "active");
          assert.match(
            u.StatusText!,
            /^Degraded: main=10\.0\.0\.100; secondary silent at 10\.0\.0\.\d+$/,
          );
          // The event waited for is one that must not come: a reboot or a manager restart
          // set off by the degraded READY. Either would follow it within seconds.
          await new Promise((r) => setTimeout(r, SILENT_WATCH_SEC * 1000));
          const after = await boots();
          assert.equal(after.main! - before.main!, 1, "main booted exactly once");
          assert.equal(after.secondary! - before.secondary!, 1, "and so did the secondary");
          const later = await show("aos-unit.service", "ActiveState", "NRestarts", "StatusText");
          assert.equal(later.ActiveState, "active");
          assert.equal(later.NRestarts, u.NRestarts, "the manager never restarted");
          assert.match(later.StatusText!, /secondary silent/);
        } finally {
          await sh("nft delete table inet aostest");
        }
        await stockRunning(30_000);
        await sh("cp /usr/share/aos-unit/examples/runtime.conf /etc/aos-unit/");
      },
    );

    await t.step(
      "10.0.0.0/24 already taken on the host: exit 2 naming the route and the change, nothing left; validate names the line",
      async () => {
        await sh("systemctl stop aos-unit");
        await sh("ip route add 10.0.0.0/16 dev uplink1");
        try {
          const since = (await sh("date +%s.%N")).trim();
          const r = await bed.exec(["systemctl", "start", "aos-unit"]);
          assert.notEqual(r.code, 0);
          const j = await sh(`journalctl -u aos-unit --no-pager --since @${since}`);
          assert.match(
            j,
            /runtime\.conf:9:11: DHCP_CIDR 10\.0\.0\.0\/24 overlaps the host's route 10\.0\.0\.0\/16 via uplink1; main's image configures itself as 10\.0\.0\.100\/24: free 10\.0\.0\.0\/24 on the host/,
          );
          assert.match(j, /status=2/);
          await noLeftovers();
        } finally {
          await sh("ip route del 10.0.0.0/16 dev uplink1; systemctl reset-failed aos-unit");
        }
        // The old sample's addressing against the stock images (a packaged aos-unit reads
        // /etc/aos-unit only).
        await sh(
          "printf 'DHCP_CIDR=\"10.200.1.0/24\"\\n' > /etc/aos-unit/runtime.conf && " +
            "sed -i 's/ip: 10.0.0.100/ip: 10.200.1.100/' /etc/aos-unit/unit_config.yaml",
        );
        const v = await bed.exec(["aos-unit", "validate"]);
        assert.equal(v.code, 2, v.stderr);
        assert.match(
          v.stderr,
          /\/etc\/aos-unit\/unit_config\.yaml:12:11: Node "main": its image aos-vm-main-qemux86-64\.qcow2 configures itself as 10\.0\.0\.100\/24 via 10\.0\.0\.1 .*set DHCP_CIDR="10\.0\.0\.0\/24" in \/etc\/aos-unit\/runtime\.conf and ip: 10\.0\.0\.100/,
        );
        await sh(
          "cp /usr/share/aos-unit/examples/unit_config.yaml /usr/share/aos-unit/examples/runtime.conf /etc/aos-unit/",
        );
        assert.equal(
          (await bed.exec(["aos-unit", "validate"])).code,
          0,
          "the shipped one agrees",
        );
      },
    );
  },
};

/** Named stock units of this step: the shipped configuration, one vCPU a node. */
const STOCK_UNITS = ["lab1", "lab2"] as const;
/** lab2 forwards this host port to its main's 8089. */
const LAB2_FORWARD = 18089;

/** The nodes' MACs, as the guest at `host` sees them (ssh): which node answered. */
async function macsOf(c: SystemBed, host: string): Promise<string> {
  const r = await ssh(c.bed, host, "cat /sys/class/net/*/address");
  assert.equal(r.code, 0, `ssh root@${host}: ${r.stderr}`);
  return r.stdout.trim();
}

/** The running nodes of every unit, by unit: their InvocationIDs. */
async function invocations(c: SystemBed, units: string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const unit of units) {
    for (const node of NODES) {
      const name = unit === "default"
        ? `aos-node-${node}.service`
        : `aos-node-${unit}_${node}.service`;
      const u = await c.show(name, "ActiveState", "InvocationID");
      assert.equal(u.ActiveState, "active", name);
      out[name] = u.InvocationID!;
    }
  }
  return out;
}

/**
 * Issue 29's proof with stock images: the default unit (running) and units lab1 and lab2,
 * identical but for lab2's forward, on the same 10.0.0.0/24 with main at 10.0.0.100.
 */
async function stockUnits(c: SystemBed): Promise<void> {
  const { bed, sh, show, fetchFromHost, http, guestOk } = c;
  for (const unit of STOCK_UNITS) {
    const dir = `/etc/aos-unit/units/${unit}`;
    const forward = unit === "lab2"
      ? ` && sed -i 's|^      ip: 10.0.0.100$|      ip: 10.0.0.100\\n      forward: [{ host: ${LAB2_FORWARD}, port: 8089 }]|' ${dir}/unit_config.yaml`
      : "";
    await sh(
      `mkdir -p ${dir} && cp /etc/aos-unit/unit_config.yaml /etc/aos-unit/runtime.conf ${dir}/ && ` +
        `sed -i 's/^      cpu: [0-9]*$/      cpu: 1/' ${dir}/unit_config.yaml${forward}`,
    );
  }
  await sh("systemctl start aos-unit@lab1 aos-unit@lab2");
  await Promise.all(STOCK_UNITS.map((unit) =>
    waitFor(
      `aos-unit@${unit} running with every node`,
      async () => {
        const u = await show(`aos-unit@${unit}.service`, "ActiveState", "StatusText");
        return u.ActiveState === "active" &&
            /^Running: main=10\.0\.0\.100 secondary=10\.0\.0\.\d+$/.test(u.StatusText ?? "")
          ? u
          : undefined;
      },
      120_000,
      200,
    )
  ));
  // 8089 by name, each from its own main (three different MACs behind one address).
  const macs = new Set<string>();
  for (const unit of ["", ...STOCK_UNITS.map((u) => `${u}.`)]) {
    const host = `main.${unit}aos-unit`;
    assert.equal(await fetchFromHost(host, 8089), "aos-main name=main", host);
    macs.add(await macsOf(c, host));
  }
  assert.equal(macs.size, 3, [...macs].join(" | "));
  const mapped: Record<string, string> = {};
  for (const unit of STOCK_UNITS) {
    mapped[unit] = (await sh(`getent hosts main.${unit}.aos-unit`)).split(/\s/)[0]!;
    assert.match(mapped[unit]!, /^172\.3[01]\.\d+\.100$/);
    await waitFor(
      `${unit}'s secondary reaching its main:8089`,
      async () =>
        (await bed.exec([
            "grep",
            "-c",
            "AOSTEST main-reached ok ip=10.0.0.100",
            `/var/log/aos-units/${unit}/secondary-serial.log`,
          ])).stdout.trim() !== "0"
          ? true
          : undefined,
      30_000,
      500,
    );
  }
  // Every guest reaches the internet host; no guest of lab1 anything of lab2.
  const lab2 = mapped.lab2!.replace(/\.100$/, "");
  for (const unit of STOCK_UNITS) {
    for (const node of NODES) {
      const guest = await SerialConsole.connect(
        bed.path(`/run/aos-units/${unit}/nodes/${node}/serial`),
      );
      try {
        assert.equal(await http(guest), "uplink1", `${unit}'s ${node} reaches the internet host`);
        if (unit !== "lab1") continue;
        for (const other of [`${lab2}.100`, `${lab2}.1`]) {
          assert.equal(await guestOk(guest, `ping -c 1 -W 1 ${other}`), false, other);
        }
      } finally {
        guest.close();
      }
    }
  }
  // From the uplink side: lab2's forward reaches its main's 8089, nothing else answers.
  const up = c.topo.uplinks[0];
  const fromUplink = (url: string) =>
    run(c.topo.inNs(up.ns, ["timeout", "5", "busybox", "wget", "-q", "-O", "-", url]));
  const body = await fromUplink(`http://${up.hostIp}:${LAB2_FORWARD}/`);
  assert.equal(body.stdout.trim(), "aos-main name=main", body.stderr);
  assert.notEqual((await fromUplink(`http://${up.hostIp}:${LAB2_FORWARD + 1}/`)).code, 0);
  assert.notEqual((await fromUplink(`http://${up.hostIp}:8089/`)).code, 0);
  // Acting as lab1's manager (its uid, groups and mount namespace): lab2's main and the
  // default unit's stay.
  const pid = (await show("aos-unit@lab1.service", "MainPID")).MainPID!;
  const credentials = await c.credentialsOf(pid);
  for (const unit of ["aos-node-lab2_main.service", "aos-node-main.service"]) {
    const r = await bed.exec([
      "nsenter",
      "-t",
      pid,
      "-m",
      "setpriv",
      ...credentials,
      "busctl",
      "call",
      "org.freedesktop.systemd1",
      "/org/freedesktop/systemd1",
      "org.freedesktop.systemd1.Manager",
      "StopUnit",
      "ss",
      unit,
      "replace",
    ]);
    assert.notEqual(r.code, 0, `lab1's manager stopped ${unit}`);
    assert.match(r.stderr, /denied|authenticat/i, r.stderr);
  }
  // lab1's manager killed, then lab1 stopped: the other units' nodes never restart.
  const before = await invocations(c, ["default", "lab2"]);
  await sh("systemctl kill -s KILL --kill-whom=main aos-unit@lab1.service");
  await waitFor(
    "aos-unit@lab1 back after its manager's SIGKILL",
    async () => {
      const u = await show("aos-unit@lab1.service", "ActiveState", "NRestarts", "StatusText");
      return u.ActiveState === "active" && Number(u.NRestarts) > 0 &&
          /^Running:/.test(u.StatusText ?? "")
        ? u
        : undefined;
    },
    60_000,
    200,
  );
  await sh("systemctl stop aos-unit@lab1");
  assert.deepEqual(await invocations(c, ["default", "lab2"]), before);
  assert.equal(await fetchFromHost("main.aos-unit", 8089), "aos-main name=main");
  assert.equal(await fetchFromHost("main.lab2.aos-unit", 8089), "aos-main name=main");
  await sh("systemctl stop aos-unit@lab2 && rm -r /etc/aos-unit/units");
}
