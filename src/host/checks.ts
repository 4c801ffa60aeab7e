/**
 * Host prerequisites, each checked without changing anything, each with the
 * exact command that fixes it. `aos-unit doctor` runs them all; the broker
 * raises the same messages through the functions these checks call
 * (preflight.ts, file_access.ts, the planner's warnings), so a fix is written
 * in one place.
 */

import type { Config } from "../config/types.ts";
import { type Diagnostic, formatLocated } from "../errors.ts";
import { defaultRouteDevices, listAddresses, listLinks, listRoutes } from "../net/links.ts";
import {
  checkBridgeName,
  checkDnsPortFree,
  checkSubnetFree,
  foreignDropPolicies,
} from "../net/preflight.ts";
import { POLKIT_RULES, PROC_CGROUPS, TOOLS } from "../permissions.ts";
import type { HostFacts, Plan } from "../plan/types.ts";
import { DNSMASQ_UNIT } from "../plan/units.ts";
import { call, type MessageBus, nameHasOwner } from "../systemd/bus.ts";
import { resolvedUnreachable } from "../systemd/resolved.ts";
import type { Systemd } from "../systemd/systemd1.ts";
import { accessProblem, nodeFileNeeds } from "../vm/file_access.ts";
import { exists } from "./facts.ts";
import { probeKvm } from "./kvm.ts";
import type { Runner } from "./runner.ts";
import { lookupGroup, lookupUser } from "./users.ts";

export type CheckStatus = "ok" | "warn" | "fail";

export interface CheckResult {
  id: string;
  status: CheckStatus;
  detail: string;
  /** The command (or change) that fixes a problem. */
  fix?: string;
}

const ok = (id: string, detail: string): CheckResult => ({ id, status: "ok", detail });
const problem = (id: string, status: CheckStatus, detail: string, fix?: string): CheckResult => ({
  id,
  status,
  detail,
  ...(fix ? { fix } : {}),
});

