/**
 * `aos-unit export kubevirt [--unit NAME | -c DIR] [--namespace NS] [--count N]
 * [--image NODE=SOURCE ...] [--disk-size NODE=SIZE ...] [--gateway-image IMAGE]`:
 * the unit definition as KubeVirt manifests on stdout (`kubectl apply -f -`).
 * The objects come from the planner (plan/kubevirt.ts); nothing on this host is
 * changed. Each disk is sized from the local base image's virtual size when that
 * image is here, or from --disk-size.
 */

import { stringify } from "yaml";
import type { Config } from "../base/config_types.ts";
import { UsageError } from "../base/errors.ts";
import { DEFAULT_UNIT_LABEL } from "../base/unit_identity.ts";
import { VERSION } from "../base/version.ts";
import { loadConfigFiles } from "../host/config_files.ts";
import { hostArch, listImages } from "../host/facts.ts";
import { imageVirtualSize } from "../host/image/inspect.ts";
import { chooseImage } from "../plan/images.ts";
import { exportKubevirt, type ImageSource } from "../plan/kubevirt.ts";
import { join } from "../plan/layout.ts";
import type { CommandContext } from "./_context.ts";
import { type CommandSpec, listOpt, stringOpt } from "./_spec.ts";

export const DEFAULT_GATEWAY_IMAGE = "ghcr.io/aosedge/aos-unit-gateway:latest";
const MAX_COUNT = 100;
/** A Kubernetes namespace: a DNS label of at most 63 characters. */
const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export interface ExportOptions {
  target: string;
  namespace: string | undefined;
  count: string | undefined;
  images: string[];
  diskSizes: string[];
  gatewayImage: string | undefined;
}

/** NODE=VALUE pairs; an unknown node or a pair without "=" is a usage error. */
function pairs(list: readonly string[], option: string, config: Config): Map<string, string> {
  const out = new Map<string, string>();
  for (const item of list) {
    const eq = item.indexOf("=");
    const node = item.slice(0, eq);
    if (eq <= 0 || !config.unit.nodes.some((n) => n.name === node)) {
      throw new UsageError(
        `${option} ${item}: expected NODE=VALUE with NODE one of ${
          config.unit.nodes.map((n) => n.name).join(", ")
        }`,
      );
    }
    out.set(node, item.slice(eq + 1));
  }
  return out;
}

/** SOURCE: an http(s) URL of a qcow2, pvc:NAMESPACE/NAME, or a docker:// registry reference. */
export function parseSource(node: string, text: string): ImageSource {
  if (/^https?:\/\/\S+$/.test(text)) return { kind: "http", url: text };
  if (/^docker:\/\/\S+$/.test(text)) return { kind: "registry", url: text };
  const pvc = /^pvc:([a-z0-9][a-z0-9-]*)\/([a-z0-9][a-z0-9.-]*)$/.exec(text);
  if (pvc) return { kind: "pvc", namespace: pvc[1]!, name: pvc[2]! };
  throw new UsageError(
    `--image ${node}=${text}: SOURCE must be an http(s):// URL of a qcow2, pvc:NAMESPACE/NAME or docker://REFERENCE`,
  );
}

/** 20Gi, 512Mi, 20G, or bytes. */
export function parseSize(node: string, text: string): number {
  const m = /^([0-9]+)(Ki|Mi|Gi|Ti|K|M|G|T)?$/.exec(text);
  if (!m) throw new UsageError(`--disk-size ${node}=${text}: a size like 20Gi, 512Mi or bytes`);
  const unit = {
    Ki: 2 ** 10,
    Mi: 2 ** 20,
    Gi: 2 ** 30,
    Ti: 2 ** 40,
    K: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
  };
  return Number(m[1]) * (m[2] ? unit[m[2] as keyof typeof unit] : 1);
}

/** Instance names: the unit's, or NAME-1..NAME-N. */
function instances(unit: string, countText: string | undefined): string[] {
  const count = countText === undefined ? 1 : Number(countText);
  if (!Number.isInteger(count) || count < 1 || count > MAX_COUNT) {
    throw new UsageError(`--count must be a whole number from 1 to ${MAX_COUNT}, got ${countText}`);
  }
  return count === 1 && countText === undefined
    ? [unit]
    : Array.from({ length: count }, (_, i) => `${unit}-${i + 1}`);
}

