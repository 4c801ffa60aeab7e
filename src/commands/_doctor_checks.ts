/**
 * `aos-unit doctor`'s checks: host prerequisites, each checked without changing
 * anything, each with the exact command that fixes a problem. The broker
 * raises the same problems through the same functions (net/preflight.ts,
 * vm/file_access.ts, the planner's diagnostics): a check renders a structured
 * Problem, it never re-reads another function's message.
 */

import { nodeFailureSpool } from "../plan/layout.ts";
import type { Config } from "../base/config_types.ts";
import { type Diagnostic, formatLocated, type Problem } from "../base/errors.ts";
import { POLKIT_RULES, PROC_CGROUPS } from "../base/host_files.ts";
import { packageOf, TOOLS } from "../base/tools.ts";
import { exists } from "../host/facts.ts";
import { probeKvm } from "../host/kvm.ts";
import type { Runner } from "../host/runner.ts";
import { lookupGroup, lookupUser } from "../host/users.ts";
import { defaultRouteDevices, listAddresses, listLinks, listRoutes } from "../net/links.ts";
import {
  bridgeProblem,
  dnsPortProblem,
  foreignDropPolicies,
  type HostNetwork,
  subnetProblem,
} from "../net/preflight.ts";
import type { HostFacts, Plan } from "../plan/types.ts";
import { call, type MessageBus, nameHasOwner } from "../systemd/bus.ts";
import { resolvedUnreachable } from "../systemd/resolved.ts";
import type { Systemd } from "../systemd/systemd1.ts";
import { accessProblem, nodeFileNeeds, nodeIdentity } from "../vm/file_access.ts";

export type CheckStatus = "ok" | "warn" | "fail";

export interface CheckResult {
  id: string;
  status: CheckStatus;
  detail: string;
  /** The command (or change) that fixes a problem. */
  fix?: string;
}

export interface CheckInput {
  config: Config | undefined;
  /** The configuration's problems (errors make the config check fail). */
  diagnostics: readonly Diagnostic[];
  plan: Plan | undefined;
  facts: HostFacts | undefined;
  runner: Runner;
  systemd: Systemd | undefined;
  bus: MessageBus | undefined;
  busProblem: string | undefined;
}

const ok = (id: string, detail: string): CheckResult => ({ id, status: "ok", detail });

function problem(id: string, status: CheckStatus, detail: string, fix?: string): CheckResult {
  return { id, status, detail, ...(fix ? { fix } : {}) };
}

/** A structured Problem as a check result. */
const rendered = (p: Problem, status: CheckStatus): CheckResult =>
  problem(p.check, status, p.message, p.fix);

/**
 * What the checks share, each looked up once: the service user, the host's
 * links, addresses and routes.
 */
export class Doctor {
  #user: { uid: number; gid: number } | undefined | null = null;
  #network: Promise<HostNetwork> | undefined;

  constructor(readonly input: CheckInput) {}

  get serviceUser(): string {
    return this.input.facts?.serviceUser ?? "aos-unit";
  }

  /** uid and gid of the service user, or undefined when it does not exist. */
  user(): { uid: number; gid: number } | undefined {
    if (this.#user === null) {
      try {
        this.#user = lookupUser(this.serviceUser);
      } catch {
        this.#user = undefined;
      }
    }
    return this.#user;
  }

  network(): Promise<HostNetwork> {
    this.#network ??= Promise.all([
      listLinks(this.input.runner),
      listAddresses(this.input.runner),
      listRoutes(this.input.runner),
    ]).then(([links, addresses, routes]) => ({ links, addresses, routes }));
    return this.#network;
  }
}

type Outcome = CheckResult | CheckResult[] | undefined;

export interface Check {
  /** The id reported when the check cannot run at all. */
  id: string;
  run(d: Doctor): Outcome | Promise<Outcome>;
}

const bus: Check = {
  id: "bus",
  run: ({ input }) =>
    input.busProblem
      ? problem("bus", "fail", input.busProblem, "systemctl start dbus")
      : ok("bus", "the system bus answers"),
};

