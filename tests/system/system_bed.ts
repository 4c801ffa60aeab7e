/**
 * Tier 3: the installed .deb under a real systemd (booted with systemd-nspawn in a namespace
 * the test owns), with AosCore-like UEFI test disks booted through aos-unit's own QEMU
 * command line. Each scenario (tests/system/scenarios/) boots a bed of its own on each
 * supported Debian release (bookworm: systemd 252, trixie: systemd 257), so that one failure
 * names one concern and the others still run.
 *
 * This file holds what every scenario shares: the artifacts (packages, guests), the bed
 * with its topology, and the helpers the steps use. Faults and attacks are asserted by what
 * a user sees: guest boot counts from the serial logs, addresses, records, STATUS, leftovers.
 */

import assert from "node:assert/strict";
import type { Status } from "../../src/commands/status.ts";
import type { CheckResult } from "../../src/commands/_doctor_checks.ts";
import type { FailureRecord } from "../../src/vm/failures.ts";
import { buildGuests, ROOT } from "../lib/aos.ts";
import { Bed } from "../lib/bed.ts";
import { run, waitFor } from "../lib/proc.ts";
import { SerialConsole } from "../lib/serial.ts";
import { INTERNET_IP, Topology } from "../lib/topology.ts";

export type Suite = "bookworm" | "trixie";

// Small guests for a fast test; editing the shipped conffile is also what the upgrade test needs.
export const UNIT_CONFIG = `# edited by the system test
unit:
  node_configs:
    - name: main
      cpu: 1
      mem: 512M
      ip: 10.200.1.100
    - name: secondary
      cpu: 1
      mem: 512M
`;
/** The DHCP test guests live on the built-in default subnet (the shipped sample is 10.0.0.0/24). */
export const RUNTIME_CONF = 'DHCP_CIDR="10.200.1.0/24"\n';
export const MACHINE_ID = "a05b0e7e57bed0000000000000000042";
export const BRIDGE = `aosbr${MACHINE_ID.slice(0, 6)}`;
export const URL_ = `http://${INTERNET_IP}/`;
export const NODES = ["main", "secondary"] as const;
export const MAIN_MAC = "52:54:00:fa:d5:8d";
export const SECONDARY_MAC = "52:54:00:1f:7b:a5";

async function buildDeb(out: string, epoch: number, tree = ROOT): Promise<string> {
  const r = await run(
    ["bash", `${tree}/packaging/build_package.sh`, "--out", out, "--compress", "gzip"],
    {
      env: {
        ...Deno.env.toObject(),
        SOURCE_DATE_EPOCH: String(epoch),
        AOS_UNIT_DENO_DIR: Deno.env.get("DENO_DIR") ?? "",
      },
    },
  );
  if (r.code !== 0) throw new Error(`build_package.sh failed: ${r.stderr}`);
  return r.stdout.trim().split("\n").at(-1)!;
}

/** The next release, as far as a running guest can tell: the same tree with a node sandbox
 * property changed (TasksMax), which must apply at the node's next start, not by a reboot. */
async function nextReleaseTree(dir: string): Promise<string> {
  const tree = `${dir}/tree`;
  await Deno.mkdir(tree, { recursive: true });
  const copy = await run([
    "sh",
    "-c",
    `tar -C "$1" --exclude=./build --exclude=./.toolchain -cf - . | tar -C "$2" -xf -`,
    "sh",
    ROOT,
    tree,
  ]);
  if (copy.code !== 0) throw new Error(`copying the tree failed: ${copy.stderr}`);
  const units = `${tree}/src/plan/units.ts`;
  const text = await Deno.readTextFile(units);
  if (!text.includes(`["TasksMax", "t", 512]`)) throw new Error("no TasksMax to change");
  await Deno.writeTextFile(units, text.replace(`["TasksMax", "t", 512]`, `["TasksMax", "t", 511]`));
  return tree;
}

/** Where built packages are kept, by the hash of what they are built from. */
const DEB_CACHE = `${Deno.env.get("AOS_TEST_CACHE") ?? "/var/cache/aos-unit-tests"}/debs`;
/** How many package builds the cache keeps (the newest). */
const DEB_CACHE_KEEP = 4;

/**
 * The hash of everything the packages are built from: every file git tracks or would
 * track (untracked changes included), but the tests.
 */
