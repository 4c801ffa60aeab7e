/**
 * Every plan artifact for every scenario, compared with checked-in files.
 * Regenerate on purpose only: UPDATE_GOLDEN=1 deno task test:unit
 */

import assert from "node:assert/strict";
import { loadConfig } from "../../src/config/mod.ts";
import { FHS_PATHS, unitPaths } from "../../src/host/paths.ts";
import { makePlan } from "../../src/plan/mod.ts";
import { renderPlanText } from "../../src/plan/render.ts";
import type { HostFacts } from "../../src/plan/types.ts";
import { assertGolden, assertNoUnusedGoldens } from "../lib/golden.ts";

const HERE = new URL(".", import.meta.url).pathname.replace(/\/$/, "");
const CASES_DIR = `${HERE}/cases`;
const EXPECTED_DIR = `${HERE}/expected`;

/** One line per scenario; inputs in cases/<name>/, outputs in expected/<name>.*. */
export const CASES = [
  "default",
  "aoscore",
  "slash30",
  "slash16",
  "aarch64-tcg",
  "x86-kvm",
  "uefi-off",
  "explicit-images",
  "pinned-uplink",
  "arm-host-kvm",
  "trixie",
  "extension-keys",
  "stock-forwards",
  "named-unit",
];

export const MACHINE_ID = "5f2b8c9d0e1a4b3c8d7e6f5a4b3c2d1e";

export function caseFacts(name: string): HostFacts {
  const overrides = JSON.parse(readOr(`${CASES_DIR}/${name}/facts.json`, "{}")) as {
    images?: string[];
    kvmUsable?: boolean;
    hostArch?: "x86_64" | "aarch64";
    uplinks?: string[];
    systemdVersion?: number;
  };
  return {
    machineId: MACHINE_ID,
    hostArch: overrides.hostArch ?? "x86_64",
    kvmUsable: overrides.kvmUsable ?? false,
    firmware: {
      x86_64: { code: "/usr/share/OVMF/OVMF_CODE_4M.fd", vars: "/usr/share/OVMF/OVMF_VARS_4M.fd" },
      aarch64: { code: "/usr/share/AAVMF/AAVMF_CODE.fd", vars: "/usr/share/AAVMF/AAVMF_VARS.fd" },
    },
    emulators: { x86_64: true, aarch64: true },
    images: (overrides.images ?? []).map((n) => ({ name: n, readable: true })),
    serviceUser: "aos-unit",
    executable: "/usr/bin/aos-unit",
    leaseHook: "/usr/libexec/aos-unit/lease-hook",
    nodeStopHook: "/usr/libexec/aos-unit/node-stop",
    nodeStoppedHook: "/usr/libexec/aos-unit/node-stopped",
    systemdVersion: overrides.systemdVersion ?? 252,
    uplinks: overrides.uplinks ?? ["eth0"],
  };
}

function readOr(path: string, fallback: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return fallback;
  }
}

/** Plans a case exactly as `aos-unit plan` would, with config paths shown relative. */
export function planCase(name: string) {
  const dir = `${CASES_DIR}/${name}`;
  const runtimeText = readOr(`${dir}/runtime.conf`, "");
  const { config, warnings } = loadConfig(
    runtimeText === ""
      ? { path: `${name}/runtime.conf`, missing: true }
      : { path: `${name}/runtime.conf`, text: runtimeText },
    { path: `${name}/unit_config.yaml`, text: Deno.readTextFileSync(`${dir}/unit_config.yaml`) },
  );
  // A case for a named unit (aos-unit@NAME) says which in facts.json: { "unit": "NAME" }.
  const { unit } = JSON.parse(readOr(`${dir}/facts.json`, "{}")) as { unit?: string };
  return { plan: makePlan(config, caseFacts(name), unitPaths(FHS_PATHS, unit)), warnings };
}

const used = new Set<string>();

Deno.test("plan golden files", async (t) => {
  assert.equal(new Set(CASES).size, CASES.length, "duplicate case names");
  const dirs = [...Deno.readDirSync(CASES_DIR)].filter((e) => e.isDirectory).map((e) => e.name)
    .sort();
  assert.deepEqual(
    dirs,
    [...CASES].sort(),
    "every case directory is listed in CASES and vice versa",
  );

  for (const name of CASES) {
    await t.step(`makePlan() for ${name}`, () => {
      const { plan, warnings } = planCase(name);
      const out = (ext: string, text: string) =>
        assertGolden(`${EXPECTED_DIR}/${name}.${ext}`, text, used);
      out(
        "qemu.args",
        plan.nodes.map((n) => `# node ${n.name}\n${n.qemu.join("\n")}\n`).join("\n"),
      );
      out("nft", plan.nft.ruleset);
      if (plan.nft.link) out("link.nft", plan.nft.link);
      out("dnsmasq.conf", plan.dnsmasq.conf);
      out(
        "unit.json",
        JSON.stringify(
          [...plan.nodes.map((n) => n.unit), plan.dnsmasq.unit],
          null,
          2,
        ) + "\n",
      );
      out("plan.txt", renderPlanText(plan));
      out(
        "warnings",
        [...warnings, ...plan.warnings].map((w) => `${w.file}:${w.line}:${w.column}: ${w.message}`)
          .join("\n") +
          "\n",
      );
    });
  }
  await t.step("no unused golden files", () => assertNoUnusedGoldens(EXPECTED_DIR, used));
});
