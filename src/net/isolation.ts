/**
 * Makes and removes an isolated unit's namespace and its link to the host
 * (plan/isolation.ts). Converges from whatever it finds: a second run, or one after a
 * crash, gives the same result. Everything inside the namespace (bridge, taps, tables)
 * goes with it when it is deleted; on the host only the link's end, its route and the
 * unit's host table are left to remove, and the link goes with the namespace.
 */

import { TOOLS } from "../base/tools.ts";
import type { Runner } from "../host/runner.ts";
import type { Isolation } from "../plan/isolation.ts";
import type { Plan } from "../plan/types.ts";
import { TRANSFER_PREFIX } from "../plan/isolation.ts";
import { type LinkInfo, ownerAlias } from "./links.ts";
import { RuntimeError } from "../base/errors.ts";

/**
 * argv in PID 1's mount namespace, where a named network namespace must be mounted for
 * the units that join it (NetworkNamespacePath=): systemd runs even a service's "+"
 * commands (the broker) in the service's own mount namespace, whose mounts PID 1 never
 * sees.
 */
export function inHostMounts(argv: readonly string[]): string[] {
  return [TOOLS.nsenter, "--mount=/proc/1/ns/mnt", "--", ...argv];
}

/**
 * A runner whose commands run in network namespace `ns` (`ip netns exec`, which also
 * gives them that namespace's /sys): every tool the unit's network needs works unchanged.
 */
export function namespaced(runner: Runner, ns: string): Runner {
  return {
    get history() {
      return runner.history;
    },
    run: (argv, options) =>
      runner.run(inHostMounts([TOOLS.ip, "netns", "exec", ns, ...argv]), options),
  };
}

/** Where a unit's network commands run: its namespace when isolated, else the host. */
export function unitRunner(runner: Runner, plan: Pick<Plan, "isolation">): Runner {
  return plan.isolation ? namespaced(runner, plan.isolation.namespace) : runner;
}

/** Whether named network namespace `ns` exists (ip-netns(8)'s list). */
export async function namespaceExists(runner: Runner, ns: string): Promise<boolean> {
  const r = await runner.run([TOOLS.ip, "-j", "netns", "list"]);
  return (JSON.parse(r.stdout || "[]") as { name: string }[]).some((n) => n.name === ns);
}

async function addressesOf(runner: Runner, dev: string): Promise<string[]> {
  const r = await runner.run([TOOLS.ip, "-j", "-4", "addr", "show", "dev", dev]);
  return (JSON.parse(r.stdout || "[]") as { addr_info: { local: string; prefixlen: number }[] }[])
    .flatMap((l) => l.addr_info.map((a) => `${a.local}/${a.prefixlen}`));
}

/** `dev` holds exactly `want` (a former block's address is replaced). */
async function ensureAddress(runner: Runner, dev: string, want: string): Promise<void> {
  const have = await addressesOf(runner, dev);
  if (have.length === 1 && have[0] === want) return;
  await runner.run([TOOLS.ip, "-4", "addr", "flush", "dev", dev]);
  await runner.run([TOOLS.ip, "addr", "add", want, "dev", dev]);
}

/**
 * The unit's namespace, its link (host end marked "OWNER link BLOCK"), the transfer
 * addresses, the host's route to MAPPED and the namespace's default route, and forwarding
 * on in the namespace (its own sysctl; the host's is the broker's business).
 */
export async function ensureIsolatedNetwork(
  runner: Runner,
  iso: Isolation,
  owner: string,
): Promise<void> {
  if (!(await namespaceExists(runner, iso.namespace))) {
    await runner.run(inHostMounts([TOOLS.ip, "netns", "add", iso.namespace]));
  }
  const inside = namespaced(runner, iso.namespace);
  const host = await runner.run([TOOLS.ip, "-j", "-d", "link", "show", "dev", iso.hostLink], {
    okCodes: [0, 1],
  });
  if (host.code === 0) {
    // Only the unit's own link is taken over: a veth with its mark (or none yet, from a
    // start that died before marking it).
    const [link] = JSON.parse(host.stdout) as LinkInfo[];
    const mark = ownerAlias(owner, "link");
    if (link?.linkinfo?.info_kind !== "veth" || (link.ifalias && link.ifalias !== mark)) {
      throw new RuntimeError(`${iso.hostLink} exists and is not ${owner}'s link to its namespace`, {
        hint: `ip link show ${iso.hostLink}`,
      });
    }
  } else {
    // (ip finds the namespace by its mount: in PID 1's mount namespace.)
    await runner.run(inHostMounts([
      TOOLS.ip,
      "link",
      "add",
      iso.hostLink,
      "type",
      "veth",
      "peer",
      "name",
      iso.unitLink,
      "netns",
      iso.namespace,
    ]));
  }
  await runner.run([TOOLS.ip, "link", "set", iso.hostLink, "alias", ownerAlias(owner, "link")]);
  await ensureAddress(runner, iso.hostLink, `${iso.hostAddress}/${TRANSFER_PREFIX}`);
  await ensureAddress(inside, iso.unitLink, `${iso.unitAddress}/${TRANSFER_PREFIX}`);
  await runner.run([TOOLS.ip, "link", "set", iso.hostLink, "up"]);
  await inside.run([TOOLS.ip, "link", "set", "lo", "up"]);
  await inside.run([TOOLS.ip, "link", "set", iso.unitLink, "up"]);
  await runner.run([
    TOOLS.ip,
    "route",
    "replace",
    iso.mapped,
    "via",
    iso.unitAddress,
    "dev",
    iso.hostLink,
  ]);
  await inside.run([
    TOOLS.ip,
    "route",
    "replace",
    "default",
    "via",
    iso.hostAddress,
    "dev",
    iso.unitLink,
  ]);
  // The namespace's own forwarding (a new namespace starts with it off).
  const forwarding = await inside.run([TOOLS.sysctl, "-n", "net.ipv4.ip_forward"]);
  if (forwarding.stdout.trim() !== "1") {
    await inside.run([TOOLS.sysctl, "-q", "-w", "net.ipv4.ip_forward=1"]);
  }
}

/**
 * Deletes the unit's namespace (its bridge, taps and tables go with it) when nothing runs
 * in it any more; a node or sidecar still there keeps it, for the next start to adopt.
 * Root only (its mount is in PID 1's mount namespace).
 * @returns whether it was deleted
 */
export async function releaseNamespace(runner: Runner, ns: string): Promise<boolean> {
  if (!(await namespaceExists(runner, ns))) return false;
  const pids = await runner.run(inHostMounts([TOOLS.ip, "netns", "pids", ns]));
  if (pids.stdout.trim() !== "") return false;
  await runner.run(inHostMounts([TOOLS.ip, "netns", "delete", ns]));
  return true;
}

/**
 * Deletes the unit's link, then its namespace: its bridge, taps and tables go with it. The
 * link goes first, and at once: a namespace is taken down by the kernel later, and its
 * link's host end would outlive the call (a start right after would find it).
 * @returns whether there was a namespace
 */
export async function removeIsolatedNetwork(runner: Runner, iso: Isolation): Promise<boolean> {
  await runner.run([TOOLS.ip, "link", "del", "dev", iso.hostLink], { okCodes: [0, 1] });
  return await releaseNamespace(runner, iso.namespace);
}
