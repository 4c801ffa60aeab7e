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

import {
  DEFAULT_UNIT,
  NODE_UNIT_PREFIX,
  unitLabel,
  unitNames,
  unitOfMark,
  unitOfTable,
} from "../base/unit_identity.ts";
import { crossUnitForwardClashes, forwardsTaken, heldForwards } from "../config/forwards.ts";
import { otherUnitsNodes } from "../host/config_files.ts";
import { otherUnitTables } from "../net/nft.ts";
import { nodeFailureSpool } from "../plan/layout.ts";
import { withHostLock } from "../host/host_lock.ts";
import { ensureRuntimeDirs } from "../host/runtime_dir.ts";
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
import { clearStartupError, leaveStartupError } from "../host/startup_error.ts";
import { hostArch } from "../host/facts.ts";
import { probeKvm, readKvmProbe, recordKvmProbe } from "../host/kvm.ts";
import { envOverrides, loadAndPlan, type Loaded } from "../host/load.ts";
import type { FactOverrides } from "../host/facts.ts";
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
import {
  defaultRouteDevices,
  type LinkInfo,
  linkInfo,
  listAddresses,
  listLinks,
  listRoutes,
  routesOfOthers,
  takenByOthers,
} from "../net/links.ts";
import {
  ensureIsolatedNetwork,
  namespaced,
  namespaceExists,
  unitRunner,
} from "../net/isolation.ts";
import type { Isolation } from "../plan/isolation.ts";
import { overlaps, parseCidr } from "../base/ipv4.ts";
import {
  checkBridgeName,
  checkDnsPortFree,
  checkSubnetFree,
  foreignDropPolicies,
  type HostNetwork,
  type UnitOfLink,
} from "../net/preflight.ts";
import { configFiles, rootsOf, unitPaths } from "../host/paths.ts";
import { TOOLS } from "../base/tools.ts";
import { Timeline } from "../base/timeline.ts";
import { checkDnsmasqConfig } from "../net/sidecar_files.ts";
import type { Paths, Plan } from "../plan/types.ts";
import { connectSystemBus } from "../systemd/bus.ts";
import { reconcileUnit, stopStale, wouldAdopt } from "../systemd/reconcile.ts";
import { takeResume } from "../host/resume_record.ts";
import { INCOMING_ENV, withIncoming } from "../plan/units.ts";
import { Systemd } from "../systemd/systemd1.ts";
import { preparationNeeded } from "../vm/disk.ts";
import { dhcpPreparationNeeded } from "../vm/prepare.ts";
import { preparationOf } from "../plan/preparation.ts";
import { accessProblem, type Identity, nodeFileNeeds, nodeIdentity } from "../vm/file_access.ts";
import { type CommandContext, serviceUserOf } from "./_context.ts";
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

