/**
 * `aos-unit export kubevirt`: every exported object validates offline (KubeVirt and
 * CDI objects against their OpenAPI specs plus an unknown-key check, the NAD against
 * its CRD, core objects with kubernetes-models), what AosCore needs holds (SCSI disk,
 * one bridge interface, persistent EFI...), planted mistakes are caught, the golden
 * files hold, and the gateway runs the host plan's own dnsmasq configuration.
 */

import assert from "node:assert/strict";
import { parse, parseAllDocuments } from "yaml";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Namespace } from "kubernetes-models/v1/Namespace";
import { Service } from "kubernetes-models/v1/Service";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { loadConfig } from "../../src/config/mod.ts";
import { renderManifests } from "../../src/commands/export.ts";
import { type ExportInput, exportKubevirt, type Manifest } from "../../src/plan/kubevirt.ts";
import { makePlan } from "../../src/plan/mod.ts";
import type { HostFacts } from "../../src/plan/types.ts";
import { FHS_PATHS } from "../../src/host/paths.ts";
import { aosUnit } from "../lib/cli.ts";
import { assertGolden, assertNoUnusedGoldens } from "../lib/golden.ts";
import { type Definitions, type Schema, validate } from "../lib/openapi.ts";

/** Manifests are walked by path here; the schemas above are what types them. */
// deno-lint-ignore no-explicit-any
type Loose = any;

const ROOT = new URL("../../", import.meta.url).pathname;
const SCHEMAS = `${ROOT}tests/fixtures/schemas`;
const GOLDEN = `${ROOT}tests/golden/export`;
const kubevirt = JSON.parse(Deno.readTextFileSync(`${SCHEMAS}/kubevirt.json`))
  .definitions as Definitions;
const cdi = JSON.parse(Deno.readTextFileSync(`${SCHEMAS}/cdi.json`)).definitions as Definitions;
const nadCrd = parse(Deno.readTextFileSync(`${SCHEMAS}/nad-crd.yaml`)) as {
  spec: { versions: { schema: { openAPIV3Schema: Schema } }[] };
};

const STOCK_UNIT = Deno.readTextFileSync(`${ROOT}packaging/examples/unit_config.yaml`);
const STOCK_RUNTIME = Deno.readTextFileSync(`${ROOT}packaging/examples/runtime.conf`);
const ARM_UNIT = `unit:
  node_configs:
    - { name: main, cpu: 2, mem: 2G, ip: 10.0.0.100, arch: arm64, forward: [{ host: 8089, port: 8089 }] }
    - { name: secondary-1, cpu: 1, mem: 1G, arch: arm64 }
    - { name: secondary-2, cpu: 1, mem: 1G, arch: arm64 }
    - { name: secondary-3, cpu: 1, mem: 1536M, arch: arm64 }
`;

function config(unit: string, runtime: string) {
  return loadConfig(
    { path: "runtime.conf", text: runtime },
    { path: "unit_config.yaml", text: unit },
  ).config;
}

function input(unit: string, runtime: string, over: Partial<ExportInput> = {}): ExportInput {
  const c = config(unit, runtime);
  return {
    config: c,
    instances: ["default"],
    namespaceOf: (i) => `aos-unit-${i}`,
    images: Object.fromEntries(
      c.unit.nodes.map((
        n,
      ) => [n.name, { kind: "http", url: `https://images.example/${n.name}.qcow2` }]),
    ),
    diskBytes: Object.fromEntries(c.unit.nodes.map((n) => [n.name, 8.5 * 2 ** 30])),
    gatewayImage: "ghcr.io/aosedge/aos-unit-gateway:test",
    version: "1.2.3",
    ownMacs: false,
    ...over,
  };
}

/** Everything that is wrong with one object, by kind. */
function problems(m: Manifest): string[] {
  switch (m.kind) {
    case "VirtualMachine":
      return [
        ...validate(kubevirt, { $ref: "#/definitions/v1.VirtualMachine" }, m),
        ...((m.spec as { dataVolumeTemplates: { spec: unknown }[] }).dataVolumeTemplates ?? [])
          .flatMap((d, i) =>
            validate(cdi, { $ref: "#/definitions/v1beta1.DataVolumeSpec" }, d.spec, `dv[${i}]`)
          ),
        ...aosCoreNeeds(m),
      ];
    case "NetworkAttachmentDefinition": {
      const out = validate({}, nadCrd.spec.versions[0]!.schema.openAPIV3Schema, m);
      try {
        const conf = JSON.parse((m.spec as { config: string }).config);
        if (conf.type !== "bridge" || JSON.stringify(conf.ipam) !== "{}") {
          out.push("the NAD is not a bridge without IPAM");
        }
      } catch {
        out.push("spec.config is not JSON");
      }
      return out;
    }
    default:
      return core(m);
  }
}

