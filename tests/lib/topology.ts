/**
 * The network test bed: a "host" namespace with two uplink namespaces. Each
 * uplink holds the same "internet" address (on its lo) with an HTTP server
 * that answers with the uplink's name, so a guest's reply shows which path
 * its traffic took. No traffic ever leaves these namespaces.
 */

import { must, Processes, run } from "./proc.ts";

export const INTERNET_IP = "198.51.100.1";

export interface Uplink {
  ns: string;
  /** Interface name in the host namespace. */
  ifname: string;
  hostIp: string;
  gateway: string;
}

export class Topology {
  readonly host: string;
  readonly uplinks: [Uplink, Uplink];
  readonly procs = new Processes();

  constructor(readonly prefix: string, readonly workDir: string) {
    this.host = `${prefix}-host`;
    this.uplinks = [1, 2].map((i) => ({
      ns: `${prefix}-up${i}`,
      ifname: `uplink${i}`,
      hostIp: `10.202.${i}.2`,
      gateway: `10.202.${i}.1`,
    })) as [Uplink, Uplink];
  }

  /** `ip netns exec NS argv...` */
  inNs(ns: string, argv: string[]): string[] {
    return ["/usr/sbin/ip", "netns", "exec", ns, ...argv];
  }

  async create(): Promise<void> {
    await this.destroy(); // leftovers of a crashed run with the same prefix
    await must(["ip", "netns", "add", this.host]);
    await must(["ip", "-n", this.host, "link", "set", "lo", "up"]);
    for (const [i, up] of this.uplinks.entries()) {
      await must(["ip", "netns", "add", up.ns]);
      await must(["ip", "-n", up.ns, "link", "set", "lo", "up"]);
      await must([
        "ip",
        "link",
        "add",
        up.ifname,
        "netns",
        this.host,
        "type",
        "veth",
        "peer",
        "name",
        "wan",
        "netns",
        up.ns,
      ]);
      await must(["ip", "-n", this.host, "addr", "add", `${up.hostIp}/24`, "dev", up.ifname]);
      await must(["ip", "-n", this.host, "link", "set", up.ifname, "up"]);
      await must(["ip", "-n", up.ns, "addr", "add", `${up.gateway}/24`, "dev", "wan"]);
      await must(["ip", "-n", up.ns, "link", "set", "wan", "up"]);
      await must(["ip", "-n", up.ns, "addr", "add", `${INTERNET_IP}/32`, "dev", "lo"]);
      const www = `${this.workDir}/www-up${i + 1}`;
      await Deno.mkdir(www, { recursive: true });
      await Deno.writeTextFile(`${www}/index.html`, `uplink${i + 1}\n`);
      this.procs.start(
        this.inNs(up.ns, ["busybox", "httpd", "-f", "-p", `${INTERNET_IP}:80`, "-h", www]),
        `${this.workDir}/httpd-up${i + 1}.log`,
      );
    }
    await this.setDefault(0);
  }

  /** Makes uplink `index` the default route (replacing any other). */
  async setDefault(index: 0 | 1, metric = 100): Promise<void> {
    const up = this.uplinks[index];
    await must([
      "ip",
      "-n",
      this.host,
      "route",
      "replace",
      "default",
      "via",
      up.gateway,
      "dev",
      up.ifname,
      "metric",
      String(metric),
    ]);
  }

  async namespaces(): Promise<string[]> {
    const r = await run(["ip", "netns", "list"]);
    return r.stdout.split("\n").map((l) => l.split(" ")[0] ?? "").filter((n) =>
      n.startsWith(`${this.prefix}-`)
    );
  }

  /** Kills everything left in our namespaces, then deletes them. Idempotent. */
  async destroy(): Promise<void> {
    await this.procs.stopAll();
    for (const ns of await this.namespaces()) {
      const pids = (await run(["ip", "netns", "pids", ns])).stdout.split("\n").filter(Boolean);
      if (pids.length > 0) await run(["kill", "-9", ...pids]);
      await run(["ip", "netns", "del", ns]);
    }
  }
}

/** Links in a namespace, with their alias (aos-unit marks its bridge there). */
export async function linksIn(ns: string): Promise<{ ifname: string; ifalias?: string }[]> {
  const r = await run(["ip", "-n", ns, "-j", "link", "show"]);
  return JSON.parse(r.stdout) as { ifname: string; ifalias?: string }[];
}

/** Rules in aos-unit's nft table in a namespace, or -1 when the table does not exist. */
export async function aosTableRules(ns: string): Promise<number> {
  const r = await run([
    "ip",
    "netns",
    "exec",
    ns,
    "nft",
    "-j",
    "list",
    "table",
    "inet",
    "aos_unit",
  ]);
  if (r.code !== 0) return -1;
  return (JSON.parse(r.stdout).nftables as Record<string, unknown>[]).filter((o) => "rule" in o)
    .length;
}
