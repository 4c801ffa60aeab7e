/** Tier-3 scenario "snapshots": whole-unit snapshots on the stock-like images. */

import assert from "node:assert/strict";
import { waitFor } from "../../lib/proc.ts";
import { NODES, type Scenario } from "../system_bed.ts";

export const snapshots: Scenario = {
  name: "snapshots",
  summary: "whole-unit snapshots on the stock-like images",
  start: "stock-running-1cpu",
  async run(t, c) {
    const {
      suite,
      bed,
      consoles,
      deb,
      deb2,
      sh,
      show,
      leaseOf,
      boots,
      serial,
      fetchFromHost,
      stockRunning,
      failures,
    } = c;
    /** The secondary's boot count right after the first snapshot restore. */
    let restoredSecondary = 0;
    await t.step(
      "snapshot save on the running unit (a pause), the guests move on, restore: counters, UEFI and addresses as saved",
      async () => {
        /** The count the guest printed at its last boot (from its disk). */
        const lastCount = async (node: string) => {
          const log = await sh(`cat /var/log/aos-unit/${node}-serial.log`);
          const all = [
            ...log.matchAll(new RegExp(`AOSTEST boot name=${node} count=(\\d+)`, "g")),
          ];
          return Number(all.at(-1)![1]);
        };
        const main = await serial("main");
        assert.equal(
          (await main.probe("aos-probe efivar snap-1", /^AOSTEST efivar value=(\S+)$/))[1],
          "snap-1",
        );
        const saved = { main: await lastCount("main"), secondary: await lastCount("secondary") };
        const address = await leaseOf("secondary");
        for (const bad of ["../x", ".partial", "a/b", "-x", "x".repeat(64)]) {
          const r = await bed.exec(["aos-unit", "snapshot", "save", "--", bad]);
          assert.equal(r.code, 2, `${bad}: ${r.stderr}`);
        }
        // Nothing made (the lock file of earlier saves is no snapshot).
        assert.equal(
          (await sh("ls /var/lib/aos-unit/snapshots 2>/dev/null || true")).trim(),
          "",
        );
        // Both guests write a sequence number to their disk every 100 ms: a save at one
        // instant restores the same difference between them (within one write).
        const consolesOf = { main, secondary: await serial("secondary") };
        for (const c of Object.values(consolesOf)) {
          await c.probe("aos-probe seq-start", /AOSTEST seq started/);
        }
        await new Promise((r) => setTimeout(r, 1500));
        const seqNow = () =>
          Promise.all(
            Object.values(consolesOf).map(async (c) =>
              Number(
                (await c.probe(
                  `echo "AOSTEST seq now=$(aos-probe seq-read)"`,
                  /AOSTEST seq now=(\d+)/,
                ))[1],
              )
            ),
          );
        const [m0, s0] = await seqNow();
        const save = await bed.exec(["aos-unit", "snapshot", "save", "provisioned"]);
        assert.equal(save.code, 0, save.stderr);
        console.log(`snapshot save (${suite}): ${save.stdout.trim()}`);
        const [m1, s1] = await seqNow();
        const list = JSON.parse(await sh("aos-unit snapshot list --json"))[0];
        assert.equal(list.nodes, 2);
        // The guests go on: a new UEFI value, a reboot each.
        await main.probe("aos-probe efivar later", /^AOSTEST efivar value=later$/);
        for (const n of NODES) {
          const c = consolesOf[n];
          try {
            await c.probe("aos-probe reboot", new RegExp(`^AOSTEST boot name=${n} count=`), 90_000);
          } catch (e) {
            // The whole boot, not the tail the error holds: where a stalled boot stopped.
            const log = await sh(`tail -n 150 /var/log/aos-unit/${n}-serial.log`);
            console.error(`${suite} ${n}'s serial log, last 150 lines:\n${log}`);
            throw e;
          }
          c.close();
        }
        await stockRunning();
        // Refused, and nothing stops: an unknown name, a missing file.
        const invocation = await show("aos-node-main.service", "InvocationID");
        assert.equal((await bed.exec(["aos-unit", "snapshot", "restore", "nothing"])).code, 2);
        await sh("mv /var/lib/aos-unit/snapshots/provisioned/secondary.qcow2 /root/");
        const broken = await bed.exec(["aos-unit", "snapshot", "restore", "provisioned"]);
        await sh("mv /root/secondary.qcow2 /var/lib/aos-unit/snapshots/provisioned/");
        assert.equal(broken.code, 1, broken.stderr);
        assert.deepEqual(await show("aos-node-main.service", "InvocationID"), invocation);
        const started = performance.now();
        const r = await bed.exec(["aos-unit", "snapshot", "restore", "provisioned"]);
        assert.equal(r.code, 0, r.stderr + r.stdout);
        console.log(
          `snapshot restore (${suite}): ${Math.round(performance.now() - started)} ms to READY`,
        );
        await stockRunning();
        for (const n of NODES) {
          assert.equal(await lastCount(n), saved[n as "main" | "secondary"] + 1, `${n} as saved`);
        }
        const log = (await sh("cat /var/log/aos-unit/main-serial.log")).replaceAll("\r", "");
        const lastBoot = log.slice(log.lastIndexOf("AOSTEST boot name=main"));
        assert.match(lastBoot, /^AOSTEST efivar value=snap-1$/m, "main's UEFI variable as saved");
        const restoredSeq = async (n: string) => {
          const text = await sh(`cat /var/log/aos-unit/${n}-serial.log`);
          return Number([...text.matchAll(/AOSTEST seq value=(\d+)/g)].at(-1)![1]);
        };
        const restored = (await restoredSeq("main")) - (await restoredSeq("secondary"));
        console.log(
          `seq main-secondary (${suite}): before save ${m0! - s0!}, after ${
            m1! - s1!
          }, restored ${restored}`,
        );
        assert.ok(
          Math.abs(restored - (m0! - s0!)) <= 1 || Math.abs(restored - (m1! - s1!)) <= 1,
          "one instant for both guests",
        );
        assert.equal(await leaseOf("secondary"), address, "the secondary's address as saved");
        assert.equal(await fetchFromHost("main.aos-unit", 8089), "aos-main name=main");
        restoredSecondary = await lastCount("secondary");
        // Kept for the next step: it must survive a restart, a package change and a reboot.
      },
    );

    await t.step(
      "snapshot save --memory, then restore: the guests resume at the saved instant (no boot, counters and a TCP stream carry on), a restart adopts them, a crashed one boots, a changed mem: is refused",
      async () => {
        // Each guest writes a sequence number to its disk every 100 ms, and the secondary
        // holds one TCP connection open to main (nc -l takes a single one), a line per 200 ms.
        const main = await serial("main");
        const secondary = await serial("secondary");
        for (const c of [main, secondary]) {
          await c.probe("aos-probe seq-start", /AOSTEST seq started/);
        }
        await main.probe(
          // (busybox's nc ends at the end of its input: it gets one that never ends)
          "sleep 100000 | nc -l -p 7000 >/run/stream.log 2>&1 & echo AOSTEST listening",
          /AOSTEST listening/,
        );
        await secondary.probe(
          "(n=0; while :; do n=$((n+1)); echo tick $n; sleep 0.2; done) | nc main 7000 " +
            ">/dev/null 2>&1 & echo AOSTEST streaming",
          /AOSTEST streaming/,
        );
        await new Promise((r) => setTimeout(r, 1500));
        const seqOf = async (c: typeof main) =>
          Number(
            (await c.probe(
              `echo "AOSTEST seq now=$(aos-probe seq-read)"`,
              /AOSTEST seq now=(\d+)/,
            ))[1],
          );
        const ticks = async (c: typeof main) =>
          Number(
            (await c.probe(
              `echo "AOSTEST ticks=$(tail -n 1 /run/stream.log | tr -dc 0-9)"`,
              /AOSTEST ticks=(\d+)/,
            ))[1],
          );
        const before = { main: await seqOf(main), secondary: await seqOf(secondary) };
        const ticksBefore = await ticks(main);
        assert.ok(ticksBefore > 0, "the stream runs");
        const invocation = await show("aos-node-main.service", "InvocationID");
        const r = await bed.exec(["aos-unit", "snapshot", "save", "--memory", "live"]);
        assert.equal(r.code, 0, r.stderr);
        console.log(`snapshot save --memory (${suite}): ${r.stdout.trim()}`);
        assert.match(r.stdout, /running \(guests paused \d+ ms\), with memory/);
        const dir = "/var/lib/aos-unit/snapshots/live";
        const manifest = JSON.parse(await sh(`cat ${dir}/manifest.json`));
        assert.equal(manifest.memory, true);
        for (const n of manifest.nodes) {
          assert.ok(n.state.bytes > 1024 * 1024, `${n.name}'s state holds its RAM`);
          assert.match(n.state.machine, /^(pc-q35|virt)-\d+\.\d+$/, "the resolved machine type");
          const st = await sh(`stat -c '%U %a %s' ${dir}/${n.name}.state`);
          assert.equal(st.trim(), `aos-unit 640 ${n.state.bytes}`);
        }
        assert.equal(
          (await sh("ls /var/lib/aos-unit/nodes/main /var/lib/aos-unit/nodes/secondary")).match(
            /state\.sock|pending/g,
          ),
          null,
          "no socket or pending overlay left",
        );
        assert.equal(JSON.parse(await sh("aos-unit snapshot list --json")).at(-1).memory, true);
        // The same guests, running on.
        assert.deepEqual(await show("aos-node-main.service", "InvocationID"), invocation);
        assert.equal(await fetchFromHost("main.aos-unit", 8089), "aos-main name=main");

        // The guests move on; their writers stop, so the disks keep values past the save's.
        const after = { main: await seqOf(main), secondary: await seqOf(secondary) };
        for (const c of [main, secondary]) {
          await c.probe("aos-probe seq-stop; echo AOSTEST stopped", /AOSTEST stopped/);
        }
        main.close();
        secondary.close();
        const bootsBefore = await boots();

        // A change to a node's memory: the saved RAM no longer fits, nothing stops.
        await sh("sed -i '0,/mem: 8G/s//mem: 6G/' /etc/aos-unit/unit_config.yaml");
        const refused = await bed.exec(["aos-unit", "snapshot", "restore", "live"]);
        await sh("sed -i '0,/mem: 6G/s//mem: 8G/' /etc/aos-unit/unit_config.yaml");
        assert.equal(refused.code, 2, refused.stderr);
        assert.match(refused.stderr, /node main: memory 8192 MiB -> 6144 MiB/);
        assert.match(refused.stderr, /--disk-only/);
        assert.deepEqual(await show("aos-node-main.service", "InvocationID"), invocation);

        // The restore: every guest back at the saved instant, running, without a boot.
        const records = (await failures()).length;
        const started = performance.now();
        const restored = await bed.exec(["aos-unit", "snapshot", "restore", "live"]);
        assert.equal(restored.code, 0, restored.stderr + restored.stdout);
        console.log(
          `snapshot restore with memory (${suite}): ${
            Math.round(performance.now() - started)
          } ms to READY: ${restored.stdout.trim()}`,
        );
        assert.match(restored.stdout, /the guests resumed, no boot/);
        await stockRunning();
        assert.deepEqual(await boots(), bootsBefore, "no guest booted");
        // The discarded guests were ended, not crashed: the manager's collector has had its
        // quarter second many times over by now.
        const recorded = (await failures()).slice(records);
        assert.deepEqual(
          recorded.map((r) => `${r.node} ${r.result}`),
          [],
          `no crash record: ${JSON.stringify(recorded.map((r) => ({ ...r, serial_tail: [] })))}`,
        );
        const mainNow = await serial("main");
        const secondaryNow = await serial("secondary");
        const resumed = { main: await seqOf(mainNow), secondary: await seqOf(secondaryNow) };
        const ticksResumed = await ticks(mainNow);
        await new Promise((r) => setTimeout(r, 1000));
        const later = { main: await seqOf(mainNow), secondary: await seqOf(secondaryNow) };
        console.log(
          `seq (${suite}): saved between ${JSON.stringify(before)} and ${
            JSON.stringify(after)
          }; resumed ${JSON.stringify(resumed)}, 1 s later ${JSON.stringify(later)}; ` +
            `stream ticks ${ticksBefore} -> ${ticksResumed} -> ${await ticks(mainNow)}`,
        );
        for (const n of NODES) {
          const k = n as "main" | "secondary";
          assert.ok(resumed[k] >= before[k], `${n}'s counter continues from its saved value`);
          assert.ok(later[k] > resumed[k], `${n}'s writer runs on: its memory came back`);
        }
        assert.ok(ticksResumed >= ticksBefore, "the stream's lines as saved");
        assert.ok(await ticks(mainNow) > ticksResumed, "the same TCP stream carries on");
        assert.equal(await fetchFromHost("main.aos-unit", 8089), "aos-main name=main");

        // A restart adopts the restored guests: none boots, none is replaced.
        const restoredInvocation = await show("aos-node-main.service", "InvocationID");
        mainNow.close();
        secondaryNow.close();
        await sh("systemctl restart aos-unit");
        await stockRunning();
        assert.deepEqual(await boots(), bootsBefore, "no guest booted on the restart");
        assert.deepEqual(await show("aos-node-main.service", "InvocationID"), restoredInvocation);

        // A restored QEMU that crashes is started again by systemd, waiting for a state nobody
        // sends: the manager hands it back, and the unit's next start boots main (alone).
        const secondaryInvocation = await show("aos-node-secondary.service", "InvocationID");
        await sh("systemctl kill -s KILL aos-node-main.service");
        await waitFor(
          "main booted again",
          async () => (await boots()).main === bootsBefore.main! + 1 ? true : undefined,
          90_000,
          250,
        );
        await stockRunning();
        assert.deepEqual(
          await show("aos-node-secondary.service", "InvocationID"),
          secondaryInvocation,
          "the secondary runs on",
        );
        assert.equal((await boots()).secondary, bootsBefore.secondary);
        assert.match(
          await sh("journalctl -u aos-unit.service --no-pager -n 200"),
          /Node main started again after a snapshot restore/,
        );
        for (const n of NODES) {
          const c = await serial(n);
          await c.probe("aos-probe seq-stop; killall nc; echo AOSTEST stopped", /AOSTEST stopped/);
          c.close();
        }
        assert.equal((await bed.exec(["aos-unit", "snapshot", "delete", "live"])).code, 0);
      },
    );

    await t.step(
      "a UEFI variable and a snapshot survive systemctl restart, a package change and a host reboot; a reset node comes back from the snapshot",
      async () => {
        const c = await serial("main");
        assert.equal(
          (await c.probe(
            "aos-probe efivar boot-ab-17",
            /^AOSTEST efivar (value=(\S+)|fail|none)$/,
          ))[2],
          "boot-ab-17",
        );
        c.close();
        const mainBoots = (await boots()).main!;
        await sh("systemctl restart aos-unit");
        await stockRunning();
        // Another build of the package: the next release.
        const r = await bed.exec(["apt-get", "install", "-y", `/tmp/${deb2.split("/").pop()}`]);
        assert.equal(r.code, 0, r.stderr + r.stdout);
        await stockRunning();
        assert.equal((await boots()).main, mainBoots, "neither rebooted main");
        await sh("systemctl enable aos-unit");
        for (const c of consoles) c.close();
        const rebooted = performance.now();
        await bed.reboot();
        // The container's /tmp is a fresh tmpfs after the reboot: the packages go back in.
        await bed.cpIn(deb, "/tmp/");
        await bed.cpIn(deb2, "/tmp/");
        await stockRunning(180_000);
        console.log(
          `host reboot -> stock unit READY again: ${Math.round(performance.now() - rebooted)} ms`,
        );
        const log = (await sh("cat /var/log/aos-unit/main-serial.log")).replaceAll("\r", "");
        const lastBoot = log.slice(log.lastIndexOf("AOSTEST boot name=main"));
        assert.match(
          lastBoot,
          /^AOSTEST efivar value=boot-ab-17$/m,
          "read back after the reboot",
        );
        assert.equal(
          (await boots()).main,
          mainBoots + 1,
          "main booted once more, from the host reboot",
        );
        await sh("systemctl disable aos-unit");
        // The snapshot outlived all of that, and a reset of the node it holds.
        assert.deepEqual(
          JSON.parse(await sh("aos-unit snapshot list --json")).map((l: { name: string }) =>
            l.name
          ),
          ["provisioned"],
        );
        await sh("systemctl stop aos-unit");
        assert.match(
          await sh("aos-unit reset secondary"),
          /Snapshots keep their own copy of secondary \(provisioned\)/,
        );
        const r2 = await bed.exec(["aos-unit", "snapshot", "restore", "provisioned"]);
        assert.equal(r2.code, 0, r2.stderr + r2.stdout);
        await stockRunning();
        const log2 = await sh("cat /var/log/aos-unit/secondary-serial.log");
        const counts = [...log2.matchAll(/AOSTEST boot name=secondary count=(\d+)/g)];
        assert.equal(
          Number(counts.at(-1)![1]),
          restoredSecondary,
          "the reset secondary back as saved",
        );
        assert.equal((await bed.exec(["aos-unit", "snapshot", "delete", "provisioned"])).code, 0);
        assert.equal((await sh("ls /var/lib/aos-unit/snapshots")).trim(), "");
      },
    );
  },
};