/** Core kinds through kubernetes-models' own validation. */
function core(m: Manifest): string[] {
  const kinds: Record<string, new (m: never) => { validate(): void }> = {
    Namespace,
    ConfigMap,
    Service,
    Deployment,
  };
  const Kind = kinds[String(m.kind)];
  if (!Kind) return [`unexpected kind ${m.kind}`];
  try {
    new Kind(m as never).validate();
    return [];
  } catch (error) {
    return [`${m.kind}: ${(error as Error).message}`];
  }
}

/** What the stock images need, which the schemas cannot say. */
function aosCoreNeeds(vm: Manifest): string[] {
  const s = vm.spec as Record<string, Loose>;
  const t = s.template?.spec ?? {};
  const d = t.domain?.devices ?? {};
  const out: string[] = [];
  if (s.runStrategy !== "Always") out.push("runStrategy is not Always");
  if (d.disks?.length !== 1 || d.disks[0]?.disk?.bus !== "scsi") {
    out.push("the disk is not one SCSI disk");
  }
  if (d.interfaces?.length !== 1 || JSON.stringify(d.interfaces[0]?.bridge) !== "{}") {
    out.push("not exactly one bridge interface");
  }
  if (!/^52:54:00(:[0-9a-f]{2}){3}$/.test(d.interfaces?.[0]?.macAddress ?? "")) out.push("no MAC");
  if (d.autoattachPodInterface !== false) out.push("a pod interface would be attached");
  if (d.autoattachSerialConsole !== true || d.logSerialConsole !== true) out.push("no serial log");
  const efi = t.domain?.firmware?.bootloader?.efi;
  if (efi?.persistent !== true || efi?.secureBoot !== false) out.push("EFI is not persistent");
  if (!/^[0-9a-f-]{36}$/.test(t.domain?.firmware?.uuid ?? "")) out.push("no firmware UUID");
  if (t.networks?.length !== 1 || !t.networks[0]?.multus) out.push("not one multus network");
  if (t.hostname !== vm.metadata && t.hostname !== (vm.metadata as { name: string }).name) {
    out.push("hostname is not the node name");
  }
  return out;
}

const CASES: [string, () => ExportInput][] = [
  ["default", () => input(STOCK_UNIT, STOCK_RUNTIME)],
  [
    "aarch64-4-nodes",
    () =>
      input(ARM_UNIT, STOCK_RUNTIME, { instances: ["arm"], namespaceOf: (i) => `aos-unit-${i}` }),
  ],
  ["count-3", () =>
    input(STOCK_UNIT, STOCK_RUNTIME, {
      instances: ["fleet-1", "fleet-2", "fleet-3"],
      namespaceOf: (i) => `aos-unit-${i}`,
      ownMacs: true,
    })],
];

Deno.test("exportKubevirt(): every object validates, and the golden files hold", async (t) => {
  const used = new Set<string>();
  for (const [name, make] of CASES) {
    await t.step(name, () => {
      const manifests = exportKubevirt(make());
      assert.deepEqual(manifests.flatMap(problems), []);
      assertGolden(`${GOLDEN}/${name}.yaml`, renderManifests(manifests), used);
    });
  }
  assertNoUnusedGoldens(GOLDEN, used, /\.yaml$/);
});

