/**
 * `aos-unit run` (ExecStart of aos-unit.service, Type=notify): validate,
 * prepare disks, start the sidecar, the route monitor and one transient unit
 * per node, report READY=1 only when every node is up and has an address,
 * then supervise until SIGTERM, when guests are powered down gracefully.
 */

import { ConfigError, EXIT_OK, formatLocated, RuntimeError } from "../errors.ts";
import { hostArch, kvmProbeFile } from "../host/facts.ts";
import { probeKvm } from "../host/kvm.ts";
import { envOverrides, loadAndPlan } from "../host/load.ts";
import { createRunner } from "../host/runner.ts";
import { logger } from "../log.ts";
import { routeDomain } from "../net/apply.ts";
import { readLeaseState } from "../net/leases.ts";
import { TOOLS } from "../permissions.ts";
import { DNSMASQ_UNIT, MONITOR_UNIT, SLICE } from "../plan/units.ts";
import type { NodePlan, Plan } from "../plan/types.ts";
import { addMatch, connectSystemBus } from "../systemd/bus.ts";
import { createNotifier } from "../systemd/notify.ts";
import { Systemd } from "../systemd/systemd1.ts";
import { prepareDisks } from "../vm/disk.ts";
import { systemPowerdown } from "../vm/qmp.ts";
import { writeSidecarFiles } from "../vm/runtime_files.ts";
import type { CommandContext } from "./context.ts";
import { startupErrorFile } from "./startup.ts";

/** True when something answers on ip:port - a connection, or a refusal (the stack is up). */
export async function answers(ip: string, port: number, timeoutMs: number): Promise<boolean> {
  // The signal aborts the pending connect too: no half-open sockets pile up while waiting.
  try {
    const conn = await Deno.connect({ hostname: ip, port, signal: AbortSignal.timeout(timeoutMs) });
    conn.close();
    return true;
  } catch (error) {
    return error instanceof Deno.errors.ConnectionRefused;
  }
}

/**
 * Nodes that are usable: the unit is active and the node's address (the DHCP
 * lease, or the reservation for guests that configure themselves statically,
 * like AosCore's main) answers on the SSH port - a connection or a refusal
 * both prove the guest's network is up. A lease record alone is not enough:
 * it survives restarts while the guest is still booting.
 */
export async function readyNodes(systemd: Systemd, plan: Plan): Promise<Map<string, string>> {
  const leases = readLeaseState(plan.leaseState).leases;
  const out = new Map<string, string>();
  await Promise.all(plan.nodes.map(async (node) => {
    const ip = leases[node.mac]?.ip ?? node.ip;
    if (!ip || (await systemd.unitState(node.unit.name))?.activeState !== "active") return;
    if (await answers(ip, 22, 400)) out.set(node.name, ip);
  }));
  return out;
}

/** Nodes systemd gave up on (start limit hit): READY does not wait for them. */
async function failedNodes(systemd: Systemd, plan: Plan): Promise<string[]> {
  const states = await Promise.all(plan.nodes.map((n) => systemd.unitState(n.unit.name)));
  return plan.nodes.filter((_, i) => states[i]?.activeState === "failed").map((n) => n.name);
}

/**
 * Starts every unit of the plan. An old unit of the same name (a crash, a
 * restart) is stopped and forgotten first: the old tool raced here. Nothing is
 * adopted: cleanup (ExecStopPost=) has removed the network it was attached to.
 */
async function startAll(
  systemd: Systemd,
  plan: Plan,
  log: ReturnType<typeof logger>,
): Promise<void> {
  const units = [plan.dnsmasq.unit, plan.monitor.unit, ...plan.nodes.map((n) => n.unit)];
  await Promise.all(units.map((u) => systemd.clearOld(u.name)));
  const started = performance.now();
  const results = await Promise.all(
    units.map(async (u) => [u.name, await systemd.startTransient(u)] as const),
  );
  const failed = results.filter(([, result]) => result !== "done");
  if (failed.length > 0) {
    throw new RuntimeError(
      `Cannot start ${failed.map(([name, result]) => `${name} (${result})`).join(", ")}`,
      { hint: `journalctl -u ${failed[0]![0]} -n 50` },
    );
  }
  log.info(`Started ${units.length} units in ${Math.round(performance.now() - started)} ms`);
}

