/**
 * `aos-unit startup` (ExecStartPre=+, as root): the broker. It is the only
 * part of aos-unit that creates systemd units, and it creates them only from
 * the root-owned configuration, so the unprivileged manager cannot make
 * anything run with other properties (see "Security model" in aos-unit(8)).
 *
 * Guests start first: the links they need, then their units; the firewall,
 * dnsmasq, resolved routing and the slice cap follow while they boot. Units
 * that already run with the same plan (after a manager crash, a restart or an
 * upgrade) are adopted as they are.
 *
 * Root never writes in a directory the service user can change, except for
 * whole-file replacements in the runtime directory (O_EXCL + rename, which
 * never follow a planted symlink); disk files are made by `aos-unit prepare`
 * running as the service user.
 */

import { nodeFailureSpool } from "../plan/layout.ts";
import {
  ConfigError,
  EXIT_CONFIG,
  EXIT_OK,
  exitCodeOf,
  formatDiagnostic,
  formatLocated,
  RuntimeError,
  UsageError,
} from "../base/errors.ts";
import { leaveStartupError } from "../host/startup_error.ts";
import { hostArch } from "../host/facts.ts";
import { probeKvm, readKvmProbe, recordKvmProbe } from "../host/kvm.ts";
import { envOverrides, loadAndPlan, type Loaded } from "../host/load.ts";
import { createRunner, type Runner } from "../host/runner.ts";
import { lookupGroup, lookupUser } from "../host/users.ts";
import { type Logger, logger } from "../log.ts";
import {
  applyFirewall,
  applyLinks,
  routeDomain,
  teardownNetwork,
  writeNetworkConf,
} from "../net/apply.ts";
import { defaultRouteDevices, listAddresses, listLinks, listRoutes } from "../net/links.ts";
import {
  checkBridgeName,
  checkDnsPortFree,
  checkSubnetFree,
  foreignDropPolicies,
} from "../net/preflight.ts";
import { TOOLS } from "../base/tools.ts";
import { checkDnsmasqConfig } from "../net/sidecar_files.ts";
import { NODE_UNIT_PREFIX, SLICE } from "../plan/units.ts";
import type { Plan } from "../plan/types.ts";
import { connectSystemBus } from "../systemd/bus.ts";
import { reconcileUnit, stopStale, wouldAdopt } from "../systemd/reconcile.ts";
import { Systemd } from "../systemd/systemd1.ts";
import { snapshotsDir } from "../plan/snapshot.ts";
import { preparationNeeded } from "../vm/disk.ts";
import { dhcpPreparationNeeded } from "../vm/prepare.ts";
import { accessProblem, type Identity, nodeFileNeeds, nodeIdentity } from "../vm/file_access.ts";
import type { CommandContext } from "./_context.ts";
import { type CommandSpec, flag } from "./_spec.ts";

export interface StartupOptions {
  /** Network only (bridge, taps, table, resolved): for running the parts by hand, as tier 2 does. */
  units: boolean;
}

function isDirectory(path: string): boolean {
  try {
    return Deno.lstatSync(path).isDirectory;
  } catch {
    return false;
  }
}

/** KVM only where it really works; the answer is kept for the boot (and for `plan`). */
async function kvmUsable(
  ctx: CommandContext,
  runner: Runner,
  loaded: Loaded,
  user: { uid: number; gid: number },
  log: Logger,
): Promise<boolean | undefined> {
  const arch = hostArch();
  if (!loaded.config.runtime.enableKvm || !loaded.plan.nodes.some((n) => n.arch === arch)) {
    return undefined;
  }
  const cached = readKvmProbe(ctx.paths);
  if (cached !== undefined) return cached;
  // As the user QEMU runs as, with /dev/kvm's group: what QEMU itself will meet.
  const probe = await probeKvm(runner, arch, {
    uid: user.uid,
    gid: lookupGroup("kvm") ?? user.gid,
  });
  recordKvmProbe(ctx.paths, probe);
  if (!probe.usable) {
    log.warning(`KVM is not usable here (${probe.reason}); nodes run under TCG emulation`);
  }
  return probe.usable;
}

/** Runs `aos-unit prepare` as the service user when a node's files are missing. */
async function prepare(
  ctx: CommandContext,
  runner: Runner,
  plan: Plan,
  user: { uid: number; gid: number },
  executable: string,
  log: Logger,
): Promise<void> {
  const needs = plan.nodes.flatMap((n) =>
    preparationNeeded(n, nodeFailureSpool(plan.paths, n.name)).map((r) => `${n.name}: ${r}`)
  ).concat(dhcpPreparationNeeded(plan));
  // The node units hide it (TemporaryFileSystem=): it must be there before they start.
  if (!isDirectory(snapshotsDir(plan.paths))) needs.push(`no ${snapshotsDir(plan.paths)}`);
  if (needs.length === 0) return;
  log.info(`Preparing node files as the service user (${needs.join("; ")})`);
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(ctx.env)) if (v !== undefined) env[k] = v;
  try {
    const r = await runner.run([executable, "prepare"], { as: user, env, timeoutMs: 300_000 });
    for (const line of r.stderr.trim().split("\n").filter(Boolean)) {
      log.info(line.replace(/^<\d>/, ""));
    }
  } catch (error) {
    const result = (error as { result?: { code: number; stderr: string } }).result;
    const text = result?.stderr.trim().split("\n").map((l) => l.replace(/^<\d>/, "")).join("\n");
    if (result?.code === EXIT_CONFIG) throw new UsageError(text ?? "aos-unit prepare failed");
    throw new RuntimeError(`Cannot prepare the nodes' files: ${text ?? (error as Error).message}`);
  }
}

