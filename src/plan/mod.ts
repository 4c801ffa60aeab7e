/**
 * The planner: config + host facts -> Plan. Pure: no I/O, no clock, no
 * processes. Everything aos-unit creates on the host is decided here.
 */

import type { Arch, Config, NodeConfig } from "../base/config_types.ts";
import type { Diagnostic } from "../base/errors.ts";
import { EMULATOR_PACKAGE, FIRMWARE_PACKAGE } from "../base/tools.ts";
import { dnsmasqArgv, dnsmasqConf } from "./dnsmasq.ts";
import { type NodeNames, unitIdentity } from "../base/unit_identity.ts";
import { chooseImage, imagePattern } from "./images.ts";
import { nodeAddresses } from "./addresses.ts";
import { checkImageNetworks } from "./image_check.ts";
import { type NetworkPlan, planNetwork } from "./network.ts";
import { nftRuleset, type PortForward, type TapGuard } from "./nft.ts";
import { type Isolation, mappedAddress, planUnitIsolation } from "./isolation.ts";
import { linkRuleset } from "./nft_link.ts";

/** systemd-resolved's list of the servers it uses (not its own stub). */
const RESOLVED_SERVERS = "/run/systemd/resolve/resolv.conf";
import { defaultCpuType, defaultMachineType, memoryMaxMiB, qemuArgv } from "./qemu.ts";
import type { Accel, HostFacts, NodePlan, Paths, Plan } from "./types.ts";
import { dnsmasqUnit, nodeUnit } from "./units.ts";
import {
  dhcpDir,
  failureLogPath,
  hiddenFromHelpers,
  join,
  leaseStateFile,
  nodeDir,
  nodeRunDir,
  relativeToRun,
} from "./layout.ts";

export { dhcpDir, nodeDir, nodeRunDir } from "./layout.ts";

export type * from "./types.ts";
export { planNetwork } from "./network.ts";
export { nftRuleset } from "./nft.ts";

/** What the layer-2 guard lets each node's tap send. */
export function tapGuards(nodes: readonly NodePlan[]): TapGuard[] {
  return nodes.map((n) => ({ tap: n.tap, mac: n.mac, ip: n.address }));
}

/** Every node's port forwards, for the ruleset. */
export function portForwards(nodes: readonly NodePlan[]): PortForward[] {
  return nodes.flatMap((n) =>
    n.forwards.map((f) => ({
      node: n.name,
      nodeIp: n.address,
      host: f.host,
      port: f.port,
      proto: f.proto,
      ...(f.address ? { address: f.address } : {}),
    }))
  );
}

/**
 * The unit's tables: on the host's network for the default unit; for an isolated unit its
 * own in its namespace (the host's way in, the guests' way out through its link) and one on
 * the host, on its link, which holds the forwards (to the nodes' mapped addresses).
 */
function planTables(
  table: string,
  network: NetworkPlan,
  nodes: readonly NodePlan[],
  uplinks: readonly string[],
  iso: Isolation | undefined,
): Plan["nft"] {
  const guards = tapGuards(nodes);
  const forwards = portForwards(nodes);
  if (!iso) {
    return {
      table,
      guards,
      forwards,
      ruleset: nftRuleset(table, network, guards, uplinks, forwards),
    };
  }
  const mapped = forwards.map((f) => ({ ...f, nodeIp: mappedAddress(iso, f.nodeIp) }));
  // Inside, the link is the only way out: no host interface to pin the masquerade to.
  const inside = { ...network, internetInterface: undefined };
  return {
    table,
    guards,
    forwards: mapped,
    ruleset: nftRuleset(table, inside, guards, [iso.unitLink], [], {
      link: iso.unitLink,
      mapped: iso.mapped,
      inner: iso.inner,
      dnsAddress: iso.dnsAddress,
    }),
    link: hostTable(table, network, iso, uplinks, mapped),
  };
}

/** An isolated unit's table on the host for these uplinks (the route monitor's too). */
export function hostTable(
  table: string,
  network: NetworkPlan,
  iso: Isolation,
  uplinks: readonly string[],
  forwards: readonly PortForward[],
): string {
  return linkRuleset({
    table,
    iso,
    uplinks,
    forwards,
    guestFence: network.guestFence,
    ...(network.internetInterface ? { pinned: network.internetInterface } : {}),
  });
}

/** The network a running guest depends on: a change here restarts every node. */
function attachment(network: Plan["network"]): string {
  return `${network.bridge} ${network.cidr}`;
}

/**
 * Makes the plan.
 * @param config a validated configuration
 * @param facts what the host looks like (machine-id, arch, KVM, firmware, images, uplinks)
 * @param paths the unit's directories (and which unit it is: every name comes from its record)
 * @returns the plan, with warnings (missing images or firmware) in `plan.warnings`
 */
