/**
 * `aos-unit export kubevirt` (pure): the unit definition as Kubernetes objects
 * for KubeVirt, one namespace per unit instance. What maps to what:
 *
 *   unit          -> Namespace aos-unit-<instance>
 *   the bridge    -> NetworkAttachmentDefinition "aos-unit": a bridge CNI with no IPAM
 *                    (KubeVirt runs no DHCP of its own; the gateway does)
 *   the sidecar   -> Deployment "gateway": one pod on the pod network (egress) and on the
 *                    NAD at the bridge address, running the same dnsmasq configuration and
 *                    nft ruleset the host plan makes (same functions), with a ConfigMap
 *   forwards      -> Service "gateway": the forwarded host ports, DNATed by the gateway
 *   each node     -> VirtualMachine: UEFI with persistent NVRAM, a SCSI disk imported by
 *                    CDI (dataVolumeTemplates), one bridge interface with the node's MAC
 *
 * Pod-network masquerade is not used for nodes (its NAT matches only the DHCP address, so
 * a static main fails), nor VirtualMachinePool (it cannot vary networks per replica).
 */

import { sha256Hex } from "../base/hash.ts";
import type { Config, NodeConfig } from "../base/config_types.ts";
import { BRIDGE_PREFIX, DEFAULT_UNIT, nodeMac, unitIdentity } from "../base/unit_identity.ts";
import { nodeAddresses } from "./addresses.ts";
import { dnsmasqConf } from "./dnsmasq.ts";
import { type NetworkPlan, planNetwork } from "./network.ts";
import { nftRuleset, type PortForward } from "./nft.ts";

/** Where a node's disk comes from (what --image NODE=SOURCE said). */
export type ImageSource =
  | { kind: "http"; url: string }
  | { kind: "pvc"; namespace: string; name: string }
  | { kind: "registry"; url: string };

export interface ExportInput {
  config: Config;
  /** Instance names, one namespace each (the unit's name, or NAME-1..NAME-N for --count). */
  instances: readonly string[];
  /** Namespace per instance (aos-unit-<instance> unless --namespace said otherwise). */
  namespaceOf(instance: string): string;
  images: Readonly<Record<string, ImageSource>>;
  /** Each node's disk size in bytes: at least the image's virtual size. */
  diskBytes: Readonly<Record<string, number>>;
  gatewayImage: string;
  /** aos-unit's version, in labels. */
  version: string;
  /** True for --count: every instance gets MACs of its own (the host plan's otherwise). */
  ownMacs: boolean;
}

export type Manifest = Record<string, unknown>;

/** Where the gateway's files are mounted in its pod. */
const GATEWAY_DIR = "/etc/aos-unit";
/** The gateway's interface on the unit's network (Multus names it). */
const GATEWAY_IFACE = "net1";
const NAD = "aos-unit";
const MIB = 1024 * 1024;

function hashHex(text: string, length: number): string {
  return sha256Hex(text).slice(0, length);
}