async function sourceKey(): Promise<string> {
  const r = await run([
    "git",
    "-C",
    ROOT,
    "ls-files",
    "-z",
    "--cached",
    "--others",
    "--exclude-standard",
  ]);
  if (r.code !== 0) throw new Error(`git ls-files failed: ${r.stderr}`);
  const files = r.stdout.split("\0").filter((f) => f && !f.startsWith("tests/")).sort();
  const parts: Uint8Array[] = [];
  for (const f of files) {
    parts.push(new TextEncoder().encode(`${f}\0`));
    try {
      parts.push(await Deno.readFile(`${ROOT}/${f}`));
    } catch { /* listed but deleted in the work tree */ }
  }
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  return [...digest.slice(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The package and the next release of it, from the cache when the sources are the same. */
async function cachedDebs(dir: string): Promise<[string, string]> {
  const key = await sourceKey();
  const cached = `${DEB_CACHE}/${key}`;
  const find = async (sub: string) => {
    for await (const e of Deno.readDir(`${cached}/${sub}`)) {
      if (e.name.endsWith(".deb")) return `${cached}/${sub}/${e.name}`;
    }
    throw new Deno.errors.NotFound(`${cached}/${sub}`);
  };
  try {
    return [await find("1"), await find("2")];
  } catch { /* not built yet */ }
  const epoch = Math.floor(Date.now() / 1000);
  const debs: [string, string] = [
    await buildDeb(`${dir}/1`, epoch),
    await buildDeb(`${dir}/2`, epoch + 120, await nextReleaseTree(dir)),
  ];
  // Into the cache whole or not at all: a directory of its own, renamed into place.
  await Deno.mkdir(DEB_CACHE, { recursive: true });
  const partial = await Deno.makeTempDir({ dir: DEB_CACHE, prefix: ".partial-" });
  for (const [i, deb] of debs.entries()) {
    await Deno.mkdir(`${partial}/${i + 1}`);
    await Deno.copyFile(deb, `${partial}/${i + 1}/${deb.split("/").pop()}`);
  }
  try {
    await Deno.rename(partial, cached);
  } catch {
    await Deno.remove(partial, { recursive: true }); // another run cached the same key
  }
  await pruneDebCache();
  return [await find("1"), await find("2")];
}

/** Keeps the newest DEB_CACHE_KEEP builds. */
async function pruneDebCache(): Promise<void> {
  const entries: { path: string; mtime: number }[] = [];
  for await (const e of Deno.readDir(DEB_CACHE)) {
    if (!e.isDirectory || e.name.startsWith(".")) continue;
    const path = `${DEB_CACHE}/${e.name}`;
    entries.push({ path, mtime: (await Deno.stat(path)).mtime?.getTime() ?? 0 });
  }
  entries.sort((a, b) => b.mtime - a.mtime);
  for (const old of entries.slice(DEB_CACHE_KEEP)) {
    await Deno.remove(old.path, { recursive: true }).catch(() => {});
  }
}

/**
 * What every suite installs and boots: the two package builds and the test guests. Built
 * once, into `dir`: by tests/system/prebuild.ts before the suites run in parallel (each in
 * a process of its own), or by the first suite that asks.
 */
export async function buildArtifacts(dir: string): Promise<Artifacts> {
  const [debs] = await Promise.all([
    cachedDebs(dir),
    // One after the other: both share the guest cache (cheap once it is warm).
    (async () => {
      await buildGuests(`${dir}/guests`, [...NODES]);
      await buildGuests(`${dir}/guests-arm`, ["arm"], "arm64");
    })(),
  ]);
  return { debs, guests: `${dir}/guests`, arm: `${dir}/guests-arm` };
}

export interface Artifacts {
  debs: [string, string];
  guests: string;
  arm: string;
}

/** The variable prebuild.ts sets: the artifacts as JSON. */
export const ARTIFACTS_ENV = "AOS_UNIT_TEST_ARTIFACTS";

let artifacts: Promise<Artifacts> | undefined;
function built(): Promise<Artifacts> {
  artifacts ??= (async () => {
    const given = Deno.env.get(ARTIFACTS_ENV);
    if (given) return JSON.parse(given) as Artifacts;
    const dir = await Deno.makeTempDir({ prefix: "aosu-artifacts-" });
    globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
    return await buildArtifacts(dir);
  })();
  return artifacts;
}

const packages = async () => (await built()).debs;
const guestImages = async () => (await built()).guests;
const armImages = async () => (await built()).arm;

/** `systemd-analyze security` overall exposure of a unit (lower is better). */
export function exposure(text: string): number {
  const m = /Overall exposure level for \S+: ([\d.]+)/.exec(text);
  if (!m) throw new Error(`no exposure level in: ${text.slice(-300)}`);
  return Number(m[1]);
}

/** One concern of tier 3: its steps, from a known start, in a bed of its own. */
export interface Scenario {
  /** What `tests/run.sh --only` takes. */
  name: string;
  summary: string;
  start: Start;
  run(t: Deno.TestContext, c: SystemBed): Promise<void>;
}

/** Where a scenario starts from (set up before its first step). */
export type Start =
  /** A booted bed with the topology: nothing installed. */
  | "bed"
  /** The package installed, the DHCP test guests and their configuration in place, stopped. */
  | "installed"
  /** As "installed", and the unit running: both nodes usable. */
  | "running"
  /** The package installed with the stock-like images and the shipped configuration, stopped. */
  | "stock"
  /** As "stock", and the unit running. */
  | "stock-running"
  /**
   * As "stock-running", every node with one vCPU. For scenarios that reboot guests
   * many times and are not about SMP: under TCG, with two beds' guests on a 2-CPU
   * machine, QEMU 10 (trixie) now and then boots an SMP guest whose second CPU never
   * gets a timer interrupt (an RCU stall "timer wakeup didn't happen ... on cpu=1",
   * the boot never ends). The stock scenario keeps the shipped vCPU counts.
   */
  | "stock-running-1cpu";

/** The bed of one scenario on one release, and the helpers its steps use. */
export type SystemBed = Awaited<ReturnType<typeof openSystemBed>>;

/** Boots nothing yet: `setUp` does, as the scenario's first step; `close` removes it all. */
export async function openSystemBed(suite: Suite, scenario: string, index: number) {
  const work = await Deno.makeTempDir({ prefix: `aosu-sys-${suite}-${scenario}-` });
  // Unique among the beds that may run at once: one process per release, scenarios in turn.
  const tag = `${suite.slice(0, 1)}${Deno.pid % 10000}${index.toString(36)}`;
  const topo = new Topology(`aos${tag}`, work);
  const bed = new Bed(`aosu${tag}`, suite);
  const consoles: (SerialConsole & { node?: string })[] = [];
  const sh = async (script: string) => {
    const r = await bed.sh(script);
    if (r.code !== 0) throw new Error(`in bed: ${script} -> ${r.code}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  /** setpriv's arguments for exactly the credentials process `pid` runs with. */
  const credentialsOf = async (pid: string) => {
    const st = await sh(`cat /proc/${pid}/status`);
    const field = (name: string) => st.match(new RegExp(`^${name}:\\s*(.*)$`, "m"))![1]!;
    const groups = field("Groups").trim().split(/\s+/).filter(Boolean);
    return [
      `--reuid=${field("Uid").split(/\s+/)[0]}`,
      `--regid=${field("Gid").split(/\s+/)[0]}`,
      groups.length ? `--groups=${groups.join(",")}` : "--clear-groups",
    ];
  };
  const show = (unit: string, ...props: string[]) => bed.systemctlShow(unit, ...props);
  const status = async (): Promise<{ code: number; status: Status }> => {
    const r = await bed.exec(["aos-unit", "status", "--json"]);
    return { code: r.code, status: JSON.parse(r.stdout) as Status };
  };
  const leaseOf = async (name: string) =>
    (await status()).status.nodes.find((n) => n.name === name)?.address;
  const failures = async (): Promise<FailureRecord[]> =>
    (await bed.exec(["cat", "/var/log/aos-unit/vm-failures.log"])).stdout.split("\n").filter(
      Boolean,
    ).map((l) => JSON.parse(l));
  /**
   * SIGKILLs node unit `unit` again each time systemd restarts it, until systemd gives up on
   * it (its start limit: failed), at most `tries` times.
   */
  const killPastStartLimit = async (unit: string, tries = 8) => {
    for (let i = 0; i < tries; i++) {
      if ((await show(unit, "ActiveState")).ActiveState === "failed") return;
      await bed.exec(["systemctl", "kill", "--signal=SIGKILL", unit]);
      await waitFor(
        `${unit} restarted or failed`,
        async () => {
          const u = await show(unit, "ActiveState", "SubState");
          return u.ActiveState === "failed" ||
              (u.ActiveState === "active" && u.SubState === "running")
            ? true
            : undefined;
        },
        20_000,
        200,
      ).catch(() => undefined);
    }
  };
  /** How often each guest booted (serial-log markers), or reboots since `before`. */
  const boots = async (): Promise<Record<string, number>> =>
    Object.fromEntries(
      await Promise.all(NODES.map(async (n) => {
        const r = await bed.exec([
          "grep",
          "-c",
          "AOSTEST boot",
          `/var/log/aos-unit/${n}-serial.log`,
        ]);
        return [n, Number(r.stdout.trim() || "0")] as const;
      })),
    );
  const writeConfig = (text: string) =>
    bed.exec(["sh", "-c", "cat > /etc/aos-unit/unit_config.yaml"], { stdin: text });
  const writeRuntime = (text: string) =>
    bed.exec(["sh", "-c", "cat > /etc/aos-unit/runtime.conf"], { stdin: text });
  const placeImages = async () => {
    const images = await guestImages();
    for (const name of NODES) {
      await bed.cpIn(
        `${images}/aos-vm-${name}-amd64-uefi.qcow2`,
        `/var/lib/aos-unit/aos-vm-${name}-qemux86-64.qcow2`,
      );
    }
    await sh("chown aos-unit:aos-unit /var/lib/aos-unit/*.qcow2");
    await writeConfig(UNIT_CONFIG);
    await writeRuntime(RUNTIME_CONF);
  };
  const doctorJson = async () => {
    const r = await bed.exec(["aos-unit", "doctor", "--json"]);
    return {
      code: r.code,
      ...JSON.parse(r.stdout) as { canStart: boolean; checks: CheckResult[] },
    };
  };
  const journal = async (lines = 80) =>
    (await bed.exec(["journalctl", "-u", "aos-*", "-n", String(lines), "--no-pager"])).stdout;
  /** What a failed start or check needs to be understood: units, journal, each guest's console. */
  const diagnosis = async (lines = 60) => {
    const units = await bed.exec(["systemctl", "list-units", "--all", "--no-pager", "aos-*"]);
    const consoles = await Promise.all(NODES.map(async (n) => {
      const r = await bed.exec(["tail", "-n", "12", `/var/log/aos-unit/${n}-serial.log`]);
      return `--- ${n}-serial.log (last 12 lines)\n${r.stdout}${r.stderr}`;
    }));
    return `--- units\n${units.stdout}--- journal\n${await journal(lines)}${consoles.join("")}`;
  };
  const startUnit = async () => {
    const started = performance.now();
    const r = await bed.exec(["systemctl", "start", "aos-unit"]);
    const ms = Math.round(performance.now() - started);
    if (r.code !== 0) {
      throw new Error(
        `systemctl start aos-unit failed (${r.code}): ${r.stderr}\n${await diagnosis()}`,
      );
    }
    return ms;
  };
  /** READY again: the manager active and every node running with an address. */
  const waitRunning = (timeoutMs = 60_000) =>
    waitFor(
      "aos-unit running with every node",
      async () => {
        const u = await show("aos-unit.service", "ActiveState", "SubState", "StatusText");
        return u.ActiveState === "active" && u.SubState === "running" &&
            /^Running: main=\S+ secondary=\S+$/.test(u.StatusText ?? "")
          ? u
          : undefined;
      },
      timeoutMs,
      100,
    );
  const serial = async (node: string) => {
    // QEMU serves one client at a time: a console a failed step left open goes first.
    for (let i = consoles.length - 1; i >= 0; i--) {
      if (consoles[i]!.node === node) consoles.splice(i, 1)[0]!.close();
    }
    const c = Object.assign(
      await SerialConsole.connect(bed.path(`/run/aos-unit/nodes/${node}/serial`)),
      { node },
    );
    consoles.push(c);
    return c;
  };
  const http = async (c: SerialConsole) =>
    (await c.probe(`aos-probe http ${URL_}`, /AOSTEST http url=\S+ (body=(\S+)|fail)/))[2];
  /** Runs a shell command in a guest; true when it exited 0. */
  const guestOk = async (c: SerialConsole, command: string, timeoutMs = 15_000) =>
    (await c.probe(
      `if ${command}; then echo AOSTEST cmd ok; else echo AOSTEST cmd fail; fi`,
      /AOSTEST cmd (ok|fail)/,
      timeoutMs,
    ))[1] === "ok";
  /** A DNS question from a namespace (the host's view: the bed shares its network). */
  const dnsFrom = async (
    ns: string,
    server: string,
    port: number,
    name: string,
    timeoutMs = 2000,
  ) =>
    (await run([
      "ip",
      "netns",
      "exec",
      ns,
      Deno.execPath(),
      "run",
      "--quiet",
      "--unstable-net",
      "-A",
      `${ROOT}/tests/lib/dns_probe.ts`,
      server,
      String(port),
      name,
      String(timeoutMs),
    ])).stdout.trim();
  const noLeftovers = async () => {
    const linksOut = (await bed.exec(["ip", "-br", "link"])).stdout;
    assert.doesNotMatch(linksOut, /aosbr|aostap|aosv/, linksOut);
    const namespaces = (await bed.exec(["ip", "netns", "list"])).stdout;
    assert.doesNotMatch(namespaces, /aos-unit/, `no unit's namespace: ${namespaces}`);
    const tables = (await bed.exec(["nft", "list", "tables"])).stdout;
    assert.doesNotMatch(tables, /aos_unit/, `no nft table: ${tables}`);
    const units = (await bed.exec([
      "systemctl",
      "list-units",
      "--all",
      "--plain",
      "--no-legend",
      "aos-node-*",
      "aos-unit-dnsmasq*",
    ])).stdout.trim();
    assert.equal(units, "", `no transient units left: ${units}`);
    const qemu = await bed.exec(["pgrep", "-a", "qemu-system"]);
    assert.equal(qemu.stdout.trim(), "", "no QEMU left");
  };

  // The images users run: main static at 10.0.0.100/24, the secondary on DHCP finding main
  // through /etc/hosts, the shipped configuration left untouched (tests/guest/README.md).
  const useStock = async () => {
    await sh(
      "systemctl stop aos-unit; rm -rf /var/lib/aos-unit/nodes/* /var/lib/aos-unit/dhcp/*",
    );
    const images = await guestImages();
    for (const name of NODES) {
      await bed.cpIn(
        `${images}/aos-vm-${name}-amd64-stock.qcow2`,
        `/var/lib/aos-unit/aos-vm-${name}-qemux86-64.qcow2`,
      );
    }
    await sh(
      "chown aos-unit:aos-unit /var/lib/aos-unit/*.qcow2 && " +
        "cp /usr/share/aos-unit/examples/unit_config.yaml /usr/share/aos-unit/examples/runtime.conf /etc/aos-unit/",
    );
  };
  /** GET / on HOST:PORT from the bed (the host), with bash's /dev/tcp: the body's last line. */
  const fetchFromHost = async (host: string, port: number) =>
    (await bed.exec([
      "timeout",
      "5",
      "bash",
      "-c",
      `exec 3<>/dev/tcp/${host}/${port} && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && tail -n 1 <&3`,
    ])).stdout.trim();
  const stockRunning = (timeoutMs = 120_000) =>
    waitFor(
      "the stock unit running with every node",
      async () => {
        const u = await show("aos-unit.service", "ActiveState", "StatusText");
        return u.ActiveState === "active" &&
            /^Running: main=10\.0\.0\.100 secondary=10\.0\.0\.\d+$/.test(u.StatusText ?? "")
          ? u
          : undefined;
      },
      timeoutMs,
      200,
    );

  const installed = async () => {
    await bed.cpIn(debs.deb, "/tmp/");
    await bed.cpIn(debs.deb2, "/tmp/");
    const r = await bed.exec(["apt-get", "install", "-y", `/tmp/${debs.deb.split("/").pop()}`]);
    if (r.code !== 0) throw new Error(`apt-get install failed: ${r.stderr}${r.stdout}`);
  };
  const debs = { deb: "", deb2: "" };
  /** Boots the bed and brings it to where the scenario starts. */
  const setUp = async (start: Start) => {
    await topo.create();
    [debs.deb, debs.deb2] = await packages();
    await bed.up({ flavour: "base", netns: topo.host, machineId: MACHINE_ID });
    const version = await sh("systemctl --version | head -n1");
    console.log(`${suite} ${scenario}: ${version.trim()}`);
    if (start === "bed") return;
    await installed();
    if (start === "stock" || start === "stock-running" || start === "stock-running-1cpu") {
      await useStock();
      if (start === "stock-running-1cpu") {
        await sh(String.raw`sed -i -E 's/^(\s*cpu:) [0-9]+/\1 1/' /etc/aos-unit/unit_config.yaml`);
      }
      if (start !== "stock") await startUnit();
      return;
    }
    await placeImages();
    if (start === "installed") return;
    await startUnit();
  };
  const close = async () => {
    for (const c of consoles) c.close();
    await bed.down();
    await topo.destroy();
    await Deno.remove(work, { recursive: true }).catch(() => {});
  };
  return {
    suite,
    topo,
    bed,
    consoles,
    /** The package, and the next release of it (set up by setUp). */
    get deb() {
      return debs.deb;
    },
    get deb2() {
      return debs.deb2;
    },
    guestImages,
    armImages,
    sh,
    credentialsOf,
    show,
    killPastStartLimit,
    status,
    leaseOf,
    failures,
    boots,
    writeConfig,
    writeRuntime,
    placeImages,
    doctorJson,
    journal,
    diagnosis,
    startUnit,
    waitRunning,
    serial,
    http,
    guestOk,
    dnsFrom,
    noLeftovers,
    useStock,
    fetchFromHost,
    stockRunning,
    setUp,
    close,
  };
}