/** Asks one guest to power down, resending until its unit is inactive or time runs out. */
async function powerDown(
  systemd: Systemd,
  node: NodePlan,
  timeoutSec: number,
  log: ReturnType<typeof logger>,
): Promise<void> {
  const deadline = performance.now() + timeoutSec * 1000;
  const started = performance.now();
  let lastSend = -Infinity;
  while (performance.now() < deadline) {
    const state = await systemd.unitState(node.unit.name);
    if (!state || state.activeState === "inactive" || state.activeState === "failed") {
      log.info(`Node ${node.name} powered down in ${Math.round(performance.now() - started)} ms`);
      return;
    }
    if (state.subState === "auto-restart") {
      // Between restarts there is no guest to ask: just cancel the restart.
      await systemd.enqueueStop(node.unit.name);
      return;
    }
    // A guest that is still booting ignores the ACPI event: send it again every 2 s.
    if (performance.now() - lastSend > 2000) {
      lastSend = performance.now();
      await systemPowerdown(node.qmpSocket).catch((e) =>
        log.debug(`QMP ${node.name}: ${(e as Error).message}`)
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  log.warning(`Node ${node.name} did not power down within ${timeoutSec} s; systemd will stop it`);
}

/**
 * A total CPU cap for all VMs: 90% of the host's CPUs, unless the operator
 * set one (systemctl set-property aos-unit.slice CPUQuota=...). A percentage
 * of all CPUs cannot be written in the shipped slice file.
 */
async function capSlice(systemd: Systemd, log: ReturnType<typeof logger>): Promise<void> {
  try {
    const current = await systemd.sliceCpuQuota(SLICE);
    if (current !== undefined) return;
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

export async function runCommand(ctx: CommandContext): Promise<number> {
  const log = logger("run");
  const runner = createRunner();
  const notifier = createNotifier(ctx.env.NOTIFY_SOCKET, `${ctx.paths.runtimeDir}/notify.sock`);
  const stop = Promise.withResolvers<"stop">();
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(signal, () => stop.resolve("stop"));
  }

  // 0. A permanent error startup (ExecStartPre=) deferred to us, so systemd sees exit 2.
  try {
    const deferred = Deno.readTextFileSync(startupErrorFile(ctx.paths.runtimeDir)).trim();
    Deno.removeSync(startupErrorFile(ctx.paths.runtimeDir));
    throw new ConfigError([], deferred);
  } catch (error) {
    if (error instanceof ConfigError) throw error;
  }

  // 1. Everything that can be wrong with the configuration, before touching anything.

  let { plan, config, warnings } = loadAndPlan(ctx.paths, envOverrides(ctx.env));
  // No image, an unreadable one or missing UEFI firmware: plan warns, run cannot boot.
  const blocking = warnings.filter((w) => w.blocksRun);
  if (blocking.length > 0) {
    throw new ConfigError(blocking.map((w) => ({ ...w, severity: "error" as const })));
  }
  for (const w of warnings) log.warning(formatLocated(w));

  // 2. KVM only where it really works.
  const arch = hostArch();
  if (config.runtime.enableKvm && plan.nodes.some((n) => n.arch === arch)) {
    const probe = await probeKvm(runner, arch);
    Deno.writeTextFileSync(
      kvmProbeFile(ctx.paths),
      probe.usable ? "usable\n" : `broken: ${probe.reason}\n`,
    );
    if (!probe.usable) {
      log.warning(`KVM is not usable here (${probe.reason}); nodes run under TCG emulation`);
    }
    ({ plan, config, warnings } = loadAndPlan(ctx.paths, {
      ...envOverrides(ctx.env),
      kvmUsable: probe.usable,
    }));
  }

  // 3. Disks and sidecar files.
  for (const node of plan.nodes) {
    const created = await prepareDisks(runner, node);
    if (created.length > 0) log.info(`Node ${node.name}: created ${created.join(", ")}`);
  }
  await writeSidecarFiles(runner, plan);
  await runner.run([TOOLS.dnsmasq, "--test", `--conf-file=${plan.dnsmasq.confPath}`]);

  // 4. Units.
  const bus = await connectSystemBus();
  const systemd = await Systemd.open(bus);
  const sidecarFailed = Promise.withResolvers<string>();
  systemd.onUnitChange((unit, props) => {
    if ((unit === DNSMASQ_UNIT || unit === MONITOR_UNIT) && props.ActiveState === "failed") {
      sidecarFailed.resolve(unit);
    }
    if (unit.startsWith("aos-node-") && props.ActiveState === "failed") {
      log.warning(`${unit} failed; systemd restarts it per its policy`);
    }
  });
  bus.on("message", (msg: { member?: string; body?: unknown[] }) => {
    // systemd-resolved forgets per-link DNS when it restarts: set it again.
    if (
      msg.member === "NameOwnerChanged" && msg.body?.[0] === "org.freedesktop.resolve1" &&
      msg.body?.[2]
    ) {
      routeDomain(runner, plan, log, bus).catch((e) =>
        log.warning(`Cannot re-apply resolved settings: ${(e as Error).message}`)
      );
    }
  });
  await addMatch(
    bus,
    "type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged',arg0='org.freedesktop.resolve1'",
  );

  try {
    await capSlice(systemd, log);
    await startAll(systemd, plan, log);

    // 5. Ready means usable: every node's unit active and its address answering.
    const started = performance.now();
    const deadline = started + config.runtime.readyTimeoutSec * 1000;
    let lastStatus = "";
    let stopEarly = false;
    let gaveUp: string[] = [];
    while (true) {
      const ready = await readyNodes(systemd, plan);
      gaveUp = await failedNodes(systemd, plan);
      const waiting = plan.nodes.filter((n) => !ready.has(n.name) && !gaveUp.includes(n.name))
        .map((n) => n.name);
      const status = `${ready.size}/${plan.nodes.length} nodes ready${
        waiting.length ? ` (waiting for ${waiting.join(", ")})` : ""
      }${gaveUp.length ? `; failed: ${gaveUp.join(", ")}` : ""}`;
      if (status !== lastStatus) {
        await notifier.send(`STATUS=${status}`);
        lastStatus = status;
      }
      if (waiting.length === 0) break;
      if (performance.now() > deadline) {
        throw new RuntimeError(
          `Nodes without an address after ${config.runtime.readyTimeoutSec} s: ${
            waiting.join(", ")
          }`,
          {
            hint: `look at ${plan.paths.logsDir}/${
              waiting[0]
            }-serial.log and journalctl -u aos-node-${waiting[0]}`,
          },
        );
      }
      const outcome = await Promise.race([
        stop.promise,
        sidecarFailed.promise,
        new Promise((r) => setTimeout(() => r("tick"), 250)),
      ]);
      if (outcome === "stop") {
        stopEarly = true;
        break;
      }
      if (typeof outcome === "string" && outcome !== "tick") {
        throw new RuntimeError(`${outcome} failed`);
      }
    }
    if (!stopEarly) {
      const ready = await readyNodes(systemd, plan);
      const summary = plan.nodes.map((n) =>
        `${n.name}=${ready.get(n.name) ?? (gaveUp.includes(n.name) ? "FAILED" : "?")}`
      ).join(" ");
      await notifier.send(`READY=1\nSTATUS=Running: ${summary}`);
      if (gaveUp.length > 0) {
        log.warning(`Ready without ${gaveUp.join(", ")}: systemd gave up restarting them`);
      }
      log.info(`Ready in ${Math.round(performance.now() - started)} ms: ${summary}`);
    }

    // 6. Supervise.
    const outcome = stopEarly ? "stop" : await Promise.race([stop.promise, sidecarFailed.promise]);
    if (outcome !== "stop") {
      throw new RuntimeError(`${outcome} failed and systemd gave up restarting it`, {
        hint: `journalctl -u ${outcome}`,
      });
    }
    await notifier.send("STOPPING=1\nSTATUS=Powering down guests");
    const stopping = performance.now();
    await Promise.all(
      plan.nodes.map((n) => powerDown(systemd, n, config.runtime.stopTimeoutSec, log)),
    );
    // A restart of aos-unit.service does not propagate to the sidecars (StopPropagatedFrom=
    // covers stop only), and they must not outlive the bridge cleanup is about to remove.
    // Not waited for: on `systemctl stop` these jobs already exist, ordered after ours.
    await Promise.all(
      [DNSMASQ_UNIT, MONITOR_UNIT].map((u) => systemd.enqueueStop(u).catch(() => {})),
    );

    log.info(`All nodes down in ${Math.round(performance.now() - stopping)} ms`);
    return EXIT_OK;
  } catch (error) {
    // Leave nothing running on a network that cleanup (ExecStopPost=) is about to remove.
    await Promise.all(
      [plan.dnsmasq.unit, plan.monitor.unit, ...plan.nodes.map((n) => n.unit)]
        .map((u) => systemd.enqueueStop(u.name).catch(() => {})),
    );
    throw error;
  } finally {
    notifier.close();
    bus.disconnect();
  }
}