/** A thrown RuntimeError as a check result: its message, and its hint as the fix. */
function fromError(id: string, status: CheckStatus, error: unknown): CheckResult {
  const e = error as { message: string; hint?: string };
  return problem(id, status, e.message, e.hint);
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

/** Runs every check; never throws (a check that cannot run reports why). */
export async function runChecks(i: CheckInput): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  const safely = async (id: string, check: () => Promise<CheckResult | CheckResult[]>) => {
    try {
      const r = await check();
      out.push(...(Array.isArray(r) ? r : [r]));
    } catch (error) {
      out.push(problem(id, "fail", `cannot check: ${(error as Error).message}`));
    }
  };

  await safely("bus", () =>
    Promise.resolve(
      i.busProblem
        ? problem("bus", "fail", i.busProblem, "systemctl start dbus")
        : ok("bus", "the system bus answers"),
    ));

  const serviceUser = i.facts?.serviceUser ?? "aos-unit";
  let user: { uid: number; gid: number } | undefined;
  await safely("user", () => {
    user = lookupUser(serviceUser);
    return Promise.resolve(ok("user", `service user ${serviceUser} (uid ${user.uid})`));
  });
  if (!user) {
    out[out.length - 1] = problem(
      "user",
      "fail",
      `the service user ${serviceUser} does not exist`,
      "systemd-sysusers /usr/lib/sysusers.d/aos-unit.conf",
    );
  }

  const errors = i.diagnostics.filter((d) => d.severity === "error");
  out.push(
    errors.length > 0 || !i.config
      ? problem(
        "config",
        "fail",
        errors.map(formatLocated).join("; ") || "the configuration cannot be read",
        "aos-unit validate (lists every problem with its line)",
      )
      : ok("config", `${i.config.unit.nodes.length} node(s), subnet ${i.plan?.network.cidr}`),
  );

  for (
    const [tool, pkg] of [
      [TOOLS.ip, "iproute2"],
      [TOOLS.nft, "nftables"],
      [TOOLS.dnsmasq, "dnsmasq-base"],
      [TOOLS.conntrack, "conntrack"],
      [TOOLS.qemuImg, "qemu-utils"],
    ] as const
  ) {
    out.push(
      exists(tool) ? ok(`tool:${tool.split("/").pop()}`, `${tool} is installed`) : problem(
        `tool:${tool.split("/").pop()}`,
        "fail",
        `${tool} is missing`,
        `apt-get install ${pkg}`,
      ),
    );
  }

  // What the plan cannot boot without: emulators, firmware, images (the planner's messages).
  if (i.plan) {
    const blocking = i.plan.warnings.filter((w) => w.blocksRun);
    for (const w of blocking) {
      const install = /install (\S+)/.exec(w.message)?.[1];
      const id = /QEMU for/.test(w.message)
        ? "emulator"
        : /firmware/.test(w.message)
        ? "firmware"
        : "images";
      out.push(
        problem(
          id,
          "fail",
          w.message,
          install
            ? `apt-get install ${install}`
            : `cp IMAGE.qcow2 ${i.plan.paths.stateDir}/ && chown aos-unit:aos-unit ${i.plan.paths.stateDir}/*.qcow2`,
        ),
      );
    }
    for (const id of ["emulator", "firmware", "images"]) {
      if (!out.some((r) => r.id === id)) {
        out.push(ok(id, `present for every node (${i.plan.nodes.map((n) => n.name).join(", ")})`));
      }
    }
    if (user) {
      const who = { name: serviceUser, uid: user.uid, gids: [user.gid] };
      const files = i.plan.nodes.flatMap((n) =>
        nodeFileNeeds(n, i.plan!.failureLog).filter((need) => exists(need.path))
      );
      const problems = files.map((need) => accessProblem(need, who)).filter((p) => p);
      out.push(
        problems.length === 0
          ? ok("node-files", `${files.length} file(s) QEMU opens are accessible to ${serviceUser}`)
          : problem(
            "node-files",
            "fail",
            problems.map((p) => p!.message).join("; "),
            [...new Set(problems.map((p) => p!.fix))].join("; "),
          ),
      );
    }
  }

  await safely("kvm", async () => {
    if (i.config && !i.config.runtime.enableKvm) {
      return ok("kvm", "ENABLE_KVM is false: nodes run under TCG");
    }
    const arch = i.facts?.hostArch ?? "x86_64";
    // As the broker probes: the user QEMU runs as, with /dev/kvm's group (root only can).
    const as = user && Deno.uid() === 0
      ? { uid: user.uid, gid: lookupGroup("kvm") ?? user.gid }
      : undefined;
    const probe = await probeKvm(i.runner, arch, as);
    return probe.usable ? ok("kvm", "KVM works: nodes of the host's architecture use it") : problem(
      "kvm",
      "warn",
      `KVM is not usable (${probe.reason}): nodes run under TCG emulation, much slower`,
      "enable virtualization in the firmware and load the module (modprobe kvm_intel or kvm_amd), " +
        'or set ENABLE_KVM="false" in runtime.conf to skip the probe',
    );
  });

  await safely("cgroups", async () => {
    // Deno may not read /proc or /sys without a blanket grant: cat(1) reads it.
    const have = enabledControllers((await i.runner.run([TOOLS.cat, PROC_CGROUPS])).stdout);
    const missing = ["cpu", "memory"].filter((c) => !have.has(c));
    return Promise.resolve(
      missing.length === 0
        ? ok(
          "cgroups",
          `controllers ${[...have].sort().join(" ")}: CPUQuota= and MemoryMax= are enforced`,
        )
        : problem(
          "cgroups",
          "warn",
          `cgroup controllers missing: ${
            missing.join(", ")
          } (CPUQuota=/MemoryMax= are not enforced)`,
          "enable them on the kernel command line (e.g. cgroup_enable=memory) and reboot",
        ),
    );
  });

  await safely("ip_forward", async () => {
    const r = await i.runner.run([TOOLS.sysctl, "-n", "net.ipv4.ip_forward"]);
    return r.stdout.trim() === "1" ? ok("ip_forward", "IPv4 forwarding is on") : problem(
      "ip_forward",
      "warn",
      "IPv4 forwarding is off: the guests cannot reach the internet until aos-unit turns it on",
      "sysctl --system (the package's /usr/lib/sysctl.d/50-aos-unit.conf sets net.ipv4.ip_forward=1)",
    );
  });

  if (i.plan) {
    const plan = i.plan;
    await safely("network", async () => {
      const [links, addresses, routes] = await Promise.all([
        listLinks(i.runner),
        listAddresses(i.runner),
        listRoutes(i.runner),
      ]);
      const host = { links, addresses, routes };
      const results: CheckResult[] = [];
      try {
        checkSubnetFree(plan.network, host, { file: i.config!.runtime.file, line: 1, column: 1 });
        results.push(ok("subnet", `${plan.network.cidr} overlaps no route or address of the host`));
      } catch (error) {
        results.push(
          problem(
            "subnet",
            "fail",
            (error as Error).message.replace(/; choose a free subnet in runtime.conf$/, ""),
            `choose a free subnet: DHCP_CIDR="..." in ${i.config!.runtime.file}`,
          ),
        );
      }
      try {
        const existing = checkBridgeName(plan.network, host);
        results.push(
          ok(
            "bridge",
            `${plan.network.bridge} ${existing ? "exists (made by aos-unit)" : "is free"}`,
          ),
        );
      } catch (error) {
        results.push(
          problem(
            "bridge",
            "fail",
            (error as Error).message.replace(/ \(remove it: .*\)$/, ""),
            `ip link delete ${plan.network.bridge}`,
          ),
        );
      }
      const uplinks = defaultRouteDevices(routes);
      results.push(
        uplinks.length > 0 ? ok("uplink", `default route via ${uplinks.join(", ")}`) : problem(
          "uplink",
          "warn",
          "no default route: the guests have no way out",
          "connect the host to a network",
        ),
      );
      return results;
    });

    await safely("dns-port", async () => {
      const ours = i.systemd ? (await i.systemd.unitState(DNSMASQ_UNIT))?.activeState : undefined;
      try {
        checkDnsPortFree(plan.network, (await i.runner.run([TOOLS.ss, "-Hlnut"])).stdout);
        return ok(
          "dns-port",
          `port ${plan.network.dnsPort} is free${ours === "active" ? " (or ours)" : ""}`,
        );
      } catch (error) {
        return fromError("dns-port", "fail", error);
      }
    });

    await safely("firewall", async () => {
      const chains = await i.runner.run([TOOLS.nft, "-j", "list", "chains"], { okCodes: [0, 1] });
      const warnings = foreignDropPolicies(chains.stdout, plan.network);
      return warnings.length === 0
        ? ok("firewall", "no other table drops the guests' traffic by default")
        : warnings.map((w) => {
          const [detail, fix] = w.split("; allow them with: ");
          return problem("firewall", "warn", detail!, fix);
        });
    });
  }

  await safely("resolved", async () => {
    const offBus = i.bus ? await resolvedUnreachable(i.bus) : undefined;
    if (offBus) return problem("resolved", "warn", offBus, "systemctl restart systemd-resolved");
    const running = i.bus ? await nameHasOwner(i.bus, "org.freedesktop.resolve1") : false;
    return running
      ? ok("resolved", "systemd-resolved runs: the host resolves NAME.aos-unit")
      : problem(
        "resolved",
        "warn",
        "systemd-resolved is not running: guests resolve each other, the host cannot resolve NAME.aos-unit",
        "apt-get install systemd-resolved libnss-resolve && systemctl enable --now systemd-resolved",
      );
  });

  await safely("polkit", async () => {
    if (!exists(POLKIT_RULES)) {
      return problem(
        "polkit",
        "fail",
        `${POLKIT_RULES} is missing: the manager may not stop or restart the node units`,
        "apt-get install --reinstall aos-unit",
      );
    }
    const running = i.bus ? await nameAvailable(i.bus, "org.freedesktop.PolicyKit1") : true;
    return running ? ok("polkit", `rules installed (${POLKIT_RULES})`) : problem(
      "polkit",
      "fail",
      "polkitd is not running",
      "apt-get install polkitd && systemctl start polkit",
    );
  });

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
