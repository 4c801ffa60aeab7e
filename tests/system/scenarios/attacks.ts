/** Tier-3 scenario "attacks": the service user's uid, a node's sandbox, the uplink network and a guest, as attackers. */

import assert from "node:assert/strict";
import { bundle } from "../../lib/aos.ts";
import { run, waitFor } from "../../lib/proc.ts";
import { BRIDGE, MAIN_MAC, NODES, type Scenario, SECONDARY_MAC } from "../system_bed.ts";

export const attacks: Scenario = {
  name: "attacks",
  summary: "the service user's uid, a node's sandbox, the uplink network and a guest, as attackers",
  start: "running",
  async run(t, c) {
    const {
      suite,
      topo,
      bed,
      sh,
      credentialsOf,
      show,
      leaseOf,
      failures,
      waitRunning,
      serial,
      http,
      guestOk,
      dnsFrom,
    } = c;
    await t.step(
      "attack as the aos-unit user: no unit of its making runs, under any allowed name",
      async () => {
        for (const name of ["aos-node-evil", "aos-unit-dnsmasq", "aos-node-main", "evil"]) {
          const r = await bed.exec([
            "systemd-run",
            `--unit=${name}`,
            "--property=User=root",
            "touch",
            "/root/pwned",
          ], { user: "aos-unit" });
          assert.notEqual(r.code, 0, `${name}: ${r.stdout}`);
          assert.match(
            r.stderr,
            /Access denied|already (exists|loaded)|not authorized/i,
            r.stderr,
          );
        }
        const anonymous = await bed.exec(
          ["systemd-run", "--property=User=root", "touch", "/root/pwned"],
          { user: "aos-unit" },
        );
        assert.notEqual(anonymous.code, 0);
        assert.notEqual(
          (await bed.exec(["test", "-e", "/root/pwned"])).code,
          0,
          "no /root/pwned",
        );
        for (const verb of [["restart", "dbus.service"], ["stop", "systemd-journald.service"]]) {
          const r = await bed.exec(["systemctl", ...verb], { user: "aos-unit" });
          assert.notEqual(r.code, 0, verb.join(" "));
        }
        // What the manager needs stays allowed.
        const allowed = await bed.exec(["systemctl", "restart", "aos-unit-dnsmasq.service"], {
          user: "aos-unit",
        });
        assert.equal(allowed.code, 0, allowed.stderr);
        const startNode = await bed.exec(["systemctl", "start", "aos-node-main.service"], {
          user: "aos-unit",
        });
        assert.notEqual(startNode.code, 0, "start (= creation) is never granted");
      },
    );

    await t.step(
      "attack as any local user: systemd's signals forged on the system bus (a failed JobRemoved for each of the next jobs) fail no start",
      async () => {
        await sh("systemctl stop aos-unit");
        // Where systemd's job counter is: a job of root's own.
        const probe = await sh(
          "busctl call org.freedesktop.systemd1 /org/freedesktop/systemd1 " +
            "org.freedesktop.systemd1.Manager StartUnit ss dbus.service replace",
        );
        const next = Number(/job\/(\d+)/.exec(probe)![1]) + 1;
        // As nobody, until told to stop: "failed" for every job id the start may get, as
        // fast as the bus takes them (tests/system/forge_signals.ts).
        const forger = `${await Deno.makeTempDir({ prefix: "aosu-forge-" })}/forge_signals.js`;
        await bundle(new URL("../forge_signals.ts", import.meta.url).pathname, forger);
        await bed.cpIn(forger, "/tmp/forge_signals.js");
        await Deno.remove(forger.replace(/\/[^/]+$/, ""), { recursive: true });
        await sh("touch /tmp/forge && chmod 0644 /tmp/forge_signals.js");
        const forging = bed.exec([
          "env",
          "DENO_NO_UPDATE_CHECK=1",
          "DENO_DIR=/tmp/forge-deno",
          "/usr/lib/aos-unit/deno",
          "run",
          "-A",
          "--quiet",
          "--no-config",
          "/tmp/forge_signals.js",
          String(next),
          String(next + 200),
          "/tmp/forge",
        ], { user: "nobody" });
        // Under way before the start.
        await new Promise((r) => setTimeout(r, 1000));
        let sent = 0;
        try {
          const r = await bed.exec(["systemctl", "start", "aos-unit"]);
          assert.equal(r.code, 0, r.stderr);
          await waitRunning();
        } finally {
          await sh("rm -f /tmp/forge");
          const f = await forging;
          sent = Number(f.stdout.trim());
          assert.equal(f.code, 0, f.stderr);
        }
        assert.ok(sent > 1000, `the forger sent ${sent} signals`);
        await sh("rm -rf /tmp/forge_signals.js /tmp/forge-deno");
        for (const node of ["aos-node-main.service", "aos-node-secondary.service"]) {
          assert.equal((await show(node, "ActiveState")).ActiveState, "active", node);
        }
      },
    );

    await t.step(
      "attack from a node's sandbox, with its QEMU's own credentials: nothing outside its own files, no signal or /proc/PID/root of another process",
      async () => {
        const pid = (await show("aos-node-main.service", "MainPID")).MainPID!;
        const mainCredentials = await credentialsOf(pid);
        console.log(`${suite}: main's QEMU runs as ${mainCredentials.join(" ")}`);
        assert.doesNotMatch(
          mainCredentials[0]!,
          new RegExp(`=${(await sh("id -u aos-unit")).trim()}$`),
        );
        const asQemu = (script: string) =>
          bed.exec([
            "nsenter",
            "-t",
            pid,
            "-m",
            "setpriv",
            ...mainCredentials,
            "sh",
            "-c",
            script,
          ]);
        for (
          const file of [
            "/run/aos-unit/dnsmasq.conf",
            "/run/aos-unit/network.conf",
            "/var/lib/aos-unit/dhcp/leases.json",
            "/var/lib/aos-unit/nodes/secondary/overlay.qcow2",
            "/var/log/aos-unit/secondary-serial.log",
            "/run/aos-unit/nodes/secondary/qmp",
          ]
        ) {
          const r = await asQemu(`echo x >> ${file}`);
          assert.notEqual(r.code, 0, `QEMU of main could write ${file}`);
        }
        // Nothing of the other nodes or of the unit's records is even there to read.
        for (
          const path of [
            "/var/lib/aos-unit/nodes/secondary",
            "/run/aos-unit/nodes/secondary",
            "/run/aos-unit/secondary.serial",
            "/var/log/aos-unit/secondary-serial.log",
            "/var/log/aos-unit/vm-failures.log",
            "/var/lib/aos-unit/dhcp/leases.json",
            "/var/lib/aos-unit/dhcp/dnsmasq.leases",
          ]
        ) {
          const r = await asQemu(`test -e ${path}`);
          assert.notEqual(r.code, 0, `QEMU of main sees ${path}`);
        }
        const own = await asQemu(
          "test -w /var/lib/aos-unit/nodes/main/overlay.qcow2 && test -S /run/aos-unit/nodes/main/qmp" +
            " && test -w /var/log/aos-unit/main-serial.log && test -w /var/lib/aos-unit/nodes/main/failures.spool",
        );
        assert.equal(own.code, 0, `its own files stay there and writable: ${own.stderr}`);
        // Its directory is not its own: no file made, renamed or linked there.
        for (
          const script of [
            "touch /var/lib/aos-unit/nodes/main/probe",
            "ln -s /etc/shadow /var/lib/aos-unit/nodes/main/link",
            "mv /var/lib/aos-unit/nodes/main/failures.spool /var/lib/aos-unit/nodes/main/x",
          ]
        ) {
          assert.notEqual((await asQemu(script)).code, 0, script);
        }
        // The unit's own view is unchanged: the hiding is in the node's mount namespace.
        assert.equal(
          (await bed.exec(["test", "-S", "/run/aos-unit/nodes/secondary/qmp"])).code,
          0,
        );
        // Signals and /proc: each QEMU and dnsmasq have a uid of their own (DynamicUser=),
        // on every systemd.
        const targets = {
          "secondary's QEMU": (await show("aos-node-secondary.service", "MainPID")).MainPID!,
          "the manager": (await show("aos-unit.service", "MainPID")).MainPID!,
          dnsmasq: (await show("aos-unit-dnsmasq.service", "MainPID")).MainPID!,
        };
        const fromUnit = async (unit: string, script: string) => {
          const of = (await show(unit, "MainPID")).MainPID!;
          const credentials = await credentialsOf(of);
          return await bed.exec([
            "nsenter",
            "-t",
            of,
            "-m",
            "-p",
            "setpriv",
            ...credentials,
            "sh",
            "-c",
            script,
          ]);
        };
        for (const unit of ["aos-node-main.service", "aos-unit-dnsmasq.service"]) {
          for (const [what, target] of Object.entries(targets)) {
            if (unit === "aos-unit-dnsmasq.service" && what === "dnsmasq") continue;
            const r = await fromUnit(unit, `kill -0 ${target}`);
            assert.notEqual(r.code, 0, `${unit} could signal ${what} (pid ${target})`);
          }
        }
        // The manager's /proc entry, from dnsmasq: another uid too.
        const manager = targets["the manager"];
        const fromDnsmasq = await fromUnit(
          "aos-unit-dnsmasq.service",
          `ls /proc/${manager}/root/var/lib/aos-unit/`,
        );
        assert.notEqual(
          fromDnsmasq.code,
          0,
          `dnsmasq reads the manager's root: ${fromDnsmasq.stdout}`,
        );
        // Another node's files through its /proc entry: another uid, refused everywhere.
        const peer = targets["secondary's QEMU"];
        for (
          const script of [
            `ls /proc/${peer}/root/var/lib/aos-unit/nodes/secondary/`,
            `cat /proc/${peer}/environ`,
          ]
        ) {
          const viaProc = await fromUnit("aos-node-main.service", script);
          assert.notEqual(viaProc.code, 0, `main's QEMU: ${script}: ${viaProc.stdout}`);
        }
        for (
          const path of [
            "/var/lib/aos-unit/nodes/main/overlay.qcow2",
            "/run/aos-unit/nodes/main/qmp",
            "/var/log/aos-unit/main-serial.log",
          ]
        ) {
          const r = await fromUnit("aos-unit-dnsmasq.service", `test -e ${path}`);
          assert.notEqual(r.code, 0, `dnsmasq sees ${path}`);
        }
      },
    );

    await t.step(
      "attack from a node's sandbox: main's sockets repointed at secondary's: a snapshot and the console refuse, secondary never pauses",
      async () => {
        const pid = (await show("aos-node-main.service", "MainPID")).MainPID!;
        const credentials = await credentialsOf(pid);
        const asMain = (script: string) =>
          bed.exec(["nsenter", "-t", pid, "-m", "setpriv", ...credentials, "sh", "-c", script]);
        // main owns its socket directory: it can put links there, to paths it cannot see
        // but the manager, root and the console can.
        const dir = "/run/aos-unit/nodes/main";
        const planted = await asMain(
          `cd ${dir} && mv qmp qmp.real && ln -s /run/aos-unit/nodes/secondary/qmp qmp && ` +
            "mv serial serial.real && ln -s /run/aos-unit/nodes/secondary/serial serial",
        );
        assert.equal(planted.code, 0, planted.stderr);
        const secondary = await serial("secondary");
        try {
          const save = await bed.exec(["aos-unit", "snapshot", "save", "evil"]);
          assert.equal(save.code, 1, save.stderr + save.stdout);
          assert.match(save.stderr, /Refusing \/run\/aos-unit\/nodes\/main\/qmp/);
          assert.equal((await sh("ls /var/lib/aos-unit/snapshots")).trim(), "", "nothing saved");
          const con = await bed.exec(["aos-unit", "console", "main"], { stdin: "" });
          assert.notEqual(con.code, 0);
          assert.match(con.stderr, /Refusing \/run\/aos-unit\/main\.serial: it leads to/);
          // secondary runs on: it answers on its own console.
          await secondary.probe("echo AOSTEST still-$((20+22))", /AOSTEST still-42/, 10_000);
        } finally {
          secondary.close();
          await asMain(
            `cd ${dir} && rm -f qmp serial && mv qmp.real qmp && mv serial.real serial`,
          );
        }
        const save = await bed.exec(["aos-unit", "snapshot", "save", "fine"]);
        assert.equal(save.code, 0, `main's own sockets work again: ${save.stderr}`);
        assert.equal((await bed.exec(["aos-unit", "snapshot", "delete", "fine"])).code, 0);
      },
    );

    await t.step(
      "attack as the aos-unit user: dangling links where root's Deno might cache create nothing",
      async () => {
        // Every place Deno writes under a HOME or DENO_DIR the service user owns, and the
        // code cache a compiled build would keep in /tmp, each a link to a file in /etc.
        const cache = "/var/lib/aos-unit/.cache/deno";
        const targets = [
          "dep_analysis_cache_v2",
          "dep_analysis_cache_v2-wal",
          "dep_analysis_cache_v2-shm",
          "node_analysis_cache_v2",
          "node_analysis_cache_v2-wal",
          "node_analysis_cache_v2-shm",
          "npm",
          "gen",
          "remote",
        ];
        const plant = [
          `mkdir -p ${cache}`,
          ...targets.map((n, i) => `ln -sfn /etc/aos-pwned-${i} ${cache}/${n}`),
          "ln -sfn /etc/aos-pwned-tmp /tmp/deno-compile-aos-unit.cache",
        ].join(" && ");
        const r = await bed.exec(["sh", "-c", plant], { user: "aos-unit" });
        assert.equal(r.code, 0, r.stderr);
        try {
          // Root runs aos-unit as the broker, by hand and from the package scripts.
          await sh("systemctl restart aos-unit");
          await waitRunning();
          await bed.exec(["aos-unit", "status"]);
          await bed.exec(["aos-unit", "doctor"]);
          await bed.exec(["aos-unit", "validate"]);
          const made = await bed.exec(["sh", "-c", "ls /etc/aos-pwned-* 2>/dev/null"]);
          assert.equal(made.stdout.trim(), "", `root created ${made.stdout}`);
        } finally {
          await sh(`rm -rf ${cache} /tmp/deno-compile-aos-unit.cache`);
        }
      },
    );

    await t.step(
      "attack as the aos-unit user: no link of its own in nodes/, where systemd chowns each node's runtime directory as root",
      async () => {
        // systemd makes a node's runtime directory at its start and chowns it, following a
        // link there, to the node's user: nodes/ must be out of the service user's reach.
        assert.equal(
          await sh("stat -c '%U:%G %a' /run/aos-unit /run/aos-unit/nodes"),
          "root:aos-unit 1775\nroot:root 755\n",
        );
        for (
          const script of [
            "mv /run/aos-unit/nodes /run/aos-unit/moved",
            "rm -rf /run/aos-unit/nodes",
            "ln -s /etc /run/aos-unit/nodes/evil",
            "rm -rf /run/aos-unit/nodes/secondary",
          ]
        ) {
          const r = await bed.exec(["sh", "-c", script], { user: "aos-unit" });
          assert.notEqual(r.code, 0, `the aos-unit user could: ${script}`);
        }
        // A node restarted (polkit lets the service user) comes back with its own directory.
        await bed.exec(["systemctl", "restart", "aos-node-secondary"], { user: "aos-unit" });
        await waitRunning();
        assert.equal(await sh("stat -c '%U:%G %a' /etc"), "root:root 755\n");
      },
    );

    await t.step(
      "attack as the aos-unit user: a dnsmasq configuration of its own and a sidecar restart serve nothing new",
      async () => {
        const evil = [
          "port=5300",
          `interface=${BRIDGE}`,
          "bind-interfaces",
          "host-record=evil.aos-unit,10.200.1.66",
          "dhcp-range=10.202.1.50,10.202.1.60,12h",
          "",
        ].join("\n");
        const w = await bed.exec(
          [
            "sh",
            "-c",
            "cat > /run/aos-unit/dnsmasq.conf && cp /run/aos-unit/dnsmasq.conf /run/aos-unit/aos-unit.conf",
          ],
          { user: "aos-unit", stdin: evil },
        );
        assert.equal(w.code, 0, w.stderr);
        const restart = await bed.exec(["systemctl", "restart", "aos-unit-dnsmasq.service"], {
          user: "aos-unit",
        });
        assert.equal(restart.code, 0, restart.stderr);
        try {
          await waitFor(
            "the sidecar answering again",
            async () =>
              (await dnsFrom(topo.host, "10.200.1.1", 5300, "main.aos-unit", 300)).startsWith(
                  "answer",
                )
                ? true
                : undefined,
            10_000,
            100,
          );
          assert.equal(
            await dnsFrom(topo.host, "10.200.1.1", 5300, "evil.aos-unit"),
            "empty",
            "the planted record is not served",
          );
          const argv = (await show("aos-unit-dnsmasq.service", "ExecStart")).ExecStart ?? "";
          assert.match(argv, /--conf-file=\/dev\/null/, "no file is read");
        } finally {
          await sh("rm -f /run/aos-unit/dnsmasq.conf /run/aos-unit/aos-unit.conf");
        }
      },
    );

    await t.step(
      "attack from the uplink network: no guest port and no DNS answer; guests still reach out",
      async () => {
        const neighbour = topo.uplinks[0];
        await run([
          "ip",
          "-n",
          neighbour.ns,
          "route",
          "add",
          "10.200.1.0/24",
          "via",
          neighbour.hostIp,
        ]);
        try {
          const tcp = await run([
            "ip",
            "netns",
            "exec",
            neighbour.ns,
            "timeout",
            "3",
            "bash",
            "-c",
            "echo > /dev/tcp/10.200.1.100/22",
          ]);
          assert.equal(tcp.code, 124, `a neighbour reached main:22 (${tcp.stderr.trim()})`);
          for (const port of [53, 5300]) {
            assert.equal(
              await dnsFrom(neighbour.ns, "10.200.1.1", port, "main.aos-unit"),
              "timeout",
              `DNS on port ${port} answers the uplink side`,
            );
          }
          // Positive controls: the host itself still reaches both.
          const fromHost = await run([
            "ip",
            "netns",
            "exec",
            topo.host,
            "timeout",
            "3",
            "bash",
            "-c",
            "echo > /dev/tcp/10.200.1.100/22",
          ]);
          assert.equal(fromHost.code, 0, `the host reaches main:22 (${fromHost.stderr.trim()})`);
          assert.equal(
            await dnsFrom(topo.host, "10.200.1.1", 5300, "main.aos-unit"),
            "answer 10.200.1.100",
          );
        } finally {
          await run(["ip", "-n", neighbour.ns, "route", "del", "10.200.1.0/24"]);
        }
        const main = await serial("main");
        assert.equal(await http(main), "uplink1", "main reaches the internet host");
        const secondary = await leaseOf("secondary");
        assert.ok(
          await guestOk(main, `ping -c 1 -W 2 ${secondary} >/dev/null`),
          "main pings secondary",
        );
        main.close();
      },
    );

    await t.step(
      "attack from a guest: another node's address or MAC gets nothing, its records stay",
      async () => {
        const before = JSON.parse(await sh("cat /var/lib/aos-unit/dhcp/leases.json")).leases;
        const c = await serial("secondary");
        // Each spoof is set up first (and checked), then used: a failing set-up proves nothing.
        assert.ok(await guestOk(c, "ip addr add 10.200.1.100/24 dev eth0"), "add main's address");
        assert.ok(
          !await guestOk(c, "ping -c 1 -W 2 -I 10.200.1.100 10.200.1.1 >/dev/null"),
          "secondary spoofing main's address reached the bridge",
        );
        assert.ok(await guestOk(c, "ip addr del 10.200.1.100/24 dev eth0"));
        assert.ok(
          await guestOk(
            c,
            `ip link set eth0 down && ip link set eth0 address ${MAIN_MAC} && ip link set eth0 up`,
          ),
          "take main's MAC",
        );
        assert.ok(
          !await guestOk(
            c,
            "udhcpc -n -q -i eth0 -t 2 -T 1 -s /bin/true >/dev/null 2>&1",
            20_000,
          ),
          "secondary with main's MAC got a DHCP lease",
        );
        assert.ok(
          await guestOk(
            c,
            `ip link set eth0 down && ip link set eth0 address ${SECONDARY_MAC} && ip link set eth0 up`,
          ),
        );
        c.skip();
        await c.send("kill -USR1 $(pidof udhcpc)");
        await c.expect(
          /AOSTEST lease ip=\S+ .*event=(renew|bound)/,
          10_000,
          "secondary's own lease",
        );
        const after = JSON.parse(await sh("cat /var/lib/aos-unit/dhcp/leases.json")).leases;
        assert.deepEqual(after[MAIN_MAC], before[MAIN_MAC], "main's lease record is untouched");
        assert.match(await sh("getent hosts main.aos-unit"), /^10\.200\.1\.100\s/);
        assert.ok(
          await guestOk(c, "ping -c 1 -W 2 10.200.1.1 >/dev/null"),
          "secondary works again",
        );
        const counters = await sh("nft list table bridge aos_unit");
        assert.match(
          counters,
          /counter packets [1-9]\d* bytes \d+ drop comment "not aostap1f7ba5's MAC"/,
        );
        // A gratuitous ARP for main's address from secondary: the host keeps main's MAC.
        await bed.exec(["timeout", "3", "bash", "-c", "echo > /dev/tcp/10.200.1.100/22"]);
        assert.ok(await guestOk(c, "ip addr add 10.200.1.100/24 dev eth0"));
        await guestOk(c, "arping -U -c 3 -w 3 -I eth0 10.200.1.100 >/dev/null 2>&1", 10_000);
        assert.ok(await guestOk(c, "ip addr del 10.200.1.100/24 dev eth0"));
        const neigh = await sh(`ip neigh show 10.200.1.100 dev ${BRIDGE}`);
        assert.doesNotMatch(neigh, new RegExp(SECONDARY_MAC), `the host's neighbour: ${neigh}`);
        // 60 client-ids: one lease for the MAC, at the node's own address.
        const own = (await leaseOf("secondary"))!;
        assert.ok(
          await guestOk(
            c,
            "i=0; while [ $i -lt 60 ]; do i=$((i + 1)); udhcpc -n -q -t 1 -T 1 -i eth0 " +
              "-x 0x3d:01$(printf %012x $i) -s /bin/true >/dev/null 2>&1; done; true",
            120_000,
          ),
        );
        const leaseLines = (await sh("cat /run/aos-unit/dnsmasq.leases")).trim().split("\n");
        const secondaryLeases = leaseLines.filter((l) => l.includes(SECONDARY_MAC));
        assert.equal(secondaryLeases.length, 1, leaseLines.join("\n"));
        assert.match(secondaryLeases[0]!, new RegExp(` ${own.replaceAll(".", "\\.")} `));
        assert.ok(leaseLines.length <= NODES.length, `no other lease: ${leaseLines.join("; ")}`);
        c.close();
      },
    );

    await t.step(
      "attack as dnsmasq's uid: a FIFO in place of the lease records stalls neither the manager nor root's status; the manager reads them again once they are back",
      async () => {
        await waitRunning();
        const running = (await show("aos-unit.service", "StatusText")).StatusText ?? "";
        assert.match(running, /^Running: main=\S+ secondary=\S+$/);
        const pid = (await show("aos-unit-dnsmasq.service", "MainPID")).MainPID!;
        const credentials = await credentialsOf(pid);
        const asDnsmasq = (script: string) =>
          bed.exec(["nsenter", "-t", pid, "-m", "setpriv", ...credentials, "sh", "-c", script]);
        const dir = "/var/lib/aos-unit/dhcp";
        const plant = await asDnsmasq(
          `mv ${dir}/leases.json ${dir}/leases.kept && mkfifo -m 0660 ${dir}/leases.json`,
        );
        assert.equal(plant.code, 0, plant.stderr);
        try {
          // The manager goes on: its next passes see no lease record (the secondary's
          // address unknown) instead of waiting for a writer.
          await waitFor("the manager's STATUS without the secondary's lease", async () => {
            const text = (await show("aos-unit.service", "StatusText")).StatusText ?? "";
            return text !== running ? text : undefined;
          }, 20_000);
          const status = await bed.exec(["timeout", "20", "aos-unit", "status", "--json"]);
          assert.notEqual(status.code, 124, "root's status waited on the FIFO");
        } finally {
          const back = await asDnsmasq(
            `rm -f ${dir}/leases.json && mv ${dir}/leases.kept ${dir}/leases.json`,
          );
          assert.equal(back.code, 0, back.stderr);
        }
        await waitFor("the manager's STATUS as before", async () => {
          const text = (await show("aos-unit.service", "StatusText")).StatusText ?? "";
          return text === running ? text : undefined;
        }, 20_000);
      },
    );

    await t.step(
      "attack as the aos-unit user: a journal linked behind a serial log leaks nothing into the final record",
      async () => {
        // The handler records only a node that is down (as when systemd gives up on it).
        await sh("systemctl stop aos-node-secondary.service");
        const log = "/var/log/aos-unit/secondary-serial.log";
        const journal = (await sh(
          "ls /run/log/journal/*/system.journal /var/log/journal/*/system.journal 2>/dev/null | head -n 1",
        )).trim();
        assert.notEqual(journal, "", "a journal file to point at");
        const plant = await bed.exec([
          "sh",
          "-c",
          `mv ${log} ${log}.saved && ln -s ${journal} ${log}`,
        ], {
          user: "aos-unit",
        });
        assert.equal(plant.code, 0, plant.stderr);
        try {
          // The forensic handler, as systemd runs it when it gives up on a node (with the
          // systemd-journal group).
          const before = (await failures()).length;
          await sh("systemctl start aos-unit-vm-failed@secondary.service");
          const records = await failures();
          assert.equal(records.length, before + 1, "a final record was written");
          const last = records.at(-1)!;
          assert.equal(last.final, true);
          assert.deepEqual(last.serial_tail, [], "nothing read through the link");
          assert.doesNotMatch(JSON.stringify(last.serial_tail), /LPKSHHRH/);
        } finally {
          await bed.exec(["sh", "-c", `rm -f ${log} && mv ${log}.saved ${log}`], {
            user: "aos-unit",
          });
        }
      },
    );
  },
};