/**
 * KVM only where it really works; the answer is kept for the boot (and for `plan`).
 * @returns a new probe's answer, or undefined when the plan already holds the kept one
 */
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
  // loadAndPlan read it already (host/facts.ts): nothing to plan again.
  if (readKvmProbe(ctx.paths) !== undefined) return undefined;
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
  const preparation = preparationOf(plan);
  const needs = preparation.nodes.flatMap((n) =>
    preparationNeeded(n, n.spool).map((r) => `${n.name}: ${r}`)
  ).concat(dhcpPreparationNeeded(plan));
  // The helper units hide these (TemporaryFileSystem=): they must be there before they start.
  for (const dir of preparation.dirs) {
    if (!isDirectory(dir)) needs.push(`no ${dir}`);
  }
  if (needs.length === 0) return;
  log.info(`Preparing node files as the service user (${needs.join("; ")})`);
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(serviceUserOf(ctx).env)) if (v !== undefined) env[k] = v;
  try {
    const r = await runner.run([executable, "prepare"], {
      as: user,
      env,
      stdin: JSON.stringify(preparation),
      timeoutMs: 300_000,
    });
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

/**
 * The nodes whose running QEMU will be adopted: they keep the tap they hold (see ensureTaps).
 * None when this start loads a snapshot's states: every node is a new QEMU then.
 */
async function adoptedNodes(
  systemd: Systemd,
  plan: Plan,
  resume: string | undefined,
): Promise<Set<string>> {
  const adopted = new Set<string>();
  if (resume !== undefined) return adopted;
  await Promise.all(plan.nodes.map(async (n) => {
    if (await wouldAdopt(systemd, n.unit) && !await waitsInVain(systemd, n.unit.name)) {
      adopted.add(n.name);
    }
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

/**
 * A total CPU cap for all VMs: 90% of the host's CPUs, unless the operator set one. On
 * aos-unit.slice, which every unit's slice sits under: one cap for all of them.
 */
async function capSlice(systemd: Systemd, log: Logger): Promise<void> {
  const SLICE = DEFAULT_UNIT.slice;
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

/**
 * Another unit's bridge, by the owner's mark on it: that unit and the runtime.conf that
 * gave it its subnet (a conflict names both units' files).
 */
function otherUnitOf(paths: Paths): UnitOfLink {
  return (link) => {
    if (link.linkinfo?.info_kind !== "bridge") return undefined;
    const unit = unitOfMark(link.ifalias ?? "");
    if (unit === null || unit === paths.unit) return undefined;
    const file = configFiles(unitPaths(rootsOf(paths, paths.unit), unit)).runtime;
    return `${unitLabel(unit)}, ${file}`;
  };
}

/** The bridge of an isolated unit, when its namespace holds one already (a restart). */
async function bridgeInNamespace(
  runner: Runner,
  iso: Isolation,
  bridge: string,
): Promise<LinkInfo | undefined> {
  if (!(await namespaceExists(runner, iso.namespace))) return undefined;
  return await linkInfo(namespaced(runner, iso.namespace), bridge);
}

/**
 * An isolated unit's host block, checked again on the host as it is now under the host
 * lock: a unit started meanwhile may have taken it (exit 1: the next start picks another).
 */
async function checkBlockStillFree(runner: Runner, iso: Isolation, owner: string) {
  const [links, routes] = await Promise.all([listLinks(runner), listRoutes(runner, "all")]);
  const block = parseCidr(iso.block);
  const clash = routesOfOthers(routes, links, owner).find((r) => {
    const s = parseCidr(r);
    return !("kind" in s) && !("kind" in block) && overlaps(s, block);
  });
  if (clash) {
    throw new RuntimeError(
      `Host block ${iso.block} of ${owner} was taken meanwhile (route ${clash})`,
      { hint: "start the unit again: it picks another block" },
    );
  }
}

/** The subnet check again, on the host as it is now (another unit may have taken it since). */
async function checkSubnetStillFree(ctx: CommandContext, runner: Runner, loaded: Loaded) {
  const [links, addresses, routes] = await Promise.all([
    listLinks(runner),
    listAddresses(runner),
    listRoutes(runner),
  ]);
  checkSubnetFree(
    loaded.plan.network,
    { links, addresses, routes },
    loaded.config.runtime.subnetAt,
    imageNeeds(loaded.plan),
    otherUnitOf(ctx.paths),
  );
}

/**
 * A node unit made to load a saved state whose QEMU systemd started again (it crashed): it
 * waits for a state nobody sends, so it is made anew (its fingerprint alone would adopt it).
 */
async function waitsInVain(systemd: Systemd, unit: string): Promise<boolean> {
  try {
    if (await systemd.environmentValue(unit, INCOMING_ENV) === undefined) return false;
    return ((await systemd.unitState(unit))?.nRestarts ?? 0) > 0;
  } catch {
    return false; // no such unit
  }
}

/**
 * Each node's unit, made or adopted (a node whose tap was made anew starts again). A memory
 * restore (`resume`: the snapshot) makes every node anew, waiting to load its saved state.
 */
async function startNodes(
  systemd: Systemd,
  plan: Plan,
  newTaps: readonly string[],
  log: Logger,
  resume: string | undefined,
): Promise<string[]> {
  return await Promise.all(
    plan.nodes.map(async (n) =>
      `${n.name} ${await reconcileUnit(
        systemd,
        resume === undefined ? n.unit : withIncoming(n.unit, resume),
        log,
        newTaps.includes(n.name)
          ? `its tap ${n.tap} was gone`
          : resume !== undefined
          ? `it loads snapshot ${resume}`
          : await waitsInVain(systemd, n.unit.name)
          ? "it was started again after a snapshot restore and waits for a state nobody sends"
          : undefined,
      )}`
    ),
  );
}

/** A failed first start: its nodes killed, its network taken down (best effort). */
async function undoStart(
  runner: Runner,
  systemd: Systemd | undefined,
  plan: Plan,
  log: Logger,
): Promise<void> {
  if (systemd) {
    await Promise.all(plan.nodes.map(async ({ unit: { name } }) => {
      await systemd.enqueueStop(name);
      await systemd.killUnit(name, "SIGKILL");
      await systemd.clearOld(name);
    })).catch((e) => log.warning(`Cannot stop the nodes: ${(e as Error).message}`));
  }
  await teardownNetwork(
    runner,
    { runtimeDir: plan.paths.runtimeDir, names: plan.unit },
    [plan.network.bridge],
    log,
  ).catch(() => {});
}

/** What the startup steps share. */
interface Step {
  ctx: CommandContext;
  runner: Runner;
  log: Logger;
  timeline: Timeline;
}

/**
 * This unit's forwards whose host port another configured unit declares (exit 2 at both
 * lines: units that start at once, at boot, would both take it), or a running unit's table
 * holds (exit 2 at this unit's line, naming that unit: a unit whose configuration is gone).
 */
async function checkForwardsFree(runner: Runner, ctx: CommandContext, loaded: Loaded) {
  if (loaded.plan.nft.forwards.length === 0) return;
  const clashes = crossUnitForwardClashes(
    { label: unitLabel(ctx.paths.unit), nodes: loaded.config.unit.nodes },
    otherUnitsNodes(ctx.paths),
  );
  if (clashes.length > 0) throw new ConfigError(clashes);
  const tables = await otherUnitTables(runner, loaded.plan.unit.nftTable);
  const held = tables.map((t) => ({
    label: unitLabel(unitOfTable(t.table)),
    forwards: heldForwards(t.text),
  }));
  const taken = forwardsTaken(loaded.config.unit.nodes, held);
  if (taken.length > 0) throw new ConfigError(taken);
}

/**
 * Before anything is made: the network checks and the KVM answer, probed meanwhile on a
 * first start after boot. The nodes' files (`prepare`, as the service user, only when
 * something is missing) are made while the network is: the caller awaits `prepared` before
 * the first node unit. @returns the plan to apply, the bridge if it exists already, and
 * the files being made
 */
async function checkAndPrepare(
  { ctx, runner, log, timeline }: Step,
  { host, overrides, user, systemd }: {
    host: HostNetwork;
    overrides: FactOverrides;
    user: { uid: number; gid: number };
    systemd: Systemd | undefined;
  },
  first: Loaded,
): Promise<{ loaded: Loaded; existing: LinkInfo | undefined; prepared: Promise<void> }> {
  let loaded = first;
  // A first start after boot probes KVM while the network is checked and the files made
  // (the node's accelerator changes neither); the plan takes its answer before any unit.
  const probing = kvmUsable(ctx, runner, loaded, user, log);
  probing.catch(() => {}); // awaited below; a failure is reported there
  const iso = loaded.plan.isolation;
  // An isolated unit's network is its own namespace: its subnet and DNS port clash with
  // nothing on the host, and only it makes a bridge there.
  const existing = iso
    ? await bridgeInNamespace(runner, iso, loaded.plan.network.bridge)
    : checkBridgeName(loaded.plan.network, host);
  if (!iso) {
    checkSubnetFree(
      loaded.plan.network,
      host,
      loaded.config.runtime.subnetAt,
      imageNeeds(loaded.plan),
      otherUnitOf(ctx.paths),
    );
    checkDnsPortFree(loaded.plan.network, (await runner.run([TOOLS.ss, "-Hlnut"])).stdout);
  }
  await checkForwardsFree(runner, ctx, loaded);
  timeline.mark("network checks");
  let prepared = Promise.resolve();
  if (systemd) {
    const who = { name: loaded.facts.serviceUser, uid: user.uid, gids: [user.gid] };
    checkNodeFiles(loaded.plan, who, true);
    prepared = prepare(ctx, runner, loaded.plan, user, loaded.facts.executable, log);
    prepared.catch(() => {}); // awaited by the caller; a failure is reported there
  }
  const kvm = await probing;
  if (kvm !== undefined) loaded = loadAndPlan(ctx.paths, { ...overrides, kvmUsable: kvm });
  timeline.mark("kvm probe");
  const { plan } = loaded;
  for (const w of loaded.warnings) log.warning(formatLocated(w));
  if (systemd) {
    // Nodes the configuration no longer has go first: their taps are about to be removed.
    await stopStale(
      systemd,
      `${NODE_UNIT_PREFIX}*.service`,
      new Set(plan.nodes.map((n) => n.unit.name)),
      log,
      plan.unit.ownsNodeUnit,
    );
  }
  return { loaded, existing, prepared };
}

export async function startupCommand(
  ctx: CommandContext,
  options: StartupOptions,
): Promise<number> {
  const log = logger("startup");
  // From the process's start: "load" is the runtime and the program starting.
  const timeline = new Timeline(() => performance.now());
  timeline.mark("load");
  const started = performance.now();
  const runner = createRunner();
  const elapsed = () => Math.round(performance.now() - started);
  // Root's runtime directory first (host/runtime_dir.ts), without an earlier start's error.
  ensureRuntimeDirs(ctx.paths, lookupUser(serviceUserOf(ctx).serviceUser).gid);
  clearStartupError(ctx.paths.runtimeDir);

  // Independent: the host's links and routes, and the bus.
  const [hostLinks, addresses, routes, allRoutes, systemd] = await Promise.all([
    listLinks(runner),
    listAddresses(runner),
    listRoutes(runner),
    // Only a named unit chooses a host block (its namespace's link).
    ctx.paths.unit === undefined ? [] : listRoutes(runner, "all"),
    options.units ? connectSystemBus().then((bus) => Systemd.open(bus)) : undefined,
  ]);
  const host = { links: hostLinks, addresses, routes };
  try {
    const overrides = {
      ...envOverrides(ctx.env),
      uplinks: defaultRouteDevices(routes),
      // Where an isolated unit's host block may go: clear of every route (in any table) but
      // its own link's, and of every address of the host.
      takenSubnets: takenByOthers(allRoutes, addresses, hostLinks, unitNames(ctx.paths.unit).owner),
      recordImageFacts: true,
      systemdVersion: systemd ? await systemd.version() : undefined,
    };
    timeline.mark("host and bus");
    let loaded = loadAndPlan(ctx.paths, overrides);
    timeline.mark("config and image checks");
    // No image, an unreadable one or missing UEFI firmware: nothing can boot (the network
    // alone can still be made).
    // ... or an image that configures itself for another network than the plan's.
    const blocking = options.units
      ? loaded.warnings.filter((w) => w.blocksRun || w.severity === "error")
      : [];
    if (blocking.length > 0) {
      throw new ConfigError(blocking.map((w) => ({ ...w, severity: "error" as const })));
    }
    // The unit's own user (its files, prepare); its group is aos-unit (facts.serviceUser).
    const user = lookupUser(serviceUserOf(ctx).serviceUser);
    const checked = await checkAndPrepare(
      { ctx, runner, log, timeline },
      { host, overrides, user, systemd },
      loaded,
    );
    loaded = checked.loaded;
    const { existing, prepared } = checked;
    const { plan } = loaded;
    // A memory restore's request (root's): this start's nodes load the snapshot's states.
    const resume = systemd ? takeResume(ctx.paths) : undefined;
    const adopted = systemd ? await adoptedNodes(systemd, plan, resume) : new Set<string>();
    timeline.mark("adoption");
    try {
      // The record first: whatever is made from here on, the unit's stop finds it by this
      // record (units/unit-stopped), and a failed start's teardown removes it last.
      writeNetworkConf(plan, user);
      // Units start at once: the subnet is checked again, and the bridge that takes it made,
      // while no other unit's broker does the same.
      const newTaps = await withHostLock(ctx.paths, "network", async () => {
        if (plan.isolation) {
          await checkBlockStillFree(runner, plan.isolation, plan.unit.owner);
          await ensureIsolatedNetwork(runner, plan.isolation, plan.unit.owner);
        } else if (!existing) await checkSubnetStillFree(ctx, runner, loaded);
        return await applyLinks(
          unitRunner(runner, plan),
          plan,
          loaded.facts.serviceUser,
          existing,
          log,
          adopted,
        );
      });
      timeline.mark("network");
      if (systemd) {
        await prepared;
        checkNodeFiles(plan, nodeIdentity(loaded.facts.serviceUser, user.uid, user.gid, true));
        timeline.mark("prepare (overlays)");
        const outcomes = await startNodes(systemd, plan, newTaps, log, resume);
        timeline.mark("node units");
        log.info(`Nodes after ${elapsed()} ms: ${outcomes.join(", ")}`);
      }
      await applyFirewall(runner, plan, log);
      timeline.mark("firewall");
      if (systemd) await startDnsmasq(runner, systemd, plan, log);
      timeline.mark("dnsmasq");
    } catch (error) {
      // Leave nothing half-made when this run created the bridge: guests this run started
      // would otherwise keep running on deleted taps, and the next start would adopt them.
      // No qemu-img of prepare's is left running behind it either.
      await prepared.catch(() => {});
      if (!existing) await undoStart(runner, systemd, plan, log);
      throw error;
    }
    await routeDomain(runner, plan, log, systemd?.bus);
    if (systemd) await capSlice(systemd, log);
    const chains = await runner.run([TOOLS.nft, "-j", "list", "chains"], { okCodes: [0, 1] });
    for (const p of foreignDropPolicies(chains.stdout, plan.network)) {
      log.warning(`${p.message}; allow them with: ${p.fix}`);
    }
    timeline.mark("dns and slice");
    log.info(`Timeline (ms): ${timeline.text()}`);
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
    let owner: { uid: number; gid: number } | undefined;
    try {
      owner = lookupUser(serviceUserOf(ctx).serviceUser);
    } catch { /* left root's: the next start replaces it */ }
    leaveStartupError(ctx.paths.runtimeDir, text, owner);
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
