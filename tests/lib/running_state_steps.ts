/**
 * Tier 2 steps for running-state snapshots (src/vm/running_state.ts) on running
 * stock-like guests, QEMU as the node units run it, no systemd: every guest paused
 * at one instant, its RAM and devices saved through its migration stream and its
 * disk copied, the guests resumed; then the QEMUs are killed, the disks put back and
 * new QEMUs (`-incoming defer`) load the states. The guests go on from the saved
 * instant: no boot, their sequence writers running, the counters back at the cut.
 */

import assert from "node:assert/strict";
import type { Plan } from "../../src/plan/types.ts";
import { waitFor } from "./proc.ts";
import { QmpSession } from "../../src/vm/qmp.ts";
import { loadState, saveState } from "../../src/vm/running_state.ts";
import type { DevUnit } from "./aos.ts";
import type { SerialConsole } from "./serial.ts";

export interface RunningStateBed {
  unit: DevUnit;
  work: string;
  consoles: Map<string, SerialConsole>;
  plan(): Plan;
  /** Starts every node's QEMU with these arguments added, and connects its console. */
  boot(extra?: string[]): Promise<void>;
  /** Kills every node's QEMU at once (SIGKILL: the guests are discarded, not shut down). */
  kill(): Promise<void>;
}

const SEQ = /AOSTEST seq now=(\d+)/;

async function seqOf(c: SerialConsole): Promise<number> {
  return Number((await c.probe(`echo "AOSTEST seq now=$(aos-probe seq-read)"`, SEQ))[1]);
}

async function sessions(plan: Plan): Promise<Map<string, QmpSession>> {
  const out = new Map<string, QmpSession>();
  for (const n of plan.nodes) out.set(n.name, await QmpSession.open(n.qmpSocket, 5000, n.name));
  return out;
}