const user: Check = {
  id: "user",
  run: (d) => {
    const found = d.user();
    return found ? ok("user", `service user ${d.serviceUser} (uid ${found.uid})`) : problem(
      "user",
      "fail",
      `the service user ${d.serviceUser} does not exist`,
      "systemd-sysusers /usr/lib/sysusers.d/aos-unit.conf",
    );
  },
};

const config: Check = {
  id: "config",
  run: ({ input: i }) => {
    const errors = i.diagnostics.filter((d) => d.severity === "error");
    return errors.length > 0 || !i.config
      ? problem(
        "config",
        "fail",
        errors.map(formatLocated).join("; ") || "the configuration cannot be read",
        "aos-unit validate (lists every problem with its line)",
      )
      : ok("config", `${i.config.unit.nodes.length} node(s), subnet ${i.plan?.network.cidr}`);
  },
};

const tools: Check = {
  id: "tools",
  run: () =>
    ([TOOLS.ip, TOOLS.nft, TOOLS.dnsmasq, TOOLS.conntrack, TOOLS.qemuImg] as const).map((tool) => {
      const id = `tool:${tool.split("/").pop()}`;
      return exists(tool)
        ? ok(id, `${tool} is installed`)
        : problem(id, "fail", `${tool} is missing`, `apt-get install ${packageOf(tool)}`);
    }),
};

/** What the plan cannot boot without: emulators, firmware, images (the planner's findings). */
const bootables: Check = {
  id: "images",
  run: ({ input: { plan } }) => {
    if (!plan) return undefined;
    const blocking = plan.warnings.filter((w) => w.blocksRun);
    return ["emulator", "firmware", "images"].flatMap((id) => {
      const found = blocking.filter((w) => w.check === id);
      return found.length > 0
        ? found.map((w) => problem(id, "fail", w.message, w.fix))
        : [ok(id, `present for every node (${plan.nodes.map((n) => n.name).join(", ")})`)];
    });
  },
};

/** What the images configure for themselves, against the plan (the planner's findings). */
const imageNetwork: Check = {
  id: "image-network",
  run: ({ input: { plan } }) => {
    if (!plan) return undefined;
    const found = plan.warnings.filter((w) => w.check === "image-network");
    if (found.length > 0) {
      return found.map((w) => problem("image-network", "fail", w.message, w.fix));
    }
    const read = plan.nodes.filter((n) => n.image.network).map((n) => n.name);
    return ok(
      "image-network",
      read.length > 0
        ? `the images of ${read.join(", ")} agree with the plan`
        : "no image configures its own network (or none could be read)",
    );
  },
};

const nodeFiles: Check = {
  id: "node-files",
  run: (d) => {
    const plan = d.input.plan;
    const found = d.user();
    if (!plan || !found) return undefined;
    const who = nodeIdentity(d.serviceUser, found.uid, found.gid, false);
    const files = plan.nodes.flatMap((n) =>
      nodeFileNeeds(n, nodeFailureSpool(plan.paths, n.name)).filter((need) => exists(need.path))
    );
    const problems = files.map((need) => accessProblem(need, who)).filter((p) => p !== undefined);
    return problems.length === 0
      ? ok("node-files", `${files.length} file(s) QEMU opens are accessible to ${d.serviceUser}`)
      : problem(
        "node-files",
        "fail",
        problems.map((p) => p.message).join("; "),
        [...new Set(problems.map((p) => p.fix))].join("; "),
      );
  },
};