/** A deterministic RFC 4122 (version 5 style) UUID per instance and node. */
export function firmwareUuid(instance: string, node: string): string {
  const h = hashHex(`aos-unit firmware ${instance}/${node}`, 32);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${
    ((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16)
  }${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function labels(instance: string, version: string, component: string): Record<string, string> {
  return {
    "app.kubernetes.io/name": "aos-unit",
    "app.kubernetes.io/instance": instance,
    "app.kubernetes.io/component": component,
    "app.kubernetes.io/version": version.replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 63),
  };
}

/**
 * The unit's network as the planner derives it; the bridge name is per instance (the
 * default unit's rule, with a machine-id made from the instance).
 */
function instanceNetwork(config: Config, instance: string): NetworkPlan {
  return planNetwork(
    config.runtime,
    unitIdentity(undefined, hashHex(`aos-unit bridge ${instance}`, 32)),
  );
}

function macOf(input: ExportInput, instance: string, node: NodeConfig): string {
  return input.ownMacs ? nodeMac(`${instance}/${node.name}`) : nodeMac(node.name);
}

interface Instance {
  name: string;
  namespace: string;
  network: NetworkPlan;
  macs: Map<string, string>;
  addresses: Map<string, string>;
}

function gatewayFiles(input: ExportInput, i: Instance): { dnsmasq: string; nft: string } {
  const network = { ...i.network, bridge: GATEWAY_IFACE };
  const nodes = input.config.unit.nodes.map((n) => ({
    name: n.name,
    mac: i.macs.get(n.name)!,
    ip: n.ip,
    address: i.addresses.get(n.name)!,
  }));
  const dnsmasq = dnsmasqConf({
    network,
    nodes,
    leaseFile: "/var/lib/misc/dnsmasq.leases",
    user: "root",
    // A host's local resolver (127.0.0.53) is no upstream inside a pod: its cluster DNS is.
    resolvConf: /^127\./.test(network.upstreamDns),
  });
  // The pod network (eth0) is the gateway's uplink; forwards come in on it too.
  const forwards: PortForward[] = input.config.unit.nodes.flatMap((n) =>
    n.forwards.map((f) => ({
      node: n.name,
      nodeIp: i.addresses.get(n.name)!,
      host: f.host,
      port: f.port,
      proto: f.proto,
    }))
  );
  return { dnsmasq, nft: nftRuleset(DEFAULT_UNIT.nftTable, network, [], ["eth0"], forwards) };
}

function namespace(input: ExportInput, i: Instance): Manifest {
  return {
    apiVersion: "v1",
    kind: "Namespace",
    metadata: { name: i.namespace, labels: labels(i.name, input.version, "unit") },
  };
}

function networkAttachment(input: ExportInput, i: Instance): Manifest {
  // A bridge on each cluster node; no IPAM: addresses come from the gateway's DHCP.
  const bridge = `${BRIDGE_PREFIX}${hashHex(`aos-unit nad ${i.namespace}`, 8)}`;
  return {
    apiVersion: "k8s.cni.cncf.io/v1",
    kind: "NetworkAttachmentDefinition",
    metadata: {
      name: NAD,
      namespace: i.namespace,
      labels: labels(i.name, input.version, "network"),
    },
    spec: {
      config: JSON.stringify({ cniVersion: "0.3.1", name: NAD, type: "bridge", bridge, ipam: {} }),
    },
  };
}

function gatewayConfigMap(input: ExportInput, i: Instance): Manifest {
  const files = gatewayFiles(input, i);
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      name: "gateway",
      namespace: i.namespace,
      labels: labels(i.name, input.version, "gateway"),
    },
    data: { "dnsmasq.conf": files.dnsmasq, "gateway.nft": files.nft },
  };
}

function gatewayDeployment(input: ExportInput, i: Instance): Manifest {
  const l = labels(i.name, input.version, "gateway");
  const address = `${i.network.bridgeIp}/${i.network.prefix}`;
  const script = [
    "set -e",
    // No IPAM on the unit's network: the gateway takes the bridge address itself.
    `ip addr add ${address} dev ${GATEWAY_IFACE}`,
    `ip link set ${GATEWAY_IFACE} up`,
    `nft -f ${GATEWAY_DIR}/gateway.nft`,
    `exec dnsmasq --keep-in-foreground --conf-file=${GATEWAY_DIR}/dnsmasq.conf`,
  ].join("\n");
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: "gateway", namespace: i.namespace, labels: l },
    spec: {
      replicas: 1,
      strategy: { type: "Recreate" },
      selector: {
        matchLabels: {
          "app.kubernetes.io/instance": i.name,
          "app.kubernetes.io/component": "gateway",
        },
      },
      template: {
        metadata: {
          labels: l,
          annotations: {
            "k8s.v1.cni.cncf.io/networks": JSON.stringify([{
              name: NAD,
              interface: GATEWAY_IFACE,
            }]),
          },
        },
        spec: {
          securityContext: { sysctls: [{ name: "net.ipv4.ip_forward", value: "1" }] },
          containers: [{
            name: "gateway",
            image: input.gatewayImage,
            command: ["/bin/sh", "-c", script],
            securityContext: {
              capabilities: { add: ["NET_ADMIN", "NET_RAW", "NET_BIND_SERVICE"] },
            },
            volumeMounts: [{ name: "config", mountPath: GATEWAY_DIR, readOnly: true }],
            resources: { requests: { cpu: "50m", memory: "32Mi" }, limits: { memory: "64Mi" } },
          }],
          volumes: [{ name: "config", configMap: { name: "gateway" } }],
        },
      },
    },
  };
}