Deno.test("the validation catches a planted mistake", async (t) => {
  const manifests = exportKubevirt(CASES[0]![1]());
  const vm = () => structuredClone(manifests.find((m) => m.kind === "VirtualMachine")!) as Loose;
  const cases: [string, () => Manifest, RegExp][] = [
    ["bus: virtio", () => {
      const m = vm();
      m.spec.template.spec.domain.devices.disks[0].disk.bus = "virtio";
      return m;
    }, /SCSI/],
    ["an unknown key", () => {
      const m = vm();
      m.spec.template.spec.domain.devices.bogus = true;
      return m;
    }, /unknown key "bogus"/],
    ["a missing required field", () => {
      const m = vm();
      delete m.spec.template.spec.domain.devices.interfaces[0].name;
      return m;
    }, /missing required "name"/],
    ["a wrong type", () => {
      const m = vm();
      m.spec.template.spec.domain.cpu.cores = "two";
      return m;
    }, /expected integer/],
    ["a NAD without its config", () => {
      const m = structuredClone(
        manifests.find((x) => x.kind === "NetworkAttachmentDefinition")!,
      ) as Loose;
      delete m.spec.config;
      return m;
    }, /missing required "config"/],
    ["a Deployment without containers", () => {
      const m = structuredClone(manifests.find((x) => x.kind === "Deployment")!) as Loose;
      m.spec.template.spec.containers = "gateway";
      return m;
    }, /Deployment: .*containers/],
  ];
  for (const [name, plant, message] of cases) {
    await t.step(name, () => {
      const found = problems(plant());
      assert.ok(
        found.some((p) => message.test(p)),
        `not caught: ${found.join("; ") || "no problem"}`,
      );
    });
  }
});

Deno.test("the gateway's dnsmasq configuration is the host plan's, apart from its interface lines", () => {
  const c = config(STOCK_UNIT, STOCK_RUNTIME);
  const facts: HostFacts = {
    machineId: "5f2b8c9d0e1a4b3c8d7e6f5a4b3c2d1e",
    hostArch: "x86_64",
    kvmUsable: false,
    firmware: {},
    emulators: { x86_64: true },
    images: [],
    serviceUser: "aos-unit",
    executable: "/usr/bin/aos-unit",
    leaseHook: "/usr/libexec/aos-unit/lease-hook",
    nodeStopHook: "/usr/libexec/aos-unit/node-stop",
    nodeStoppedHook: "/usr/libexec/aos-unit/node-stopped",
    systemdVersion: 252,
    uplinks: ["eth0"],
  };
  const host = makePlan(c, facts, FHS_PATHS).dnsmasq.conf.split("\n");
  const cm = exportKubevirt(input(STOCK_UNIT, STOCK_RUNTIME)).find((m) => m.kind === "ConfigMap")!;
  const gateway = ((cm.data as Record<string, string>)["dnsmasq.conf"]!).split("\n");
  // Where dnsmasq runs and what it hands leases to differ; the DHCP and DNS plan does not.
  const local =
    /^(interface|user|dhcp-leasefile|dhcp-script|script-on-renewal|no-resolv|server|resolv-file)(=|$)/;
  assert.deepEqual(gateway.filter((l) => !local.test(l)), host.filter((l) => !local.test(l)));
  assert.ok(gateway.includes("interface=net1"));
});

Deno.test("aos-unit export kubevirt: a node without a source exits 2 naming it; the output parses", async () => {
  const dir = await Deno.makeTempDir();
  try {
    Deno.writeTextFileSync(`${dir}/unit_config.yaml`, STOCK_UNIT);
    Deno.writeTextFileSync(`${dir}/runtime.conf`, STOCK_RUNTIME);
    const missing = await aosUnit([
      "export",
      "kubevirt",
      "-c",
      dir,
      "--image",
      "main=https://x/m.qcow2",
    ]);
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, /No image source for "secondary": give --image secondary=SOURCE/);
    const ok = await aosUnit([
      "export",
      "kubevirt",
      "-c",
      dir,
      "--count",
      "2",
      "--image",
      "main=https://x/m.qcow2",
      "--image",
      "secondary=pvc:golden/secondary",
      "--disk-size",
      "main=16Gi",
      "--disk-size",
      "secondary=16Gi",
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    const docs = parseAllDocuments(ok.stdout).map((d) => d.toJSON() as Manifest);
    assert.deepEqual(
      [
        ...new Set(docs.map((d) =>
          (d.metadata as { namespace?: string; name: string }).namespace ??
            (d.metadata as { name: string }).name
        )),
      ],
      ["aos-unit-default-1", "aos-unit-default-2"],
    );
    assert.deepEqual(docs.flatMap(problems), []);
    const bad = await aosUnit([
      "export",
      "kubevirt",
      "-c",
      dir,
      "--image",
      "main=ftp://x",
      "--image",
      "secondary=pvc:a/b",
    ]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /SOURCE must be an http\(s\):\/\/ URL/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