const kvm: Check = {
  id: "kvm",
  run: async (d) => {
    const { config, facts, runner } = d.input;
    if (config && !config.runtime.enableKvm) {
      return ok("kvm", "ENABLE_KVM is false: nodes run under TCG");
    }
    // As the broker probes: the user QEMU runs as, with /dev/kvm's group (root only can).
    const found = d.user();
    const as = found && Deno.uid() === 0
      ? { uid: found.uid, gid: lookupGroup("kvm") ?? found.gid }
      : undefined;
    const probe = await probeKvm(runner, facts?.hostArch ?? "x86_64", as);
    return probe.usable ? ok("kvm", "KVM works: nodes of the host's architecture use it") : problem(
      "kvm",
      "warn",
      `KVM is not usable (${probe.reason}): nodes run under TCG emulation, much slower`,
      "enable virtualization in the firmware and load the module (modprobe kvm_intel or kvm_amd), " +
        'or set ENABLE_KVM="false" in runtime.conf to skip the probe',
    );
  },
};

/**
 * The cgroup controllers the kernel has enabled, from /proc/cgroups
 * ("#subsys_name hierarchy num_cgroups enabled"); the same on cgroup v1 and v2.
 */
export function enabledControllers(procCgroups: string): Set<string> {
  return new Set(
    procCgroups.split("\n").filter((l) => l && !l.startsWith("#")).map((l) => l.split(/\s+/))
      .filter((f) => f[3] === "1").map((f) => f[0]!),
  );
}

const cgroups: Check = {
  id: "cgroups",
  run: async ({ input }) => {
    // Deno may not read /proc or /sys without a blanket grant: cat(1) reads it.
    const have = enabledControllers((await input.runner.run([TOOLS.cat, PROC_CGROUPS])).stdout);
    const missing = ["cpu", "memory"].filter((c) => !have.has(c));
    return missing.length === 0
      ? ok(
        "cgroups",
        `controllers ${[...have].sort().join(" ")}: CPUQuota= and MemoryMax= are enforced`,
      )
      : problem(
        "cgroups",
        "warn",
        `cgroup controllers missing: ${missing.join(", ")} (CPUQuota=/MemoryMax= are not enforced)`,
        "enable them on the kernel command line (e.g. cgroup_enable=memory) and reboot",
      );
  },
};

const ipForward: Check = {
  id: "ip_forward",
  run: async ({ input }) => {
    const r = await input.runner.run([TOOLS.sysctl, "-n", "net.ipv4.ip_forward"]);
    return r.stdout.trim() === "1" ? ok("ip_forward", "IPv4 forwarding is on") : problem(
      "ip_forward",
      "warn",
      "IPv4 forwarding is off: the guests cannot reach the internet until aos-unit turns it on",
      "sysctl --system (the package's /usr/lib/sysctl.d/50-aos-unit.conf sets net.ipv4.ip_forward=1)",
    );
  },
};

const subnet: Check = {
  id: "subnet",
  run: async (d) => {
    const { plan, config } = d.input;
    if (!plan || !config) return undefined;
    const p = subnetProblem(plan.network, await d.network(), config.runtime.file);
    return p
      ? rendered(p, "fail")
      : ok("subnet", `${plan.network.cidr} overlaps no route or address of the host`);
  },
};

const bridge: Check = {
  id: "bridge",
  run: async (d) => {
    const plan = d.input.plan;
    if (!plan) return undefined;
    const host = await d.network();
    const p = bridgeProblem(plan.network, host);
    if (p) return rendered(p, "fail");
    const existing = host.links.some((l) => l.ifname === plan.network.bridge);
    return ok(
      "bridge",
      `${plan.network.bridge} ${existing ? "exists (made by aos-unit)" : "is free"}`,
    );
  },
};

const uplink: Check = {
  id: "uplink",
  run: async (d) => {
    if (!d.input.plan) return undefined;
    const uplinks = defaultRouteDevices((await d.network()).routes);
    return uplinks.length > 0 ? ok("uplink", `default route via ${uplinks.join(", ")}`) : problem(
      "uplink",
      "warn",
      "no default route: the guests have no way out",
      "connect the host to a network",
    );
  },
};

