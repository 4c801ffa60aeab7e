import assert from "node:assert/strict";
import { classify, gaveUp, pending, SETTLED_FAILURE_MS, statusLine } from "./node_state.ts";
import type { UnitState } from "./systemd1.ts";

const NOW = 1_800_000_000_000_000; // usec

function state(partial: Partial<UnitState>): UnitState {
  return {
    name: "aos-node-main.service",
    loadState: "loaded",
    activeState: "active",
    subState: "running",
    result: "success",
    nRestarts: 0,
    activeEnterUsec: NOW - 10_000_000,
    stateChangeUsec: NOW - 10_000_000,
    mainPid: 42,
    ...partial,
  };
}

Deno.test("gaveUp() is never a momentary failed state", async (t) => {
  const cases: [string, Partial<UnitState>, boolean][] = [
    [
      "start-limit-hit",
      { activeState: "failed", result: "start-limit-hit", stateChangeUsec: NOW },
      true,
    ],
    ["failed, on its way to auto-restart", {
      activeState: "failed",
      result: "signal",
      stateChangeUsec: NOW - 1000,
    }, false],
    [
      "failed for longer than the way to auto-restart takes (systemd 252 keeps the crash's result)",
      {
        activeState: "failed",
        result: "exit-code",
        stateChangeUsec: NOW - SETTLED_FAILURE_MS * 1000,
      },
      true,
    ],
    ["active", {}, false],
    [
      "auto-restart",
      { activeState: "activating", subState: "auto-restart", result: "signal" },
      false,
    ],
  ];
  for (const [name, partial, expected] of cases) {
    await t.step(name, () => assert.equal(gaveUp(state(partial), NOW), expected));
  }
  assert.equal(gaveUp(undefined, NOW), false);
});

Deno.test("classify() maps unit states to what READY and STATUS need", async (t) => {
  const cases: [string, UnitState | undefined, boolean, string][] = [
    ["not loaded", undefined, false, "stopped"],
    ["active and answering", state({}), true, "ready"],
    ["active, not answering yet", state({}), false, "starting"],
    ["starting", state({ activeState: "activating", subState: "start" }), false, "starting"],
    [
      "between a crash and the restart",
      state({ activeState: "activating", subState: "auto-restart" }),
      false,
      "restarting",
    ],
    [
      "momentarily failed",
      state({ activeState: "failed", result: "signal", stateChangeUsec: NOW }),
      false,
      "restarting",
    ],
    ["given up", state({ activeState: "failed", result: "start-limit-hit" }), false, "gave-up"],
    [
      "inactive (the guest powered itself off)",
      state({ activeState: "inactive", subState: "dead" }),
      false,
      "stopped",
    ],
  ];
  for (const [name, s, answered, expected] of cases) {
    await t.step(name, () => assert.equal(classify(s, answered, NOW), expected));
  }
  assert.equal(pending("starting"), true);
  assert.equal(pending("restarting"), true);
  for (const c of ["ready", "gave-up", "stopped"] as const) assert.equal(pending(c), false);
});

Deno.test("statusLine() names ready nodes with addresses and every problem", () => {
  const dnsmasq = { name: "dnsmasq", gaveUp: false };
  assert.equal(
    statusLine(
      [
        { name: "main", condition: "ready", address: "10.200.1.100" },
        { name: "secondary", condition: "starting", address: undefined },
      ],
      dnsmasq,
      "starting",
    ),
    "1/2 nodes ready (waiting for secondary)",
  );
  assert.equal(
    statusLine(
      [
        { name: "main", condition: "starting", address: undefined },
        { name: "secondary", condition: "gave-up", address: undefined },
      ],
      dnsmasq,
      "starting",
    ),
    "0/2 nodes ready (waiting for main); failed: secondary",
  );
  assert.equal(
    statusLine(
      [
        { name: "main", condition: "ready", address: "10.200.1.100" },
        { name: "secondary", condition: "ready", address: "10.200.1.231" },
      ],
      dnsmasq,
      "running",
    ),
    "Running: main=10.200.1.100 secondary=10.200.1.231",
  );
  assert.equal(
    statusLine(
      [
        { name: "main", condition: "ready", address: "10.200.1.100" },
        { name: "secondary", condition: "gave-up", address: "10.200.1.231" },
      ],
      { name: "dnsmasq", gaveUp: true },
      "running",
    ),
    "Degraded: main=10.200.1.100; secondary gave-up, dnsmasq gave up (DHCP and DNS down)",
  );
});

Deno.test("statusLine() in a running unit calls a node that never answered silent, with why", () => {
  assert.equal(
    statusLine(
      [
        { name: "main", condition: "ready", address: "10.0.0.100" },
        { name: "secondary", condition: "starting", address: "10.0.0.131" },
        {
          name: "third",
          condition: "starting",
          address: "10.0.0.20",
          note: "its image configures 10.0.0.120/24",
        },
      ],
      { name: "dnsmasq", gaveUp: false },
      "running",
    ),
    "Degraded: main=10.0.0.100; secondary silent at 10.0.0.131, third silent at 10.0.0.20 (its image configures 10.0.0.120/24)",
  );
});