/**
 * Pre-flight: every file QEMU will open, checked for its user before any unit
 * starts. A problem is a configuration error (exit 2) naming the file and the
 * fix, not a node crash-looping into its start limit.
 */
function checkNodeFiles(plan: Plan, who: Identity, onlyInputs = false): void {
  const problems = plan.nodes.flatMap((n) =>
    nodeFileNeeds(n, nodeFailureSpool(plan.paths, n.name))
      // Before `prepare`: what it reads (a root-owned 0600 image is readable to root only).
      .filter((need) => !onlyInputs || need.access === "r")
      .map((need) => accessProblem(need, who)).filter((p) => p !== undefined)
  );
  if (problems.length > 0) {
    throw new UsageError(
      [...new Set(problems.map((p) => `${p.message}; fix: ${p.fix}`))].join("\n"),
    );
  }
}

/** The nodes whose running QEMU will be adopted: they keep the tap they hold (see ensureTaps). */
async function adoptedNodes(systemd: Systemd, plan: Plan): Promise<Set<string>> {
  const adopted = new Set<string>();
  await Promise.all(plan.nodes.map(async (n) => {
    if (await wouldAdopt(systemd, n.unit)) adopted.add(n.name);
  }));
  return adopted;
}

/** Nodes whose own images tie them to the unit's subnet (a static address in it). */
function imageNeeds(plan: Plan): string[] {
  return plan.nodes.flatMap((n) => {
    const own = n.image.network?.address;
    return own ? [`${n.name}'s image configures itself as ${own.ip}/${own.prefix}`] : [];
  });
}

/** A total CPU cap for all VMs: 90% of the host's CPUs, unless the operator set one. */
async function capSlice(systemd: Systemd, log: Logger): Promise<void> {
  try {
    if (await systemd.sliceCpuQuota(SLICE) !== undefined) return;
    const cpus = navigator.hardwareConcurrency || 1;
    await systemd.setRuntimeProperties(SLICE, [[
      "CPUQuotaPerSecUSec",
      "t",
      Math.round(cpus * 0.9 * 1e6),
    ]]);
    log.info(`${SLICE}: CPUQuota=${cpus * 90}% (90% of ${cpus} CPUs) for all nodes together`);
  } catch (error) {
    log.warning(`Cannot cap ${SLICE}: ${(error as Error).message}`);
  }
}

/** The dnsmasq sidecar: its configuration checked, then its unit (adopted when unchanged). */
async function startDnsmasq(runner: Runner, systemd: Systemd, plan: Plan, log: Logger) {
  await checkDnsmasqConfig(runner, plan);
  const outcome = await reconcileUnit(systemd, plan.dnsmasq.unit, log);
  log.info(`${plan.dnsmasq.unit.name}: ${outcome}`);
}

