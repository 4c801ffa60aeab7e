/**
 * The planner: config + host facts -> Plan. Pure: no I/O, no clock, no
 * processes. Everything aos-unit creates on the host is decided here.
 */

import type { Arch, Config, NodeConfig } from "../config/types.ts";
import type { Diagnostic } from "../errors.ts";
import { dnsmasqArgv, dnsmasqConf } from "./dnsmasq.ts";
import { nodeMac, tapName } from "./identity.ts";
import { chooseImage, imagePattern } from "./images.ts";
import { planNetwork } from "./network.ts";
import { NFT_TABLE, nftRuleset } from "./nft.ts";
import { defaultCpuType, defaultMachineType, memoryMaxMiB, qemuArgv } from "./qemu.ts";
import type { Accel, HostFacts, NodePlan, Paths, Plan } from "./types.ts";
import { dnsmasqUnit, monitorUnit, nodeUnit } from "./units.ts";

export type * from "./types.ts";
export { planNetwork } from "./network.ts";
export { nftRuleset } from "./nft.ts";

function join(dir: string, name: string): string {
  return `${dir.replace(/\/+$/, "")}/${name}`;
}

/** Where a node keeps its persistent files: overlay, UEFI variables, base-image record. */
export function nodeDir(paths: Paths, name: string): string {
  return join(join(paths.stateDir, "nodes"), name);
}

/**
 * Makes the plan.
 * @param config a validated configuration
 * @param facts what the host looks like (machine-id, arch, KVM, firmware, images, uplinks)
 * @param paths the four directories
 * @returns the plan, with warnings (missing images or firmware) in `plan.warnings`
 */
export function makePlan(config: Config, facts: HostFacts, paths: Paths): Plan {
  const warnings: Diagnostic[] = [];
  const network = planNetwork(config.runtime, facts.machineId);
  const nodes = config.unit.nodes.map((node) => planOneNode(config, facts, paths, node, warnings));

  const leaseFile = join(paths.stateDir, "dnsmasq.leases");
  const confPath = join(paths.runtimeDir, "dnsmasq.conf");
  const conf = dnsmasqConf({
    network,
    nodes: nodes.map((n) => ({ name: n.name, mac: n.mac, ip: n.ip })),
    leaseFile,
    leaseHook: facts.leaseHook,
    user: facts.serviceUser,
  });
  const uplinks = network.internetInterface ? [network.internetInterface] : facts.uplinks;

  return {
    paths,
    network,
    nodes,
    dnsmasq: {
      confPath,
      conf,
      leaseFile,
      leaseLink: join(paths.runtimeDir, "dnsmasq.leases"),
      unit: dnsmasqUnit(dnsmasqArgv(confPath), facts.serviceUser, paths),
    },
    monitor: { unit: monitorUnit(facts.executable, facts.serviceUser, paths) },
    nft: { table: NFT_TABLE, ruleset: nftRuleset(network, uplinks) },
    networkConf: {
      path: join(paths.runtimeDir, "network.conf"),
      content: [
        `BRIDGE_NAME=${network.bridge}`,
        `BRIDGE_IP=${network.bridgeIp}`,
        `NETMASK=${network.netmask}`,
        `PREFIX=${network.prefix}`,
        `SUBNET=${network.cidr}`,
        `DHCP_RANGE=${network.poolStart}-${network.poolEnd}`,
        `DNS_PORT=${network.dnsPort}`,
        "",
      ].join("\n"),
    },
    leaseState: join(paths.stateDir, "leases.json"),
    warnings,
  };
}

function planOneNode(
  config: Config,
  facts: HostFacts,
  paths: Paths,
  node: NodeConfig,
  warnings: Diagnostic[],
): NodePlan {
  const warn = (message: string, at = node.at, blocksRun = false) =>
    warnings.push({ severity: "warning", ...at, message, ...(blocksRun ? { blocksRun } : {}) });
  const arch: Arch = node.arch ?? facts.hostArch;
  const accel: Accel = config.runtime.enableKvm && facts.kvmUsable && arch === facts.hostArch
    ? "kvm"
    : "tcg";
  const image = chooseImage(node.name, arch, node.image, facts.images);
  const imagePath = join(paths.stateDir, image.file);
  if (!image.found) {
    warn(
      image.source === "explicit"
        ? `Image "${image.file}" of node "${node.name}" is not in ${paths.stateDir}`
        : `No image for node "${node.name}" in ${paths.stateDir}: expected a file matching ${
          imagePattern(node.name, arch).source
        } (for example ${image.file}), or set "image:"`,
      node.imageAt ?? node.at,
      true,
    );
  } else if (!image.readable) {
    warn(
      `Image "${imagePath}" of node "${node.name}" is not readable (chown aos-unit:aos-unit it)`,
      node.imageAt ?? node.at,
      true,
    );
  }
  if (image.alternatives.length > 0) {
    warn(
      `Several images match node "${node.name}": using "${image.file}", ignoring ${
        image.alternatives.map((a) => `"${a}"`).join(", ")
      }; set "image:" to choose`,
    );
  }
  // AosCore x86 images are EFI-only: UEFI is the default everywhere.
  const uefi = node.uefi ?? true;
  if (node.uefi === false && /uefi/i.test(image.file)) {
    warn(
      `Node "${node.name}" has uefi: false but its image "${image.file}" looks like a UEFI image`,
    );
  }
  const firmware = uefi ? facts.firmware[arch] : undefined;
  if (uefi && !firmware) {
    warn(
      `No UEFI firmware for ${arch} on this host: install ${
        arch === "x86_64" ? "ovmf" : "qemu-efi-aarch64"
      } (node "${node.name}")`,
      node.at,
      true,
    );
  }

  const mac = nodeMac(node.name);
  const tap = tapName(mac);
  const dir = nodeDir(paths, node.name);
  const overlay = join(dir, "overlay.qcow2");
  const efiVars = firmware ? { template: firmware.vars, path: join(dir, "efivars.fd") } : undefined;
  const machineType = node.machineType ?? defaultMachineType(arch);
  const cpuType = node.cpuType ?? defaultCpuType(arch, accel);
  const serialSocket = join(paths.runtimeDir, `${node.name}.serial`);
  const serialLog = join(paths.logsDir, `${node.name}-serial.log`);
  const qmpSocket = join(paths.runtimeDir, `${node.name}.qmp`);
  const qemu = qemuArgv({
    name: node.name,
    arch,
    accel,
    machineType,
    cpuType,
    cpu: node.cpu,
    memMiB: node.memMiB,
    disk: overlay,
    firmware: firmware && efiVars ? { code: firmware.code, vars: efiVars.path } : undefined,
    tap,
    mac,
    serialSocket,
    serialLog,
    qmpSocket,
  });
  const maxMiB = memoryMaxMiB(node.memMiB, accel);
  return {
    name: node.name,
    arch,
    accel,
    cpu: node.cpu,
    memMiB: node.memMiB,
    memoryMaxMiB: maxMiB,
    mac,
    tap,
    ip: node.ip,
    uefi,
    machineType,
    cpuType,
    image: { file: image.file, path: imagePath, source: image.source, found: image.found },
    dir,
    overlay,
    efiVars,
    firmwareCode: firmware?.code,
    serialSocket,
    serialLog,
    qmpSocket,
    qemu,
    unit: nodeUnit({
      name: node.name,
      arch,
      accel,
      cpu: node.cpu,
      memoryMaxMiB: maxMiB,
      qemu,
      executable: facts.executable,
      user: facts.serviceUser,
      paths,
      nodeDir: dir,
      stopTimeoutSec: config.runtime.stopTimeoutSec,
    }),
  };
}