export async function runningStateSteps(t: Deno.TestContext, b: RunningStateBed): Promise<void> {
  const dir = `${b.work}/running-state`;
  const seqAtKill = new Map<string, number>();

  await t.step("running state: every guest paused at one instant, saved, resumed", async () => {
    Deno.mkdirSync(dir, { recursive: true });
    const plan = b.plan();
    for (const n of plan.nodes) {
      await b.consoles.get(n.name)!.probe("aos-probe seq-start", /AOSTEST seq started/);
    }
    await new Promise((r) => setTimeout(r, 1000));
    const qmp = await sessions(plan);
    const resumeAll = () => [...qmp.values()].map((s) => s.execute("cont"));
    try {
      const paused = performance.now();
      await Promise.all([...qmp.values()].map((s) => s.execute("stop")));
      const saved = await Promise.all(plan.nodes.map((n) =>
        saveState(
          qmp.get(n.name)!,
          // Where the unit's service user may listen and the node's QEMU reach: its directory.
          { socket: `${n.dir}/state.sock`, file: `${dir}/${n.name}.state` },
          (n.memMiB + 256) * 1024 * 1024,
          60_000,
        )
      ));
      // The migration left every disk flushed: the disk half of the cut.
      for (const n of plan.nodes) Deno.copyFileSync(n.overlay, `${dir}/${n.name}.qcow2`);
      await Promise.all(resumeAll());
      const pause = Math.round(performance.now() - paused);
      console.log(
        `saved ${saved.map((s, i) => `${plan.nodes[i]!.name} ${s.bytes} bytes in ${s.ms} ms`)}; ` +
          `guests paused ${pause} ms`,
      );
      for (const [i, n] of plan.nodes.entries()) {
        assert.ok(saved[i]!.bytes > 1024 * 1024, `${n.name}: a stream with the guest's RAM`);
        assert.ok(saved[i]!.bytes < (n.memMiB + 256) * 1024 * 1024);
      }
    } catch (error) {
      await Promise.allSettled(resumeAll()); // the later steps need running guests
      throw error;
    } finally {
      for (const s of qmp.values()) s.close();
    }
    // They go on after the save: the counters move past the cut.
    await new Promise((r) => setTimeout(r, 1500));
    for (const n of plan.nodes) seqAtKill.set(n.name, await seqOf(b.consoles.get(n.name)!));
  });

  await t.step("snapshot save --memory: the disks and every guest's state, one pause", async () => {
    const plan = b.plan();
    const before = await Promise.all(plan.nodes.map((n) => seqOf(b.consoles.get(n.name)!)));
    const r = await b.unit.cli("snapshot", "save", "--memory", "live");
    assert.equal(r.code, 0, r.stderr);
    console.log(r.stdout.trim());
    assert.match(r.stdout, /running \(guests paused \d+ ms\), with memory/);
    const snap = `${b.unit.stateDir}/snapshots/live`;
    const manifest = JSON.parse(Deno.readTextFileSync(`${snap}/manifest.json`));
    assert.equal(manifest.memory, true);
    for (const n of manifest.nodes) {
      assert.match(n.state.machine, /^pc-q35-\d+\.\d+$/, "the machine type QEMU resolved");
      assert.equal(n.state.bytes, Deno.statSync(`${snap}/${n.name}.state`).size);
      assert.ok(
        !Deno.readDirSync(plan.nodes.find((p) => p.name === n.name)!.dir).some((e) =>
          /pending|state\.sock/.test(e.name)
        ),
      );
    }
    const [listed] = JSON.parse((await b.unit.cli("snapshot", "list", "--json")).stdout);
    assert.equal(listed.memory, true);
    // Running on: the writers moved on past where they were before the save.
    for (const [i, n] of plan.nodes.entries()) {
      assert.ok((await seqOf(b.consoles.get(n.name)!)) > before[i]!, `${n.name} runs on`);
    }
    const stopped = await b.unit.cli("snapshot", "save", "--memory", "x", "--json");
    assert.equal(stopped.code, 0, "--json is list's, and harmless here");
    assert.equal((await b.unit.cli("snapshot", "delete", "x")).code, 0);
    assert.equal((await b.unit.cli("snapshot", "delete", "live")).code, 0);
    assert.equal((await b.unit.cli("snapshot", "list", "--memory")).code, 2, "--memory is save's");
  });

  await t.step(
    "a save killed while the guest waited at its switchover leaves nothing frozen: the next save resumes it",
    async () => {
      const plan = b.plan();
      const n = plan.nodes[0]!;
      const c = b.consoles.get(n.name)!;
      // What a killed `snapshot save --memory` leaves: QEMU paused the guest for the rest
      // of a live copy and waits for a `migrate-continue` nobody sends.
      const socket = `${n.dir}/state.sock`;
      const listener = Deno.listen({ transport: "unix", path: socket });
      Deno.chmodSync(socket, 0o660);
      let stream: Deno.Conn | undefined;
      const drained = listener.accept().then(async (conn) => {
        stream = conn;
        for await (const _ of conn.readable) { /* dropped */ }
      }).catch(() => {});
      const s = await QmpSession.open(n.qmpSocket, 5000, n.name);
      try {
        await s.execute("migrate-set-capabilities", {
          capabilities: [{ capability: "pause-before-switchover", state: true }],
        });
        await s.execute("migrate-set-parameters", { "max-bandwidth": 8 * 1024 ** 3 });
        await s.execute("migrate", { uri: `unix:${socket}` });
        await waitFor(
          "QEMU paused the guest at its switchover",
          async () =>
            (await s.execute("query-migrate") as { status: string }).status === "pre-switchover"
              ? true
              : undefined,
          30_000,
          50,
        );
      } finally {
        // The saver is gone: its session, its listener (and socket file), its stream.
        s.close();
        listener.close();
        try {
          stream?.close();
        } catch { /* closed by QEMU */ }
      }
      await drained;
      const r = await b.unit.cli("snapshot", "save", "after-kill");
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /cancelled the state copy an interrupted save left/);
      const first = await seqOf(c);
      await new Promise((r) => setTimeout(r, 600));
      assert.ok((await seqOf(c)) > first, `${n.name} runs again`);
      assert.equal((await b.unit.cli("snapshot", "delete", "after-kill")).code, 0);
    },
  );

  await t.step("running state: new QEMUs load it and the guests go on without a boot", async () => {
    const plan = b.plan();
    await b.kill();
    for (const n of plan.nodes) Deno.copyFileSync(`${dir}/${n.name}.qcow2`, n.overlay);
    await b.boot(["-incoming", "defer"]);
    const qmp = await sessions(plan);
    try {
      await Promise.all(plan.nodes.map((n) =>
        loadState(
          qmp.get(n.name)!,
          // Where the node's QEMU may listen: its runtime directory.
          { socket: `${n.runDir}/state.sock`, file: `${dir}/${n.name}.state` },
          60_000,
          // The socket must be the QEMU's own: the uid that owns its QMP socket.
          Deno.lstatSync(n.qmpSocket).uid!,
        )
      ));
      for (const s of qmp.values()) {
        assert.equal((await s.execute("query-status") as { status: string }).status, "paused");
      }
      await Promise.all([...qmp.values()].map((s) => s.execute("cont")));
    } finally {
      for (const s of qmp.values()) s.close();
    }
    for (const n of plan.nodes) {
      const c = b.consoles.get(n.name)!;
      const first = await seqOf(c);
      assert.ok(
        first < seqAtKill.get(n.name)!,
        `${n.name}: back at the cut (${first}), before where the killed guest got (${
          seqAtKill.get(n.name)
        })`,
      );
      await new Promise((r) => setTimeout(r, 600));
      assert.ok((await seqOf(c)) > first, `${n.name}: its sequence writer runs on`);
      assert.doesNotMatch(c.text, /AOSTEST boot/, `${n.name} booted`);
      await c.probe("aos-probe seq-stop", /AOSTEST seq stopped/);
    }
  });
}
