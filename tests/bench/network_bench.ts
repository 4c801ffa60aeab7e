/**
 * Benchmarks of the network half (root; in namespaces it creates):
 * startup, cleanup, lease-hook latency, guest start to lease, route change to
 * first packet through the new uplink, table restore. Prints numbers only.
 */

import { preparationOf } from "../../src/plan/preparation.ts";
import { createRunner } from "../../src/host/runner.ts";
import { readLeaseState } from "../../src/host/leases.ts";
import { FHS_PATHS, unitPaths } from "../../src/host/paths.ts";
import { denoFlags, NOTIFY_SOCKET_DEFAULT, unionPermissions } from "../../src/permissions.ts";
import { checkDnsmasqConfig } from "../../src/net/sidecar_files.ts";
import { logger } from "../../src/log.ts";
import { prepareFiles } from "../../src/vm/prepare.ts";
import { buildGuests, bundle, DevUnit, ROOT } from "../lib/aos.ts";
import { run, waitFor } from "../lib/proc.ts";
import { SerialConsole } from "../lib/serial.ts";
import { INTERNET_IP, Topology } from "../lib/topology.ts";
import { report } from "./stats.ts";

const ROUNDS = Number(Deno.env.get("BENCH_ROUNDS") ?? "5");
const work = await Deno.makeTempDir({ prefix: "aosu-bench-" });
const topo = new Topology(`aosb${Deno.pid % 100000}`, work);
const unit = new DevUnit(`${work}/unit`, topo.host);
const consoles: SerialConsole[] = [];
try {
  await topo.create();
  await unit.init(
    `unit:\n  node_configs:\n    - { name: main, cpu: 1, mem: 256M, ip: 10.200.1.100 }\n`,
    `ENABLE_KVM="false"\n`,
  );
  await buildGuests(`${work}/images`, ["main"]);
  await Deno.copyFile(
    `${work}/images/aos-vm-main-amd64-uefi.qcow2`,
    `${unit.stateDir}/aos-vm-main-amd64-uefi.qcow2`,
  );

  // startup and cleanup, as the package runs them (the bundle, narrowed permissions).
  const bundled = `${work}/aos-unit.js`;
  await bundle(`${ROOT}/main.ts`, bundled);
  const ctx = {
    paths: unitPaths({
      configDir: unit.configDir,
      stateDir: unit.stateDir,
      logsDir: unit.logsDir,
      runtimeDir: unit.runtimeDir,
    }),
    notifySocket: NOTIFY_SOCKET_DEFAULT,
  };
  const flags = denoFlags(unionPermissions(ctx));
  const env = { ...unit.env(), DENO_NO_UPDATE_CHECK: "1" };
  // What the package's launcher runs: the bundle with the union of permissions.
  const aosArgv = (args: string[]) =>
    topo.inNs(topo.host, [
      Deno.execPath(),
      "run",
      "--quiet",
      "--no-config",
      "--unstable-net",
      ...flags,
      bundled,
      ...args,
    ]);
  const aos = (args: string[]) => run(aosArgv(args), { env });
  void FHS_PATHS;
  const startups: number[] = [];
  const cleanups: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const s = await aos(["startup", "--no-units"]);
    if (s.code !== 0) throw new Error(s.stderr);
    startups.push(s.ms);
    const c = await aos(["cleanup"]);
    cleanups.push(c.ms);
  }
  report("startup (process start to exit)", startups);
  report("cleanup (process start to exit)", cleanups);

  // lease-hook: what dnsmasq waits for per DHCP event.
  const hooks: number[] = [];
  Deno.mkdirSync(`${unit.stateDir}/dhcp`, { recursive: true });
  for (let i = 0; i < 20; i++) {
    const r = await aos([
      "lease-hook",
      i % 2 ? "old" : "add",
      "52:54:00:00:00:01",
      "10.200.1.150",
      "bench",
    ]);
    if (r.code !== 0) throw new Error(r.stderr);
    hooks.push(r.ms);
  }
  report("lease-hook latency", hooks);
  await Deno.remove(`${unit.stateDir}/dhcp/leases.json`);

  // A guest: QEMU start to lease; then route change and table restore.
  const s = await aos(["startup", "--no-units"]);
  if (s.code !== 0) throw new Error(s.stderr);
  const plan = await unit.plan();
  await checkDnsmasqConfig(createRunner(), plan);
  await prepareFiles(createRunner(), preparationOf(plan), logger("bench"));
  const node = plan.nodes[0]!;
  Deno.mkdirSync(node.runDir, { recursive: true });
  const dnsArgv = (plan.dnsmasq.unit.properties.find(([n]) =>
    n === "ExecStart"
  )![2] as [string, string[], boolean][])[0]![1];
  topo.procs.start(topo.inNs(topo.host, dnsArgv), `${work}/dnsmasq.log`);
  topo.procs.start(
    aosArgv(["monitor"]),
    `${work}/monitor.log`,
    env,
  );
  const qemuStart = performance.now();
  topo.procs.start(topo.inNs(topo.host, node.qemu), `${work}/qemu.log`);
  const c = await SerialConsole.connect(node.serialSocket);
  consoles.push(c);
  await waitFor(
    "lease",
    () =>
      readLeaseState(plan.leaseState).leases[node.mac],
    90_000,
    20,
  );
  report("guest start to lease (UEFI test disk, TCG)", [performance.now() - qemuStart]);
  await c.expect(/AOSTEST lease ip=/, 10_000);

  const http = async () =>
    (await c.probe(
      `aos-probe http http://${INTERNET_IP}/`,
      /AOSTEST http url=\S+ (body=(\S+)|fail)/,
    ))[2];
  const handovers: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const target = (i % 2 === 0 ? 1 : 0) as 0 | 1;
    if (await http() !== `uplink${2 - target}`) {
      await waitFor("settle", async () =>
        (await http()) === `uplink${2 - target}` ? true : undefined, 10_000);
    }
    const moved = performance.now();
    await topo.setDefault(target);
    await waitFor(
      "new uplink",
      async () =>
        (await http()) === `uplink${target + 1}` ? true : undefined,
      10_000,
      10,
    );
    handovers.push(performance.now() - moved);
  }
  report("route change to first reply via the new uplink", handovers);

  const restores: number[] = [];
  const want = (JSON.parse(
    (await run(topo.inNs(topo.host, ["nft", "-j", "list", "table", "inet", "aos_unit"]))).stdout,
  ).nftables as object[]).length;
  for (let i = 0; i < ROUNDS; i++) {
    const t0 = performance.now();
    await run(topo.inNs(topo.host, ["nft", "delete", "table", "inet", "aos_unit"]));
    await waitFor(
      "restored",
      async () => {
        const r = await run(
          topo.inNs(topo.host, ["nft", "-j", "list", "table", "inet", "aos_unit"]),
        );
        return r.code === 0 && (JSON.parse(r.stdout).nftables as object[]).length === want
          ? true
          : undefined;
      },
      10_000,
      5,
    );
    restores.push(performance.now() - t0);
  }
  report("table deleted by someone else to restored", restores);
  if (Deno.env.get("BENCH_VERBOSE")) {
    console.log(Deno.readTextFileSync(`${work}/monitor.log`));
  }
} finally {
  for (const c of consoles) c.close();
  await topo.destroy();
  await Deno.remove(work, { recursive: true }).catch(() => {});
}