export function makePlan(config: Config, facts: HostFacts, paths: Paths): Plan {
  const warnings: Diagnostic[] = [];
  const unit = unitIdentity(paths.unit, facts.machineId);
  const network = planNetwork(config.runtime, unit);
  const iso = planUnitIsolation(unit, config.runtime.subnet, facts);
  if (typeof iso === "string") {
    warnings.push({ severity: "error", ...config.runtime.subnetAt, message: iso, blocksRun: true });
  }
  const isolation = typeof iso === "object" ? iso : undefined;
  const addresses = nodeAddresses(
    config.runtime,
    config.unit.nodes,
    new Map(config.unit.nodes.map((n) => [n.name, unit.node(n.name).mac])),
    facts.leases,
  );
  const nodes = config.unit.nodes.map((node) =>
    planOneNode(config, facts, paths, node, warnings, {
      attachedTo: attachment(network),
      address: addresses.get(node.name)!,
      names: unit.node(node.name),
      slice: unit.slice,
      netns: isolation?.namespacePath,
    })
  );
  warnings.push(...checkImageNetworks(
    config,
    nodes.flatMap((n, i) =>
      n.image.network
        ? [{ node: config.unit.nodes[i]!, image: n.image.file, network: n.image.network }]
        : []
    ),
  ));

  const dhcp = dhcpDir(paths);
  const leaseFile = join(dhcp, "dnsmasq.leases");
  const conf = dnsmasqConf({
    network,
    nodes: nodes.map((n) => ({
      name: n.name,
      mac: n.mac,
      ip: n.ip,
      address: n.address,
      ...(isolation ? { hostAddress: mappedAddress(isolation, n.address) } : {}),
    })),
    leaseFile,
    leaseHook: facts.leaseHook,
    user: facts.serviceUser,
    // Inside its namespace an isolated unit has no host loopback: resolved's own servers.
    ...(isolation && /^127\./.test(network.upstreamDns) ? { resolvConf: RESOLVED_SERVERS } : {}),
  });
  const uplinks = network.internetInterface ? [network.internetInterface] : facts.uplinks;

  return {
    paths,
    unit,
    network,
    nodes,
    dnsmasq: {
      conf,
      dhcpDir: dhcp,
      leaseFile,
      leaseLink: join(paths.runtimeDir, "dnsmasq.leases"),
      unit: dnsmasqUnit({
        name: unit.dnsmasqUnit,
        dynamicUser: unit.dnsmasqUser,
        argv: dnsmasqArgv(conf),
        user: facts.serviceUser,
        paths,
        dhcpDir: dhcp,
        hidden: hiddenFromHelpers(paths),
        systemdVersion: facts.systemdVersion,
        // dnsmasq binds the bridge address: a new bridge or subnet needs a new dnsmasq.
        attachedTo: attachment(network) + "\n" + conf,
        ...(isolation ? { netns: isolation.namespacePath } : {}),
      }),
    },
    nft: planTables(unit.nftTable, network, nodes, uplinks, isolation),
    ...(isolation ? { isolation } : {}),
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
        ...(isolation
          ? [
            `NAMESPACE=${isolation.namespace}`,
            `HOST_LINK=${isolation.hostLink}`,
            `HOST_BLOCK=${isolation.block}`,
            `MAPPED_SUBNET=${isolation.mapped}`,
          ]
          : []),
        "",
      ].join("\n"),
    },
    leaseState: leaseStateFile(paths),
    failureLog: failureLogPath(paths.logsDir),
    warnings,
  };
}

/** Collects a node's warnings, each located at the node (or at its image key). */
type Warn = (message: string, more?: Partial<Diagnostic>) => void;

function nodeWarner(node: NodeConfig, warnings: Diagnostic[]): Warn {
  return (message, more = {}) =>
    warnings.push({ severity: "warning", ...node.at, message, ...more });
}

/** The node's base image, with a warning for a missing, unreadable or ambiguous one. */
function planImage(node: NodeConfig, arch: Arch, facts: HostFacts, paths: Paths, warn: Warn) {
  const image = chooseImage(node.name, arch, node.image, facts.images);
  const imagePath = join(paths.imagesDir, image.file);
  const at = node.imageAt ?? node.at;
  const copy =
    `cp IMAGE.qcow2 ${paths.imagesDir}/ && chown aos-unit:aos-unit ${paths.imagesDir}/*.qcow2`;
  if (!image.found) {
    warn(
      image.source === "explicit"
        ? `Image "${image.file}" of node "${node.name}" is not in ${paths.imagesDir}`
        : `No image for node "${node.name}" in ${paths.imagesDir}: expected a file matching ${
          imagePattern(node.name, arch).source
        } (for example ${image.file}), or set "image:"`,
      { ...at, blocksRun: true, check: "images", fix: copy },
    );
  } else if (!image.readable) {
    warn(
      `Image "${imagePath}" of node "${node.name}" is not readable (chown aos-unit:aos-unit it)`,
      { ...at, blocksRun: true, check: "images", fix: `chown aos-unit:aos-unit ${imagePath}` },
    );
  }
  if (image.alternatives.length > 0) {
    warn(
      `Several images match node "${node.name}": using "${image.file}", ignoring ${
        image.alternatives.map((a) => `"${a}"`).join(", ")
      }; set "image:" to choose`,
    );
  }
  const network = image.found ? facts.imageNetworks?.[image.file] : undefined;
  return {
    file: image.file,
    path: imagePath,
    source: image.source,
    found: image.found,
    ...(network ? { network } : {}),
  };
}

