import assert from "node:assert/strict";
import {
  isRelevantRouteEvent,
  isTableTamper,
  newDefaultRouteDevice,
  settleDelay,
} from "./monitor.ts";

Deno.test("settleDelay() waits for quiet, but never past the cap from the first event", () => {
  // A lone event: the full debounce.
  assert.equal(settleDelay(1000, 1000, 250, 1000), 250);
  // Events keep coming: the debounce restarts...
  assert.equal(settleDelay(1000, 1500, 250, 1000), 250);
  // ...until the cap: only what is left of it.
  assert.equal(settleDelay(1000, 1900, 250, 1000), 100);
  assert.equal(settleDelay(1000, 2500, 250, 1000), 0);
});

Deno.test("isRelevantRouteEvent() keeps default routes and link changes only", () => {
  assert.ok(isRelevantRouteEvent("default via 10.202.0.1 dev uplink2 "));
  assert.ok(isRelevantRouteEvent("Deleted default via 10.202.0.1 dev uplink2 "));
  assert.ok(isRelevantRouteEvent("3: uplink1: <BROADCAST,MULTICAST> mtu 1500 state DOWN"));
  assert.ok(!isRelevantRouteEvent("10.200.1.0/24 dev aosbr5f2b8c proto kernel scope link"));
  assert.ok(!isRelevantRouteEvent(""));
});

Deno.test("isTableTamper() notices deletions and flushes of our tables", () => {
  assert.ok(isTableTamper("delete table inet aos_unit", "aos_unit"));
  assert.ok(isTableTamper("delete table bridge aos_unit", "aos_unit"));
  assert.ok(isTableTamper("flush ruleset", "aos_unit"));
  assert.ok(!isTableTamper("delete table inet other", "aos_unit"));
  assert.ok(!isTableTamper("add rule inet aos_unit forward ...", "aos_unit"));
});

Deno.test("newDefaultRouteDevice() names the interface of a new default route only", () => {
  assert.equal(newDefaultRouteDevice("default via 10.202.2.1 dev uplink2 metric 100 "), "uplink2");
  assert.equal(newDefaultRouteDevice("default dev wg0 scope link"), "wg0");
  assert.equal(newDefaultRouteDevice("Deleted default via 10.202.1.1 dev uplink1 "), undefined);
  assert.equal(newDefaultRouteDevice("3: uplink1: <BROADCAST> state DOWN"), undefined);
  // IPv6 defaults (router advertisements) never widen the fence.
  assert.equal(
    newDefaultRouteDevice("default via fe80::1 dev eth1 proto ra metric 1024 pref medium"),
    undefined,
  );
  assert.equal(newDefaultRouteDevice("default dev wg0 metric 1024 pref medium"), undefined);
});
