/** A systemd test bed (tests/bed/bed.sh) driven from Deno tests. */

import { ROOT } from "./aos.ts";
import { type Result, run } from "./proc.ts";

const BED = `${ROOT}/tests/bed/bed.sh`;

export class Bed {
  leader = 0;

  /** @param suite the Debian release of the bed (tests/bed/bed.sh: AOS_BED_SUITE) */
  constructor(readonly name: string, readonly suite: "bookworm" | "trixie" = "bookworm") {}

  async up(
    options: { flavour?: "base" | "full"; netns?: string; machineId?: string } = {},
  ): Promise<number> {
    const args = ["bash", BED, "up", this.name, "--flavour", options.flavour ?? "base"];
    if (options.netns) args.push("--netns", options.netns);
    if (options.machineId) args.push("--machine-id", options.machineId);
    const r = await run(args, { env: { ...Deno.env.toObject(), AOS_BED_SUITE: this.suite } });
    const m = /^ready \S+ (\d+)$/m.exec(r.stdout);
    if (r.code !== 0 || !m) throw new Error(`bed up failed (${r.code}): ${r.stderr.slice(-3000)}`);
    this.leader = Number(m[1]);
    return this.leader;
  }

  /** Runs a command in the bed (as root, or as `user`). */
  async exec(argv: string[], options: { user?: string; stdin?: string } = {}): Promise<Result> {
    const args = ["bash", BED, "exec", this.name];
    if (options.user) args.push("--user", options.user);
    return await run(
      [...args, "--", ...argv],
      options.stdin === undefined ? {} : { stdin: options.stdin },
    );
  }

  /** Like exec, but throws with the output unless the exit code is 0. */
  async must(argv: string[], options: { user?: string } = {}): Promise<Result> {
    const r = await this.exec(argv, options);
    if (r.code !== 0) {
      throw new Error(
        `in bed: ${argv.join(" ")} exited ${r.code}: ${r.stderr.trim()}\n${r.stdout.trim()}`,
      );
    }
    return r;
  }

  async sh(script: string): Promise<Result> {
    return await this.exec(["sh", "-c", script]);
  }

  async cpIn(src: string, dst: string): Promise<void> {
    const r = await run(["bash", BED, "cp-in", this.name, src, dst]);
    if (r.code !== 0) throw new Error(`bed cp-in failed: ${r.stderr}`);
  }

  /** A path inside the bed, as seen from the host (e.g. to connect to a unix socket). */
  path(inside: string): string {
    return `/proc/${this.leader}/root${inside}`;
  }

  /** Powers the container off and boots it again on the same root (a host reboot). */
  async reboot(): Promise<number> {
    const r = await run(["bash", BED, "reboot", this.name]);
    const m = /^rebooted \S+ (\d+)$/m.exec(r.stdout);
    if (r.code !== 0 || !m) {
      throw new Error(`bed reboot failed (${r.code}): ${r.stderr.slice(-3000)}`);
    }
    this.leader = Number(m[1]);
    return this.leader;
  }

  /** Powers the bed off; returns the bed script's report ("poweroff took N s" or "killed"). */
  async down(): Promise<Result> {
    return await run(["bash", BED, "down", this.name]);
  }

  async systemctlShow(unit: string, ...props: string[]): Promise<Record<string, string>> {
    const r = await this.exec(["systemctl", "show", unit, ...props.map((p) => `--property=${p}`)]);
    return Object.fromEntries(
      r.stdout.trim().split("\n").filter(Boolean).map((l) => {
        const i = l.indexOf("=");
        return [l.slice(0, i), l.slice(i + 1)];
      }),
    );
  }
}