/** The emulator and (for UEFI) the firmware the node needs, warned about when missing. */
function planFirmware(node: NodeConfig, arch: Arch, uefi: boolean, facts: HostFacts, warn: Warn) {
  if (!facts.emulators[arch]) {
    warn(
      `No QEMU for ${arch} guests on this host: install ${
        EMULATOR_PACKAGE[arch]
      } (node "${node.name}")`,
      { blocksRun: true, check: "emulator", fix: `apt-get install ${EMULATOR_PACKAGE[arch]}` },
    );
  }
  const firmware = uefi ? facts.firmware[arch] : undefined;
  if (uefi && !firmware) {
    warn(
      `No UEFI firmware for ${arch} on this host: install ${
        FIRMWARE_PACKAGE[arch]
      } (node "${node.name}")`,
      { blocksRun: true, check: "firmware", fix: `apt-get install ${FIRMWARE_PACKAGE[arch]}` },
    );
  }
  return firmware;
}

function planOneNode(
  config: Config,
  facts: HostFacts,
  paths: Paths,
  node: NodeConfig,
  warnings: Diagnostic[],
  { attachedTo, address, names, slice, netns }: {
    /** Anything outside the unit that a running guest depends on (its network). */
    attachedTo: string;
    /** An isolated unit's namespace (its path), which the node joins. */
    netns: string | undefined;
    address: string;
    /** The node's names in the unit's record. */
    names: NodeNames;
    slice: string;
  },
): NodePlan {
  const warn = nodeWarner(node, warnings);
  const arch: Arch = node.arch ?? facts.hostArch;
  const accel: Accel = config.runtime.enableKvm && facts.kvmUsable && arch === facts.hostArch
    ? "kvm"
    : "tcg";
  const image = planImage(node, arch, facts, paths, warn);
  // AosCore x86 images are EFI-only: UEFI is the default everywhere.
  const uefi = node.uefi ?? true;
  if (node.uefi === false && /uefi/i.test(image.file)) {
    warn(
      `Node "${node.name}" has uefi: false but its image "${image.file}" looks like a UEFI image`,
    );
  }
  const firmware = planFirmware(node, arch, uefi, facts, warn);

  const { mac, tap } = names;
  const dir = nodeDir(paths, node.name);
  const overlay = join(dir, "overlay.qcow2");
  const efiVars = firmware ? { template: firmware.vars, path: join(dir, "efivars.fd") } : undefined;
  const machineType = node.machineType ?? defaultMachineType(arch);
  const cpuType = node.cpuType ?? defaultCpuType(arch, accel);
  const runDir = nodeRunDir(paths, node.name);
  const serialSocket = join(runDir, "serial");
  const serialLog = join(paths.logsDir, `${node.name}-serial.log`);
  const qmpSocket = join(runDir, "qmp");
  const qemu = qemuArgv({
    name: node.name,
    process: names.process,
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
    address,
    forwards: node.forwards,
    uefi,
    machineType,
    cpuType,
    image,
    dir,
    overlay,
    efiVars,
    firmwareCode: firmware?.code,
    runDir,
    serialSocket,
    serialLink: join(paths.runtimeDir, `${node.name}.serial`),
    serialLog,
    qmpSocket,
    qemu,
    unit: nodeUnit({
      name: node.name,
      names,
      slice,
      arch,
      accel,
      cpu: node.cpu,
      memoryMaxMiB: maxMiB,
      qemu,
      stopHook: facts.nodeStopHook,
      stoppedHook: facts.nodeStoppedHook,
      user: facts.serviceUser,
      paths,
      nodeDir: dir,
      runDir,
      runtimeDirectory: relativeToRun(runDir),
      serialLog,
      hidden: hiddenFromHelpers(paths),
      stopTimeoutSec: config.runtime.stopTimeoutSec,
      systemdVersion: facts.systemdVersion,
      attachedTo,
      ...(netns ? { netns } : {}),
    }),
  };
}
