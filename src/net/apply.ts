/**
 * Applies the network half of a plan (startup) and takes it down (cleanup).
 * Both converge from whatever state they find: running startup twice, or after
 * a crash, gives the same result; cleanup removes only what aos-unit made.
 */

import { isBridgeName, TAP_PREFIX, type UnitNames } from "../base/unit_identity.ts";
import { RuntimeError } from "../base/errors.ts";
import { writeFileAtomic } from "../host/atomic.ts";
import { recordedValue } from "../host/network_record.ts";
import type { Runner } from "../host/runner.ts";
import { lookupGroup } from "../host/users.ts";
import type { Logger } from "../log.ts";
import { TOOLS } from "../base/tools.ts";
import type { Plan } from "../plan/types.ts";
import { connectSystemBus, type MessageBus } from "../systemd/bus.ts";
import { resolvedUnreachable, revertLink, setLinkDns } from "../systemd/resolved.ts";
import { isOurs, type LinkInfo, linkInfo, listLinks, ownerAlias } from "./links.ts";
import { applyRuleset, deleteTable } from "./nft.ts";
import { releaseNamespace, unitRunner } from "./isolation.ts";

export { TAP_PREFIX } from "../base/unit_identity.ts";

/** A link's index (Deno may not read /sys, so ask ip). */
export async function ifindexOf(runner: Runner, name: string): Promise<number | undefined> {
  return (await linkInfo(runner, name))?.ifindex;
}

async function ensureBridge(
  runner: Runner,
  plan: Plan,
  existing: LinkInfo | undefined,
  log: Logger,
) {
  const net = plan.network;
  await runner.run([
    TOOLS.ip,
    "link",
    existing ? "set" : "add",
    net.bridge,
    "type",
    "bridge",
    "stp_state",
    "0",
    "forward_delay",
    "0",
  ]);
  if (!existing) log.info(`Created bridge ${net.bridge}`);
  // A fixed MAC: otherwise the bridge takes a port's MAC and changes as taps come and go.
  await runner.run([TOOLS.ip, "link", "set", net.bridge, "address", net.bridgeMac]);
  await runner.run([TOOLS.ip, "link", "set", net.bridge, "alias", ownerAlias(net.owner, net.cidr)]);
  const want = `${net.bridgeIp}/${net.prefix}`;
  const r = await runner.run([TOOLS.ip, "-j", "-4", "addr", "show", "dev", net.bridge]);
  const have =
    (JSON.parse(r.stdout || "[]") as { addr_info: { local: string; prefixlen: number }[] }[])
      .flatMap((l) => l.addr_info.map((a) => `${a.local}/${a.prefixlen}`));
  if (have.length !== 1 || have[0] !== want) {
    // Converge: a previous configuration may have left another subnet here.
    await runner.run([TOOLS.ip, "-4", "addr", "flush", "dev", net.bridge]);
    await runner.run([
      TOOLS.ip,
      "addr",
      "add",
      want,
      "broadcast",
      net.broadcast,
      "dev",
      net.bridge,
    ]);
  }
  await runner.run([TOOLS.ip, "link", "set", net.bridge, "up"]);
}

/**
 * Whether a tap is still as ensureTaps() makes it: persistent, no owner, the service
 * user's group. A QEMU that attached a tap may change all three (TUNSETOWNER, TUNSETGROUP,
 * TUNSETPERSIST need no capability), e.g. a broken-out node on another node's tap while
 * that node restarts; such a tap is made anew at the next start.
 */
function tapIsAsMade(tap: LinkInfo, group: string): boolean {
  const data = tap.linkinfo?.info_data;
  // ip names the group, or gives its number when it has no name.
  const ours = data?.group === group || data?.group === String(lookupGroup(group));
  return data?.user === undefined && ours && data?.persist === true;
}

/**
 * One persistent tap per node, enslaved to the bridge. Its group is the service user's
 * group, and it has no owner: each node's QEMU runs under a uid of its own, in that group
 * (the kernel wants both to match when a tap has an owner).
 * @param keep nodes whose running QEMU is adopted as it is: a tap of theirs made with an
 *   owner (by an older release, for the QEMU that holds it) stays until that QEMU goes
 * @returns the nodes whose tap had to be made anew: a QEMU still running for one of them
 *   holds a deleted tap and must be replaced
 */