export async function startupCommand(
  ctx: CommandContext,
  options: StartupOptions,
): Promise<number> {
  const log = logger("startup");
  const started = performance.now();
  const runner = createRunner();
  const elapsed = () => Math.round(performance.now() - started);

  const [hostLinks, addresses, routes] = await Promise.all([
    listLinks(runner),
    listAddresses(runner),
    listRoutes(runner),
  ]);
  const host = { links: hostLinks, addresses, routes };
  let systemd: Systemd | undefined;
  if (options.units) {
    systemd = await Systemd.open(await connectSystemBus());
  }
  try {
    const overrides = {
      ...envOverrides(ctx.env),
      uplinks: defaultRouteDevices(routes),
      recordImageFacts: true,
      systemdVersion: systemd ? await systemd.version() : undefined,
    };
    let loaded = loadAndPlan(ctx.paths, overrides);
    // No image, an unreadable one or missing UEFI firmware: nothing can boot (the network
    // alone can still be made).
    // ... or an image that configures itself for another network than the plan's.
    const blocking = options.units
      ? loaded.warnings.filter((w) => w.blocksRun || w.severity === "error")
      : [];
    if (blocking.length > 0) {
      throw new ConfigError(blocking.map((w) => ({ ...w, severity: "error" as const })));
    }
    const user = lookupUser(loaded.facts.serviceUser);
    Deno.mkdirSync(ctx.paths.runtimeDir, { recursive: true });
    const kvm = await kvmUsable(ctx, runner, loaded, user, log);
    if (kvm !== undefined) loaded = loadAndPlan(ctx.paths, { ...overrides, kvmUsable: kvm });
    const { plan, config } = loaded;
    for (const w of loaded.warnings) log.warning(formatLocated(w));

    const existing = checkBridgeName(plan.network, host);
    checkSubnetFree(plan.network, host, config.runtime.subnetAt, imageNeeds(plan));
    checkDnsPortFree(plan.network, (await runner.run([TOOLS.ss, "-Hlnut"])).stdout);

    if (systemd) {
      const who = { name: loaded.facts.serviceUser, uid: user.uid, gids: [user.gid] };
      checkNodeFiles(plan, who, true);
      await prepare(ctx, runner, plan, user, loaded.facts.executable, log);
      checkNodeFiles(plan, nodeIdentity(loaded.facts.serviceUser, user.uid, user.gid, true));
      // Nodes the configuration no longer has go first: their taps are about to be removed.
      await stopStale(
        systemd,
        `${NODE_UNIT_PREFIX}*.service`,
        new Set(plan.nodes.map((n) => n.unit.name)),
        log,
      );
    }
    const adopted = systemd ? await adoptedNodes(systemd, plan) : new Set<string>();
    try {
      const newTaps = await applyLinks(
        runner,
        plan,
        loaded.facts.serviceUser,
        existing,
        log,
        adopted,
      );
      if (systemd) {
        const sd = systemd;
        const outcomes = await Promise.all(
          plan.nodes.map(async (n) =>
            `${n.name} ${await reconcileUnit(
              sd,
              n.unit,
              log,
              newTaps.includes(n.name) ? `its tap ${n.tap} was gone` : undefined,
            )}`
          ),
        );
        log.info(`Nodes after ${elapsed()} ms: ${outcomes.join(", ")}`);
      }
      await applyFirewall(runner, plan, log);
      if (systemd) await startDnsmasq(runner, systemd, plan, log);
    } catch (error) {
      // Leave nothing half-made when this run created the bridge: guests this run started
      // would otherwise keep running on deleted taps, and the next start would adopt them.
      if (!existing) {
        if (systemd) {
          const sd = systemd;
          await Promise.all(plan.nodes.map(async ({ unit: { name } }) => {
            await sd.enqueueStop(name);
            await sd.killUnit(name, "SIGKILL");
            await sd.clearOld(name);
          })).catch((e) => log.warning(`Cannot stop the nodes: ${(e as Error).message}`));
        }
        await teardownNetwork(runner, ctx.paths.runtimeDir, [plan.network.bridge], log).catch(
          () => {},
        );
      }
      throw error;
    }
    await routeDomain(runner, plan, log, systemd?.bus);
    if (systemd) await capSlice(systemd, log);
    writeNetworkConf(plan);
    const chains = await runner.run([TOOLS.nft, "-j", "list", "chains"], { okCodes: [0, 1] });
    for (const p of foreignDropPolicies(chains.stdout, plan.network)) {
      log.warning(`${p.message}; allow them with: ${p.fix}`);
    }
    log.info(
      `Ready in ${elapsed()} ms: bridge ${plan.network.bridge} ` +
        `${plan.network.bridgeIp}/${plan.network.prefix}, ${plan.nodes.length} node(s), DNS port ${plan.network.dnsPort}`,
    );
    return EXIT_OK;
  } finally {
    systemd?.bus.disconnect();
  }
}

/**
 * Under systemd: RestartPreventExitStatus= applies to the main process only,
 * so a configuration error in ExecStartPre= would be retried in a loop. With
 * --defer-config-errors, startup logs such an error, leaves it in the runtime
 * directory and exits 0; `run` (ExecStart=) then reports it and exits 2.
 */
export async function startupDeferringErrors(
  ctx: CommandContext,
  defer: boolean,
  options: StartupOptions,
): Promise<number> {
  try {
    return await startupCommand(ctx, options);
  } catch (error) {
    if (!defer || exitCodeOf(error) !== EXIT_CONFIG) throw error;
    const text = error instanceof ConfigError && error.diagnostics.length > 0
      ? error.diagnostics.map(formatDiagnostic).join("\n")
      : (error as Error).message;
    logger("startup").error(`${text} (aos-unit run reports this and exits 2)`);
    leaveStartupError(ctx.paths.runtimeDir, text);
    return EXIT_OK;
  }
}

export const startupSpec: CommandSpec = {
  name: "startup",
  summary:
    "ExecStartPre=+ (root): the broker; network, then the node and sidecar units from the root-owned config",
  group: "internal",
  options: [
    {
      flags: "--defer-config-errors",
      description:
        "on a configuration error exit 0 and leave it for `run` to report with exit 2 (as the unit does)",
    },
    {
      flags: "--no-units",
      description: "set up the network only (bridge, taps, table, resolved), start no unit",
    },
  ],
  examples:
    "\nExample (as systemd runs it):\n  ExecStartPre=+/usr/bin/aos-unit startup --defer-config-errors",
  run: (ctx, call) =>
    startupDeferringErrors(ctx, flag(call, "deferConfigErrors"), {
      units: call.opts.units !== false,
    }),
};
