/** Human-readable and JSON views of a plan (for `aos-unit plan`). */

import { quoteArgv } from "../base/quote.ts";
import type { NodePlan, Plan, TransientUnit, UnitProperty } from "./types.ts";

/** One `Name=value` line per property, values as systemctl would show them. */
export function formatProperty([name, signature, value]: UnitProperty): string {
  if (signature === "a(sasb)") {
    const cmds = value as [string, string[], boolean][];
    return `${name}=${
      cmds.map(([, argv, ignore]) => `${ignore ? "-" : ""}${quoteArgv(argv)}`).join(" ; ")
    }`;
  }
  if (signature === "a(ssbt)") {
    const binds = value as [string, string, boolean, number][];
    return `${name}=${
      binds.map(([from, to, ignore]) =>
        `${ignore ? "-" : ""}${from === to ? from : `${from}:${to}`}`
      )
        .join(" ")
    }`;
  }
  if (name === "TemporaryFileSystem") {
    return `${name}=${(value as [string, string][]).map(([a, b]) => `${a}:${b}`).join(" ")}`;
  }
  if (signature === "a(ss)") {
    return `${name}=${(value as [string, string][]).map(([a, b]) => `${a} ${b}`).join(", ")}`;
  }
  if (signature === "(bas)") {
    const [allow, list] = value as [boolean, string[]];
    return `${name}=${allow ? "" : "~"}${list.join(" ")}`;
  }
  if (signature === "a(iayu)") {
    const addresses = value as [number, number[], number][];
    return `${name}=${
      addresses.every(([, , prefix]) => prefix === 0)
        ? "any"
        : addresses.map(([, a, p]) => `${a.join(".")}/${p}`).join(" ")
    }`;
  }
  if (name === "UMask" || name.endsWith("Mode") && signature === "u") {
    return `${name}=${Number(value).toString(8).padStart(4, "0")}`;
  }
  if (name === "SystemCallErrorNumber") return `${name}=EPERM`;
  if (name === "RestrictNamespaces" && Number(value) === 0) return `${name}=yes`;
  if (Array.isArray(value)) return `${name}=${value.join(" ")}`;
  if (name === "MemoryMax") return `${name}=${Number(value) / 1024 / 1024}M`;
  if (name === "CPUQuotaPerSecUSec") return `CPUQuota=${Number(value) / 10_000}%`;
  if (name.endsWith("USec")) return `${name.replace(/USec$/, "Sec")}=${Number(value) / 1_000_000}s`;
  if (name === "AmbientCapabilities" || name === "CapabilityBoundingSet") {
    return `${name}=${capabilityNames(Number(value)).join(" ")}`;
  }
  return `${name}=${String(value)}`;
}

const CAP_NAMES: Record<number, string> = {
  10: "CAP_NET_BIND_SERVICE",
  12: "CAP_NET_ADMIN",
  13: "CAP_NET_RAW",
};

function capabilityNames(mask: number): string[] {
  return Object.entries(CAP_NAMES).filter(([bit]) => Math.floor(mask / 2 ** Number(bit)) % 2 === 1)
    .map(([, n]) => n);
}

function unitLines(unit: TransientUnit, indent: string): string[] {
  return [
    `${indent}${unit.name}`,
    ...unit.properties.map((p) => `${indent}  ${formatProperty(p)}`),
  ];
}

/** The QEMU argv as a copy-pasteable, one-option-per-line command. */
export function formatArgv(argv: readonly string[], indent = "  "): string {
  const lines: string[] = [];
  let current = quoteArgv([argv[0] ?? ""]);
  for (const arg of argv.slice(1)) {
    if (arg.startsWith("-")) {
      lines.push(current);
      current = quoteArgv([arg]);
    } else {
      current += ` ${quoteArgv([arg])}`;
    }
  }
  lines.push(current);
  return lines.map((l, i) => (i === 0 ? indent : `${indent}    `) + l).join(" \\\n");
}

function nodeLines(n: NodePlan): string[] {
  return [
    `Node ${n.name}`,
    `  address     ${n.ip ? `${n.ip} (reserved)` : "dynamic, from the pool"}`,
    `  MAC         ${n.mac}`,
    `  tap         ${n.tap}`,
    `  machine     ${n.arch} ${n.machineType}, cpu ${n.cpuType}, ${n.accel.toUpperCase()}, ${
      n.uefi ? "UEFI" : "BIOS"
    }`,
    `  resources   ${n.cpu} vCPU, ${n.memMiB} MiB RAM (MemoryMax ${n.memoryMaxMiB} MiB)`,
    `  image       ${n.image.path} (${n.image.source}${n.image.found ? "" : ", MISSING"})`,
    `  overlay     ${n.overlay}`,
    ...(n.efiVars ? [`  UEFI vars   ${n.efiVars.path} (from ${n.efiVars.template})`] : []),
    `  serial      ${n.serialLink} -> ${n.serialSocket} (log ${n.serialLog})`,
    `  QMP         ${n.qmpSocket}`,
    "  unit",
    ...unitLines(n.unit, "    "),
    "  command line",
    formatArgv(n.qemu, "    "),
  ];
}

export function renderPlanText(plan: Plan): string {
  const net = plan.network;
  const lines = [
    "Network",
    `  bridge      ${net.bridge} (MAC ${net.bridgeMac})`,
    `  address     ${net.bridgeIp}/${net.prefix} (netmask ${net.netmask}, subnet ${net.cidr})`,
    `  DHCP pool   ${net.poolStart} - ${net.poolEnd}`,
    `  DNS         ${net.bridgeIp}:${net.dnsPort} (port 53 redirected), domain ${net.domain}, upstream ${net.upstreamDns}`,
    `  NAT         ${
      net.internetInterface
        ? `out of ${net.internetInterface} only`
        : "by source subnet, follows the default route"
    }`,
    `  leases      ${plan.dnsmasq.leaseFile} (also ${plan.dnsmasq.leaseLink})`,
    "",
    ...plan.nodes.flatMap((n) => [...nodeLines(n), ""]),
    "Sidecar",
    ...unitLines(plan.dnsmasq.unit, "  "),
    "  (the route monitor runs inside aos-unit.service; see aos-unit(8))",
    "",
    plan.isolation
      ? `nftables ruleset in namespace ${plan.isolation.namespace} (nft -f; table inet ${plan.nft.table})`
      : `nftables ruleset (nft -f; table inet ${plan.nft.table})`,
    ...plan.nft.ruleset.trimEnd().split("\n").map((l) => `  ${l}`),
    "",
    ...(plan.isolation && plan.nft.link
      ? [
        `the unit's link ${plan.isolation.hostLink} to namespace ${plan.isolation.namespace}: ` +
        `${plan.isolation.hostAddress}/30 <-> ${plan.isolation.unitAddress}, ` +
        `${plan.isolation.mapped} seen for ${plan.isolation.inner} (host block ${plan.isolation.block})`,
        "",
        `nftables ruleset on the host (nft -f; table inet ${plan.nft.table}, on ${plan.isolation.hostLink})`,
        ...plan.nft.link.trimEnd().split("\n").map((l) => `  ${l}`),
        "",
      ]
      : []),
    `dnsmasq configuration (the options of ${plan.dnsmasq.unit.name}'s ExecStart=, read from no file)`,
    ...plan.dnsmasq.conf.trimEnd().split("\n").map((l) => `  ${l}`),
    "",
    `${plan.networkConf.path}`,
    ...plan.networkConf.content.trimEnd().split("\n").map((l) => `  ${l}`),
  ];
  return lines.map((l) => l.trimEnd()).join("\n") + "\n";
}