export async function ensureTaps(
  runner: Runner,
  plan: Plan,
  group: string,
  links: LinkInfo[],
  keep: ReadonlySet<string> = new Set(),
): Promise<string[]> {
  const created: string[] = [];
  for (const node of plan.nodes) {
    let tap = links.find((l) => l.ifname === node.tap);
    // Another unit's tap of the same name (a hash collision) is never taken over.
    if (tap?.ifalias && tap.ifalias !== plan.unit.tapAlias) {
      throw new RuntimeError(
        `Tap ${node.tap} of node ${node.name} is another unit's (${tap.ifalias}); rename the node`,
      );
    }
    if (tap && !tapIsAsMade(tap, group) && !keep.has(node.name)) {
      await runner.run([TOOLS.ip, "link", "delete", node.tap], { okCodes: [0, 1] });
      tap = undefined;
    }
    if (!tap) {
      await runner.run([TOOLS.ip, "tuntap", "add", "dev", node.tap, "mode", "tap", "group", group]);
      created.push(node.name);
    }
    if (tap?.master !== plan.network.bridge) {
      await runner.run([TOOLS.ip, "link", "set", node.tap, "master", plan.network.bridge]);
    }
    // The owner's mark (a tap made by an older release gets it here): teardown removes a
    // tap without a bridge only when it carries it.
    await runner.run([TOOLS.ip, "link", "set", node.tap, "alias", plan.unit.tapAlias, "up"]);
  }
  // Taps of nodes no longer in the config.
  const wanted = new Set(plan.nodes.map((n) => n.tap));
  for (const link of links) {
    if (
      link.ifname.startsWith(TAP_PREFIX) && link.master === plan.network.bridge &&
      !wanted.has(link.ifname)
    ) {
      await runner.run([TOOLS.ip, "link", "delete", link.ifname], { okCodes: [0, 1] });
    }
  }
  return created;
}

/** Forwarding is normally on through the package's sysctl.d drop-in; try to turn it on if not. */
async function ensureForwarding(runner: Runner, log: Logger): Promise<void> {
  // Deno treats /proc/sys as privileged: ask sysctl(8) instead of reading it.
  const current = await runner.run([TOOLS.sysctl, "-n", "net.ipv4.ip_forward"]);
  if (current.stdout.trim() === "1") return;
  try {
    await runner.run([TOOLS.sysctl, "-q", "-w", "net.ipv4.ip_forward=1"]);
    log.info("Enabled IPv4 forwarding (net.ipv4.ip_forward=1)");
  } catch (error) {
    throw new RuntimeError(
      `IPv4 forwarding is off and cannot be turned on: ${(error as Error).message}`,
      {
        hint:
          "the package's /usr/lib/sysctl.d/50-aos-unit.conf sets net.ipv4.ip_forward=1; run: sysctl --system",
      },
    );
  }
}

/**
 * Routes the unit's host domain (~aos-unit, ~NAME.aos-unit) to its bridge in resolved; a
 * missing resolved is a warning, not a failure.
 */
export async function routeDomain(
  runner: Runner,
  plan: Plan,
  log: Logger,
  bus?: MessageBus,
): Promise<boolean> {
  // An isolated unit's dnsmasq answers the host on its link, at the bridge address mapped.
  const iso = plan.isolation;
  const link = iso?.hostLink ?? plan.network.bridge;
  const dns = iso
    ? { server: iso.dnsAddress, port: 53 }
    : { server: plan.network.bridgeIp, port: plan.network.dnsPort };
  const ifindex = await ifindexOf(runner, link);
  if (ifindex === undefined) {
    log.warning(`Cannot route ~${plan.network.hostDomain} in resolved: ${link} is missing`);
    return false;
  }
  let own: MessageBus | undefined;
  try {
    own = bus ?? await connectSystemBus();
    const unreachable = await resolvedUnreachable(own);
    if (unreachable) {
      log.warning(`Host-side resolution of *.${plan.network.hostDomain} is off: ${unreachable}`);
      return false;
    }
    await setLinkDns(own, { ifindex, ...dns, domain: plan.network.hostDomain });
    log.info(
      `systemd-resolved routes ~${plan.network.hostDomain} to ${dns.server}:${dns.port} on ${link}`,
    );
    return true;
  } catch (error) {
    log.warning(
      `Host-side resolution of *.${plan.network.hostDomain} is off: ${(error as Error).message} ` +
        "(guests still resolve each other; install and start systemd-resolved for the host)",
    );
    return false;
  } finally {
    if (!bus) own?.disconnect();
  }
}

