import assert from "node:assert/strict";
import { planCase } from "../../tests/golden/plan_golden_test.ts";
import {
  type FileIdentity,
  formatResumeRecord,
  formatSnapshotList,
  incomingSocket,
  isSnapshotName,
  machineAliases,
  manifestPath,
  parseResumeRecord,
  resumeRequest,
  resumingRecord,
  snapshotDifferences,
  snapshotDisk,
  type SnapshotManifest,
  snapshotNode,
  stateDifferences,
} from "./snapshot.ts";
import type { Plan } from "./types.ts";
import { FHS_PATHS, unitPaths } from "../host/paths.ts";

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

const MACHINE_HELP = `Supported machines are:
microvm              microvm (i386)
pc                   Standard PC (i440FX + PIIX, 1996) (alias of pc-i440fx-7.2)
q35                  Standard PC (Q35 + ICH9, 2009) (alias of pc-q35-7.2)
pc-q35-7.2           Standard PC (Q35 + ICH9, 2009)
pc-q35-7.1           Standard PC (Q35 + ICH9, 2009)
virt                 QEMU 7.2 ARM Virtual Machine (alias of virt-7.2)
`;

Deno.test("machineAliases(): QEMU's aliases as its -machine help lists them", () => {
  assert.deepEqual(
    [...machineAliases(MACHINE_HELP)],
    [["pc", "pc-i440fx-7.2"], ["q35", "pc-q35-7.2"], ["virt", "virt-7.2"]],
  );
});

Deno.test("a memory snapshot fits only QEMUs with the same memory, CPUs, model, accelerator and machine", () => {
  const { plan } = planCase("default");
  const aliases = machineAliases(MACHINE_HELP);
  const resolve = (_arch: string, m: string) => aliases.get(m) ?? m;
  const saved = manifestOf(plan);
  const memory: SnapshotManifest = {
    ...saved,
    memory: true,
    nodes: saved.nodes.map((n, i) => {
      const p = plan.nodes[i]!;
      return {
        ...n,
        state: {
          bytes: 1,
          memMiB: p.memMiB,
          cpu: p.cpu,
          cpuType: p.cpuType,
          accel: p.accel,
          machine: resolve(p.arch, p.machineType),
        },
      };
    }),
  };
  assert.deepEqual(stateDifferences(memory, plan, resolve), []);
  assert.deepEqual(stateDifferences(saved, plan, () => "other"), [], "no memory: nothing to fit");
  const main = plan.nodes[0]!;
  // Plans hold functions (unit names): a copy with other nodes, not a deep clone.
  const withNodes = (f: (n: Plan["nodes"][number], i: number) => Partial<Plan["nodes"][number]>) =>
    ({ ...plan, nodes: plan.nodes.map((n, i) => ({ ...n, ...f(n, i) })) }) as Plan;
  const changed = withNodes((n, i) =>
    i === 0 ? { memMiB: n.memMiB * 2, accel: n.accel === "kvm" ? "tcg" : "kvm" } : {}
  );
  const newer = (_a: string, m: string) => m === "q35" ? "pc-q35-8.0" : resolve(_a, m);
  assert.deepEqual(stateDifferences(memory, changed, newer), [
    `node ${main.name}: memory ${main.memMiB} MiB -> ${main.memMiB * 2} MiB`,
    `node ${main.name}: accelerator ${main.accel} -> ${changed.nodes[0]!.accel}`,
    `node ${main.name}: machine pc-q35-7.2 -> pc-q35-8.0`,
    // The default case's model is max (TCG): under KVM that is the host's CPU.
    ...(main.cpuType === "max"
      ? [`node ${main.name}: CPU model max under KVM is the host's CPU, not migration-safe`]
      : []),
    ...plan.nodes.slice(1).map((n) => `node ${n.name}: machine pc-q35-7.2 -> pc-q35-8.0`),
  ]);
  const maxKvm = structuredClone(memory);
  const kvm = withNodes(() => ({ accel: "kvm", cpuType: "max" }));
  for (const n of maxKvm.nodes) [n.state!.accel, n.state!.cpuType] = ["kvm", "max"];
  assert.match(
    stateDifferences(maxKvm, kvm, resolve).join("\n"),
    /max under KVM .* not migration-safe/,
  );
});

Deno.test("a restore's resume record names a snapshot and nothing else", () => {
  const text = formatResumeRecord({ snapshot: "live" });
  assert.deepEqual(parseResumeRecord(text), { snapshot: "live" });
  for (const bad of ["", "{}", '{"snapshot":"../x"}', '{"snapshot":1}', "not json"]) {
    assert.equal(parseResumeRecord(bad), undefined, bad);
  }
  const { plan } = planCase("default");
  // Root's own directory, which every unit's broker shares: a name per unit.
  assert.equal(resumeRequest(plan.paths), "/run/aos-unit-root/resume.json");
  assert.equal(resumingRecord(plan.paths), "/run/aos-unit-root/resume.taken.json");
  const lab = unitPaths({ ...FHS_PATHS }, "lab");
  assert.equal(resumeRequest(lab), "/run/aos-unit-root/resume@lab.json");
  const main = plan.nodes[0]!;
  assert.equal(incomingSocket(main), `${main.runDir}/incoming.sock`);
});