const dnsPort: Check = {
  id: "dns-port",
  run: async ({ input: { plan, systemd, runner } }) => {
    if (!plan) return undefined;
    const ours = systemd
      ? (await systemd.unitState(plan.dnsmasq.unit.name))?.activeState
      : undefined;
    const p = dnsPortProblem(plan.network, (await runner.run([TOOLS.ss, "-Hlnut"])).stdout);
    return p ? rendered(p, "fail") : ok(
      "dns-port",
      `port ${plan.network.dnsPort} is free${ours === "active" ? " (or ours)" : ""}`,
    );
  },
};

const firewall: Check = {
  id: "firewall",
  run: async ({ input: { plan, runner } }) => {
    if (!plan) return undefined;
    const chains = await runner.run([TOOLS.nft, "-j", "list", "chains"], { okCodes: [0, 1] });
    const found = foreignDropPolicies(chains.stdout, plan.network);
    return found.length === 0
      ? ok("firewall", "no other table drops the guests' traffic by default")
      : found.map((p) => rendered(p, "warn"));
  },
};

const resolved: Check = {
  id: "resolved",
  run: async ({ input: { bus } }) => {
    const offBus = bus ? await resolvedUnreachable(bus) : undefined;
    if (offBus) return problem("resolved", "warn", offBus, "systemctl restart systemd-resolved");
    const running = bus ? await nameHasOwner(bus, "org.freedesktop.resolve1") : false;
    return running
      ? ok("resolved", "systemd-resolved runs: the host resolves NAME.aos-unit")
      : problem(
        "resolved",
        "warn",
        "systemd-resolved is not running: guests resolve each other, the host cannot resolve NAME.aos-unit",
        "apt-get install systemd-resolved libnss-resolve && systemctl enable --now systemd-resolved",
      );
  },
};

/** Running, or started by the bus on the first call (polkitd is bus-activated). */
async function nameAvailable(bus: MessageBus, name: string): Promise<boolean> {
  if (await nameHasOwner(bus, name)) return true;
  const [names] = await call(bus, {
    destination: "org.freedesktop.DBus",
    path: "/org/freedesktop/DBus",
    interface: "org.freedesktop.DBus",
    member: "ListActivatableNames",
    timeoutMs: 2000,
  }) as [string[]];
  return names.includes(name);
}

const polkit: Check = {
  id: "polkit",
  run: async ({ input: { bus } }) => {
    if (!exists(POLKIT_RULES)) {
      return problem(
        "polkit",
        "fail",
        `${POLKIT_RULES} is missing: the manager may not stop or restart the node units`,
        "apt-get install --reinstall aos-unit",
      );
    }
    const running = bus ? await nameAvailable(bus, "org.freedesktop.PolicyKit1") : true;
    return running ? ok("polkit", `rules installed (${POLKIT_RULES})`) : problem(
      "polkit",
      "fail",
      "polkitd is not running",
      "apt-get install polkitd && systemctl start polkit",
    );
  },
};

/** Every check, in the order doctor reports them. */
export const CHECKS: readonly Check[] = [
  bus,
  user,
  config,
  tools,
  bootables,
  imageNetwork,
  nodeFiles,
  kvm,
  cgroups,
  ipForward,
  subnet,
  bridge,
  uplink,
  dnsPort,
  firewall,
  resolved,
  polkit,
];

/** Runs every check; never throws (a check that cannot run reports why). */
export async function runChecks(input: CheckInput): Promise<CheckResult[]> {
  const d = new Doctor(input);
  const out: CheckResult[] = [];
  for (const check of CHECKS) {
    try {
      const r = await check.run(d);
      if (r) out.push(...(Array.isArray(r) ? r : [r]));
    } catch (error) {
      out.push(problem(check.id, "fail", `cannot check: ${(error as Error).message}`));
    }
  }
  return out;
}

/** One line per check, with the fix under each problem. */
export function renderChecks(results: readonly CheckResult[]): string {
  const width = Math.max(...results.map((r) => r.id.length));
  return results.map((r) =>
    `${r.status.padEnd(4)}  ${r.id.padEnd(width)}  ${r.detail}${
      r.fix ? `\n${" ".repeat(6 + width + 2)}fix: ${r.fix}` : ""
    }`
  ).join("\n");
}