/**
 * What a guest needs before QEMU starts: the bridge and its taps. The rest
 * (table, forwarding, resolved) follows while the guests boot.
 * @returns the nodes whose tap was made anew (see ensureTaps)
 */
export async function applyLinks(
  runner: Runner,
  plan: Plan,
  group: string,
  existingBridge: LinkInfo | undefined,
  log: Logger,
  keep: ReadonlySet<string> = new Set(),
): Promise<string[]> {
  await ensureBridge(runner, plan, existingBridge, log);
  return await ensureTaps(runner, plan, group, await listLinks(runner), keep);
}

/**
 * Forwarding and the nft tables (NAT, DNS redirect, the guests' fence): an isolated unit's
 * own in its namespace, then its table on the host.
 */
export async function applyFirewall(runner: Runner, plan: Plan, log: Logger): Promise<void> {
  const inside = unitRunner(runner, plan);
  await ensureForwarding(inside, log);
  const ms = await applyRuleset(inside, plan.nft.ruleset);
  log.info(`Applied table inet ${plan.nft.table} in ${ms} ms`);
  if (plan.nft.link && plan.isolation) {
    await ensureForwarding(runner, log);
    const linkMs = await applyRuleset(runner, plan.nft.link);
    log.info(`Applied table inet ${plan.nft.table} on ${plan.isolation.hostLink} in ${linkMs} ms`);
  }
}

/**
 * The documented record of the network (BRIDGE_NAME, BRIDGE_IP, NETMASK, ...), the service
 * user's (its teardown removes it; root's would stay in the sticky runtime directory).
 */
export function writeNetworkConf(plan: Plan, owner?: { uid: number; gid: number }): void {
  writeFileAtomic(plan.networkConf.path, plan.networkConf.content, 0o644, owner);
}

/**
 * The bridge name recorded by startup, if any. The runtime directory is the service
 * user's: only a regular file is read, and only a name of aos-unit's own form counts
 * (cleanup, as root, deletes that bridge).
 */
export function recordedBridge(runtimeDir: string): string | undefined {
  const name = recordedValue(runtimeDir, "BRIDGE_NAME");
  return name && isBridgeName(name) ? name : undefined;
}

/** Files startup and run leave in the runtime directory (and leftovers of older versions). */
const RUNTIME_FILES = [
  /^network\.conf$/,
  /^\..*\.tmp$/,
  /^aos-unit\.nft$/,
  /^dnsmasq\.(conf|leases)$/,
  /\.(serial|qmp)$/,
  /^kvm-probe$/,
  /^image-network\.json$/,
  /^uplinks$/,
  /^readiness\.json$/,
  /^notify\.sock$/,
  /^startup-error$/,
];

/** What teardown knows of the unit it takes down: where its files are, and its marks. */
export interface TeardownOwner {
  runtimeDir: string;
  /** The unit's names (its record): its taps' mark, its tables and its namespace. */
  names: Pick<UnitNames, "owner" | "tapAlias" | "nftTable"> & { namespace?: string | undefined };
  /** Who tears down: only root can delete an isolated unit's namespace. */
  as?: "root" | "manager";
}

/**
 * An isolated unit's link (by its mark) and namespace: the bridge, taps and tables inside
 * go with the namespace; the link goes first and at once (see removeIsolatedNetwork).
 */
