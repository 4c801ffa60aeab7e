/**
 * Runs aos-unit from the source tree the way the tests need it: with its four
 * directories in a scratch area, as root, with a lease-hook wrapper for
 * dnsmasq, optionally inside a network namespace.
 */

import type { Plan } from "../../src/plan/types.ts";
import { type Result, run } from "./proc.ts";

export const ROOT = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
export const MAIN = `${ROOT}/main.ts`;

export class DevUnit {
  readonly configDir: string;
  readonly stateDir: string;
  readonly runtimeDir: string;
  readonly logsDir: string;
  readonly leaseHook: string;
  readonly executable: string;

  constructor(readonly dir: string, readonly netns?: string) {
    this.configDir = `${dir}/etc`;
    this.stateDir = `${dir}/state`;
    this.runtimeDir = `${dir}/run`;
    this.logsDir = `${dir}/log`;
    this.leaseHook = `${dir}/lease-hook`;
    this.executable = `${dir}/aos-unit`;
  }

  /** Creates the directories and the wrapper scripts. */
  async init(unitConfig: string, runtimeConf?: string): Promise<void> {
    for (const d of [this.configDir, this.stateDir, this.runtimeDir, this.logsDir]) {
      await Deno.mkdir(d, { recursive: true });
    }
    await Deno.writeTextFile(`${this.configDir}/unit_config.yaml`, unitConfig);
    if (runtimeConf !== undefined) {
      await Deno.writeTextFile(`${this.configDir}/runtime.conf`, runtimeConf);
    }
    const env = Object.entries(this.env()).map(([k, v]) => `${k}='${v}'`).join(" ");
    // What the package's /usr/bin/aos-unit and lease-hook do, from the source tree.
    await Deno.writeTextFile(
      this.executable,
      `#!/bin/sh\nexec env ${env} '${Deno.execPath()}' run --quiet --cached-only -A --unstable-net '${MAIN}' "$@"\n`,
      { mode: 0o755 },
    );
    await Deno.writeTextFile(
      this.leaseHook,
      `#!/bin/sh\nexec '${this.executable}' lease-hook "$@"\n`,
      { mode: 0o755 },
    );
  }

  env(): Record<string, string> {
    return {
      CONFIGURATION_DIRECTORY: this.configDir,
      STATE_DIRECTORY: this.stateDir,
      RUNTIME_DIRECTORY: this.runtimeDir,
      LOGS_DIRECTORY: this.logsDir,
      AOS_UNIT_SERVICE_USER: "root",
      AOS_UNIT_LEASE_HOOK: this.leaseHook,
      AOS_UNIT_EXECUTABLE: this.executable,
      DENO_DIR: Deno.env.get("DENO_DIR") ?? "",
      PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
      NO_COLOR: "1",
    };
  }

  /** argv running `aos-unit ARGS` (inside the namespace when there is one). */
  argv(args: string[]): string[] {
    const base = [this.executable, ...args];
    return this.netns ? ["/usr/sbin/ip", "netns", "exec", this.netns, ...base] : base;
  }

  async cli(...args: string[]): Promise<Result> {
    return await run(this.argv(args));
  }

  /** The plan exactly as the subcommands see it. */
  async plan(): Promise<Plan> {
    const r = await this.cli("plan", "--json");
    if (r.code !== 0) throw new Error(`aos-unit plan failed (${r.code}): ${r.stderr}`);
    return JSON.parse(r.stdout) as Plan;
  }
}

/** Builds (or reuses from the cache) test guest disks for these names. */
export async function buildGuests(
  outDir: string,
  names: string[],
  arch: "amd64" | "arm64" = "amd64",
): Promise<void> {
  const r = await run([
    "bash",
    `${ROOT}/tests/guest/build.sh`,
    "--out",
    outDir,
    "--arch",
    arch,
    ...names.flatMap((n) => ["--name", n]),
  ]);
  if (r.code !== 0) throw new Error(`tests/guest/build.sh failed: ${r.stderr.slice(-2000)}`);
}

/** Bundles an entry point into one JS file, as the package build does. */
export async function bundle(entry: string, out: string): Promise<void> {
  const r = await run([
    Deno.execPath(),
    "bundle",
    "--quiet",
    // As the package build does (packaging/build_package.sh): no `node:` module.
    "--platform=browser",
    "-o",
    out,
    entry,
  ]);
  if (r.code !== 0) throw new Error(`deno bundle ${entry} failed: ${r.stderr}`);
}
