import assert from "node:assert/strict";
import { type Answer, judgeNode, readReadiness, stillReady, writeReadiness } from "./readiness.ts";
import type { UnitState } from "./systemd1.ts";

const NOW = 1_800_000_000_000_000; // usec
const SINCE = NOW - 10_000_000;

function running(partial: Partial<UnitState> = {}): UnitState {
  return {
    name: "aos-node-secondary.service",
    loadState: "loaded",
    activeState: "active",
    subState: "running",
    result: "success",
    nRestarts: 0,
    activeEnterUsec: SINCE,
    stateChangeUsec: SINCE,
    mainPid: 42,
    ...partial,
  };
}

const answer = (address: string, since = SINCE): Answer => ({
  since,
  address,
  at: "2026-12-07T00:00:00.000Z",
});

Deno.test("a DHCP node that answers but has no lease record is not ready", () => {
  // It answered at its planned pool address; nothing a user reads knows that address yet.
  const v = judgeNode("secondary", {
    state: running(),
    leaseIp: undefined,
    reserved: undefined,
    answer: answer("10.200.1.140"),
  }, NOW);
  assert.equal(v.condition, "starting");
  assert.equal(v.address, null);
  assert.equal(v.answeredAt, null);
  assert.equal(stillReady(v, SINCE), false);
});

Deno.test("judgeNode(): ready only at the leased or reserved address, in this activation", async (t) => {
  await t.step("a DHCP node answering at its recorded lease is ready", () => {
    const v = judgeNode("secondary", {
      state: running(),
      leaseIp: "10.200.1.140",
      reserved: undefined,
      answer: answer("10.200.1.140"),
    }, NOW);
    assert.deepEqual(
      [v.condition, v.address, v.source, v.activeSinceUsec],
      ["ready", "10.200.1.140", "lease", SINCE],
    );
    assert.equal(stillReady(v, SINCE), true);
  });
  await t.step("a static node is judged at its reservation without any lease", () => {
    const v = judgeNode("main", {
      state: running(),
      leaseIp: undefined,
      reserved: "10.0.0.100",
      answer: answer("10.0.0.100"),
    }, NOW);
    assert.deepEqual([v.condition, v.source], ["ready", "reservation"]);
  });
  await t.step("an answer at another address than the lease now records does not count", () => {
    const v = judgeNode("secondary", {
      state: running(),
      leaseIp: "10.200.1.141",
      reserved: undefined,
      answer: answer("10.200.1.140"),
    }, NOW);
    assert.equal(v.condition, "starting");
  });
  await t.step("an answer from the unit's previous activation does not count", () => {
    const v = judgeNode("secondary", {
      state: running({ activeEnterUsec: SINCE + 1 }),
      leaseIp: "10.200.1.140",
      reserved: undefined,
      answer: answer("10.200.1.140"),
    }, NOW);
    assert.equal(v.condition, "starting");
  });
  await t.step("a unit that is not active is never ready, whatever answered", () => {
    const v = judgeNode("secondary", {
      state: running({ activeState: "activating", subState: "auto-restart" }),
      leaseIp: "10.200.1.140",
      reserved: undefined,
      answer: answer("10.200.1.140"),
    }, NOW);
    assert.equal(v.condition, "restarting");
    assert.equal(v.activeSinceUsec, 0);
  });
  await t.step("status: a ready verdict for an earlier activation no longer holds", () => {
    const v = judgeNode("secondary", {
      state: running(),
      leaseIp: "10.200.1.140",
      reserved: undefined,
      answer: answer("10.200.1.140"),
    }, NOW);
    assert.equal(stillReady(v, SINCE + 5), false);
    assert.equal(stillReady(undefined, SINCE), false);
  });
});

Deno.test("the readiness record round-trips; anything else reads as no record", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const file = `${dir}/readiness.json`;
    assert.equal(readReadiness(file), undefined);
    const record = {
      version: 1 as const,
      at: "2026-12-07T00:00:00.000Z",
      phase: "running" as const,
      nodes: [judgeNode("main", {
        state: running(),
        leaseIp: undefined,
        reserved: "10.0.0.100",
        answer: answer("10.0.0.100"),
      }, NOW)],
    };
    writeReadiness(file, record);
    assert.deepEqual(readReadiness(file), record);
    Deno.writeTextFileSync(file, '{"version": 2}');
    assert.equal(readReadiness(file), undefined);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
