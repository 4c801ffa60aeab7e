import assert from "node:assert/strict";
import { planCase } from "../../tests/golden/plan_golden_test.ts";
import {
  type FileIdentity,
  formatSnapshotList,
  isSnapshotName,
  manifestPath,
  snapshotDifferences,
  snapshotDisk,
  type SnapshotManifest,
  snapshotNode,
} from "./snapshot.ts";
import type { Plan } from "./types.ts";

function imagesOf(plan: Plan): Map<string, FileIdentity> {
  return new Map(plan.nodes.map((n) => [n.name, {
    path: n.image.path,
    size: 1 << 30,
    mtime: "2026-11-30T10:00:00.000Z",
    ino: 42,
  }]));
}

function manifestOf(plan: Plan): SnapshotManifest {
  const images = imagesOf(plan);
  return {
    format: 1,
    name: "provisioned",
    time: "2026-12-01T10:00:00.000Z",
    running: true,
    pauseMs: 40,
    nodes: plan.nodes.map((n) => snapshotNode(n, images.get(n.name)!, true, n.address)),
    leases: { state: null, dnsmasq: null },
  };
}

Deno.test("snapshot names: a file name of their own, nothing that walks out", () => {
  for (const ok of ["provisioned", "before-ota_2", "A1", "x".repeat(63)]) {
    assert.ok(isSnapshotName(ok), ok);
  }
  for (const bad of ["", "..", "../x", "a/b", "-x", ".hidden", "a b", "x".repeat(64), "ü"]) {
    assert.equal(isSnapshotName(bad), false, bad);
  }
});

Deno.test("a snapshot is one directory: the manifest and every node's files", () => {
  const { plan } = planCase("default");
  assert.equal(
    snapshotDisk(plan.paths, "main", "provisioned"),
    "/var/lib/aos-unit/snapshots/provisioned/main.qcow2",
  );
  assert.equal(
    manifestPath(plan.paths, "provisioned"),
    "/var/lib/aos-unit/snapshots/provisioned/manifest.json",
  );
});

Deno.test("a snapshot fits the plan it was made from, and names every difference otherwise", () => {
  const { plan } = planCase("default");
  const manifest = manifestOf(plan);
  assert.deepEqual(snapshotDifferences(manifest, plan, imagesOf(plan)), []);
  // CPU and memory may change: disks and UEFI state do not depend on them.
  const bigger = structuredClone(manifest);
  bigger.nodes[0]!.fingerprint = "0000000000000000";
  assert.deepEqual(snapshotDifferences(bigger, plan, imagesOf(plan)), []);

  const changed = structuredClone(manifest);
  changed.nodes[0]!.image.mtime = "2026-11-01T10:00:00.000Z";
  changed.nodes[1]!.mac = "52:54:00:00:00:01";
  changed.nodes.push({ ...changed.nodes[1]!, name: "gone" });
  const images = imagesOf(plan);
  images.delete("secondary");
  assert.deepEqual(snapshotDifferences(changed, plan, images), [
    "node gone is in the snapshot but no longer in the configuration",
    "node main: image /var/lib/aos-unit/aos-vm-main-amd64.qcow2 changed since the snapshot (2026-11-01T10:00:00.000Z -> 2026-11-30T10:00:00.000Z)",
    "node secondary: its image /var/lib/aos-unit/aos-vm-secondary-amd64.qcow2 is missing",
    `node secondary: MAC 52:54:00:00:00:01 -> ${plan.nodes[1]!.mac}`,
  ]);
  const fewer = structuredClone(manifest);
  fewer.nodes.pop();
  assert.deepEqual(snapshotDifferences(fewer, plan, imagesOf(plan)), [
    "node secondary is in the configuration but not in the snapshot",
  ]);
});

Deno.test("snapshot list: a table with time, nodes, size and how it was taken", () => {
  assert.equal(
    formatSnapshotList([]),
    "No snapshots. Make one: aos-unit snapshot save NAME\n",
  );
  assert.equal(
    formatSnapshotList([
      {
        name: "provisioned",
        time: "2026-12-01T10:00:00.000Z",
        running: true,
        pauseMs: 41,
        memory: false,
        nodes: 2,
        diskBytes: 10066329,
      },
      {
        name: "cold",
        time: "2026-12-01T11:00:00.000Z",
        running: false,
        pauseMs: null,
        memory: false,
        nodes: 2,
        diskBytes: 512,
      },
      {
        name: "live",
        time: "2026-12-01T12:00:00.000Z",
        running: true,
        pauseMs: 622,
        memory: true,
        nodes: 2,
        diskBytes: 180 * 1024 * 1024,
      },
    ]),
    "NAME         TIME                      NODES  SIZE       TAKEN\n" +
      "provisioned  2026-12-01T10:00:00.000Z  2      9.6 MiB    running (paused 41 ms)\n" +
      "cold         2026-12-01T11:00:00.000Z  2      512 B      stopped\n" +
      "live         2026-12-01T12:00:00.000Z  2      180.0 MiB  running (paused 622 ms), with memory\n",
  );
});