async function teardownIsolated(
  runner: Runner,
  names: TeardownOwner["names"],
  releaseAs: "root" | "manager",
  log: Logger,
  bus?: MessageBus,
): Promise<string[]> {
  const removed: string[] = [];
  const mark = ownerAlias(names.owner, "link");
  for (const link of (await listLinks(runner)).filter((l) => l.ifalias === mark)) {
    await revertResolved(link.ifindex, log, bus);
    await runner.run([TOOLS.ip, "link", "delete", link.ifname], { okCodes: [0, 1] });
    removed.push(`link ${link.ifname}`);
  }
  // Root's to delete (its mount is PID 1's): the manager, unprivileged, leaves it to the
  // release after its stop (ExecStopPost=+ of aos-unit@.service).
  if (names.namespace && releaseAs === "root") {
    try {
      if (await releaseNamespace(runner, names.namespace)) {
        removed.push(`namespace ${names.namespace}`);
      }
    } catch (error) {
      // Not root after all (the unit's own cleanup, as its user): the release after the
      // manager's stop deletes it.
      log.debug(`Namespace ${names.namespace} left: ${(error as Error).message}`);
    }
  }
  return removed;
}

/** cleanup: everything the unit created, and nothing else, whatever state it finds. */
export async function teardownNetwork(
  runner: Runner,
  { runtimeDir, names, as = "root" }: TeardownOwner,
  bridges: string[],
  log: Logger,
  bus?: MessageBus,
): Promise<string[]> {
  const removed: string[] = [];
  const failed: string[] = [];
  // Every step runs whatever happened before it: a missing tool must not leave the rest.
  const step = async (what: string, work: () => Promise<void>) => {
    try {
      await work();
    } catch (error) {
      failed.push(`${what}: ${(error as Error).message}`);
    }
  };
  // The links first (the taps at once), then the table: while a tap is on the bridge its
  // guard and the fence stay (a node killed on a failed start may not have exited yet).
  if (names.namespace) {
    await step("namespace", async () => {
      removed.push(...await teardownIsolated(runner, names, as, log, bus));
    });
  }
  await step("links", async () => {
    const links = await listLinks(runner);
    const del = (name: string) =>
      runner.run([TOOLS.ip, "link", "delete", name], { okCodes: [0, 1] });
    for (const name of new Set(bridges)) {
      const bridge = links.find((l) => l.ifname === name);
      if (!bridge) continue;
      if (!isOurs(bridge, names.owner)) {
        log.warning(`Leaving ${name} alone: it was not created by aos-unit`);
        continue;
      }
      const taps = links.filter((l) => l.master === name && l.ifname.startsWith(TAP_PREFIX));
      await Promise.all([
        revertResolved(bridge.ifindex, log, bus),
        ...taps.map((t) => del(t.ifname)),
      ]);
      removed.push(...taps.map((t) => `tap ${t.ifname}`));
      await del(name);
      removed.push(`bridge ${name}`);
    }
    // Our taps whose bridge is already gone (a crash between steps): by the owner's mark,
    // never by name (another unit's taps share the prefix).
    const orphans = links.filter((l) =>
      !l.master && l.linkinfo?.info_kind === "tun" && l.ifalias === names.tapAlias
    );
    await Promise.all(orphans.map((t) => del(t.ifname)));
    removed.push(...orphans.map((t) => `tap ${t.ifname}`));
  });
  await step("nft table", async () => {
    removed.push(...await deleteTable(runner, names.nftTable));
  });
  await step("runtime files", async () => {
    let entries: Deno.DirEntry[] = [];
    try {
      entries = [...Deno.readDirSync(runtimeDir)];
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    for (const entry of entries) {
      if (!RUNTIME_FILES.some((re) => re.test(entry.name))) continue;
      // Not nodes/: root's own, where the node units' directories are made (see
      // host/runtime_dir.ts); they go with the units.
      await Deno.remove(`${runtimeDir}/${entry.name}`);
      removed.push(`${runtimeDir}/${entry.name}`);
    }
  });
  if (failed.length > 0) {
    throw new RuntimeError(
      `Cleanup incomplete (removed ${removed.join(", ") || "nothing"}): ${failed.join("; ")}`,
    );
  }
  return removed;
}

/** @param shared a bus the caller holds (the manager's): no connection of its own */
async function revertResolved(ifindex: number, log: Logger, shared?: MessageBus): Promise<void> {
  let own: MessageBus | undefined;
  try {
    const bus = shared ?? (own = await connectSystemBus(undefined, 1500));
    await revertLink(bus, ifindex);
  } catch (error) {
    log.debug(`Not reverting resolved settings: ${(error as Error).message}`);
  } finally {
    own?.disconnect();
  }
}