/** Each node's disk: --disk-size, else the local base image's virtual size. */
function diskSizes(ctx: CommandContext, config: Config, given: Map<string, string>) {
  const files = listImages(ctx.paths.imagesDir);
  const out: Record<string, number> = {};
  for (const node of config.unit.nodes) {
    const text = given.get(node.name);
    if (text !== undefined) {
      out[node.name] = parseSize(node.name, text);
      continue;
    }
    const image = chooseImage(node.name, node.arch ?? hostArch(), node.image, files);
    const size = image.found ? imageVirtualSize(join(ctx.paths.imagesDir, image.file)) : undefined;
    if (size === undefined) {
      throw new UsageError(
        `Cannot size node "${node.name}"'s disk: its image is not in ${ctx.paths.imagesDir}; give --disk-size ${node.name}=SIZE (at least the qcow2's virtual size, e.g. 16Gi)`,
      );
    }
    out[node.name] = size;
  }
  return out;
}

export function exportCommand(ctx: CommandContext, o: ExportOptions): number {
  if (o.target !== "kubevirt") {
    throw new UsageError(`Cannot export to "${o.target}": the only target is kubevirt`);
  }
  // The unit's name (dispatch checked it) names the namespace; the default unit's is "default".
  const unit = ctx.paths.unit ?? DEFAULT_UNIT_LABEL;
  if (o.namespace !== undefined && !LABEL.test(o.namespace)) {
    throw new UsageError(`--namespace ${o.namespace}: not a Kubernetes namespace name`);
  }
  const { config } = loadConfigFiles(ctx.paths);
  const sources = pairs(o.images, "--image", config);
  const missing = config.unit.nodes.filter((n) => !sources.has(n.name)).map((n) => n.name);
  if (missing.length > 0) {
    throw new UsageError(
      `No image source for ${missing.map((n) => `"${n}"`).join(", ")}: give --image ${
        missing[0]
      }=SOURCE (an http(s) URL of the qcow2, pvc:NAMESPACE/NAME or docker://REFERENCE)`,
    );
  }
  const names = instances(unit, o.count);
  const manifests = exportKubevirt({
    config,
    instances: names,
    namespaceOf: (instance) =>
      o.namespace === undefined
        ? `aos-unit-${instance}`
        : names.length === 1
        ? o.namespace
        : `${o.namespace}-${instance.slice(unit.length + 1)}`,
    images: Object.fromEntries(
      [...sources].map(([node, text]) => [node, parseSource(node, text)]),
    ),
    diskBytes: diskSizes(ctx, config, pairs(o.diskSizes, "--disk-size", config)),
    gatewayImage: o.gatewayImage ?? DEFAULT_GATEWAY_IMAGE,
    version: VERSION,
    ownMacs: names.length > 1,
  });
  ctx.out(renderManifests(manifests));
  return 0;
}

/** Multi-document YAML, one object per document, long strings unfolded. */
export function renderManifests(manifests: readonly Record<string, unknown>[]): string {
  return manifests.map((m) =>
    `---\n${stringify(m, { lineWidth: 0, aliasDuplicateObjects: false })}`
  ).join("");
}

export const exportSpec: CommandSpec = {
  name: "export",
  summary:
    "turn the unit definition into manifests for a cluster: KubeVirt VMs, their network and gateway",
  group: "user",
  args: [{ name: "<target>", description: "what to export for: kubevirt" }],
  configDir: true,
  options: [
    { flags: "--namespace <ns>", description: "the namespace (NS-1..NS-N with --count)" },
    { flags: "--count <n>", description: "N independent units, each in its own namespace" },
    {
      flags: "--image <node=source>",
      description: "where a node's disk comes from: https://..., pvc:NS/NAME or docker://...",
      repeatable: true,
    },
    {
      flags: "--disk-size <node=size>",
      description: "a node's disk size (default: the local image's virtual size)",
      repeatable: true,
    },
    {
      flags: "--gateway-image <image>",
      description: `the gateway container (default ${DEFAULT_GATEWAY_IMAGE})`,
    },
  ],
  examples: `
Examples:
  aos-unit export kubevirt --image main=https://example.com/aos-vm-main-qemux86-64.qcow2 \\
      --image secondary=pvc:golden/aos-secondary | kubectl apply -f -
  aos-unit export kubevirt --count 50 --image main=docker://registry.example.com/aos/main:5.2.2 \\
      --image secondary=docker://registry.example.com/aos/secondary:5.2.2 --disk-size main=16Gi \\
      --disk-size secondary=16Gi > fleet.yaml

Changes nothing on this host. See "From one host to a cluster" in aos-unit(8).`,
  run: (ctx, call) =>
    exportCommand(ctx, {
      target: String(call.args[0]),
      namespace: stringOpt(call, "namespace"),
      count: stringOpt(call, "count"),
      images: listOpt(call, "image"),
      diskSizes: listOpt(call, "diskSize"),
      gatewayImage: stringOpt(call, "gatewayImage"),
    }),
};