/** The forwards, on the gateway (which DNATs them to the nodes); none: no Service. */
function gatewayService(input: ExportInput, i: Instance): Manifest | undefined {
  const ports = input.config.unit.nodes.flatMap((n) =>
    n.forwards.map((f) => ({
      name: `${n.name}-${f.proto}-${f.port}`.slice(0, 63).replace(/-+$/, ""),
      protocol: f.proto.toUpperCase(),
      port: f.host,
      targetPort: f.host,
    }))
  );
  if (ports.length === 0) return undefined;
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: {
      name: "gateway",
      namespace: i.namespace,
      labels: labels(i.name, input.version, "gateway"),
    },
    spec: {
      type: "ClusterIP",
      selector: { "app.kubernetes.io/instance": i.name, "app.kubernetes.io/component": "gateway" },
      ports,
    },
  };
}

function dataVolumeSource(source: ImageSource): Manifest {
  switch (source.kind) {
    case "http":
      return { http: { url: source.url } };
    case "pvc":
      return { pvc: { namespace: source.namespace, name: source.name } };
    case "registry":
      return { registry: { url: source.url } };
  }
}

/** KubeVirt takes Kubernetes quantities: whole MiB for memory, GiB rounded up for disks. */
function mebibytes(mib: number): string {
  return mib % 1024 === 0 ? `${mib / 1024}Gi` : `${mib}Mi`;
}

function virtualMachine(input: ExportInput, i: Instance, node: NodeConfig): Manifest {
  const arch = node.arch ?? "x86_64";
  const machine = node.machineType ?? (arch === "aarch64" ? "virt" : "q35");
  const disk = `${node.name}-disk`;
  const gib = Math.max(1, Math.ceil((input.diskBytes[node.name] ?? 0) / (1024 * MIB)));
  return {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachine",
    metadata: {
      name: node.name,
      namespace: i.namespace,
      labels: labels(i.name, input.version, "node"),
    },
    spec: {
      runStrategy: "Always",
      dataVolumeTemplates: [{
        metadata: { name: disk },
        spec: {
          source: dataVolumeSource(input.images[node.name]!),
          storage: { resources: { requests: { storage: `${gib}Gi` } } },
        },
      }],
      template: {
        metadata: {
          labels: { ...labels(i.name, input.version, "node"), "aos-unit/node": node.name },
        },
        spec: {
          ...(arch === "aarch64" ? { architecture: "arm64" } : {}),
          hostname: node.name,
          // Room for the ACPI power button to take the guest down before it is killed.
          terminationGracePeriodSeconds: input.config.runtime.stopTimeoutSec,
          domain: {
            cpu: { cores: node.cpu },
            memory: { guest: mebibytes(node.memMiB) },
            resources: { requests: { memory: mebibytes(node.memMiB) } },
            machine: { type: machine },
            firmware: {
              uuid: firmwareUuid(i.name, node.name),
              // Persistent NVRAM: AosCore keeps its A/B boot state in UEFI variables.
              bootloader: { efi: { persistent: true, secureBoot: false } },
            },
            devices: {
              // AosCore images boot from /dev/sda3: SCSI, never virtio.
              disks: [{ name: "disk0", disk: { bus: "scsi" } }],
              interfaces: [{ name: "aos", bridge: {}, macAddress: i.macs.get(node.name)! }],
              autoattachPodInterface: false,
              autoattachSerialConsole: true,
              logSerialConsole: true,
            },
          },
          networks: [{ name: "aos", multus: { networkName: NAD } }],
          volumes: [{ name: "disk0", dataVolume: { name: disk } }],
        },
      },
    },
  };
}

/** Every object, in the order `kubectl apply -f -` should meet them. */
export function exportKubevirt(input: ExportInput): Manifest[] {
  const nodes = input.config.unit.nodes;
  return input.instances.flatMap((name) => {
    const macs = new Map(nodes.map((n) => [n.name, macOf(input, name, n)]));
    const i: Instance = {
      name,
      namespace: input.namespaceOf(name),
      network: instanceNetwork(input.config, name),
      macs,
      addresses: nodeAddresses(input.config.runtime, nodes, macs),
    };
    const service = gatewayService(input, i);
    return [
      namespace(input, i),
      networkAttachment(input, i),
      gatewayConfigMap(input, i),
      gatewayDeployment(input, i),
      ...(service ? [service] : []),
      ...nodes.map((n) => virtualMachine(input, i, n)),
    ];
  });
}
