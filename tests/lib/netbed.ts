/**
 * The tier-2 set-up every network test shares: a scratch directory, the
 * namespace topology (host + two uplinks) and a DevUnit configured inside the
 * host namespace. `close()` takes all of it down, whatever state it is in.
 */

import { DevUnit } from "./aos.ts";
import { must, type Result, run, waitFor } from "./proc.ts";
import { Topology } from "./topology.ts";

export class NetBed {
  private constructor(
    readonly work: string,
    readonly topo: Topology,
    readonly unit: DevUnit,
  ) {}

  /**
   * @param prefix namespace and directory prefix (a short tag; the pid is appended)
   */
  static async open(prefix: string, unitConfig: string, runtimeConf?: string): Promise<NetBed> {
    const work = await Deno.makeTempDir({ prefix: `aosu-${prefix}-` });
    const topo = new Topology(`aos${prefix.slice(0, 1)}${Deno.pid % 100000}`, work);
    const bed = new NetBed(work, topo, new DevUnit(`${work}/unit`, topo.host));
    try {
      await topo.create();
      await bed.unit.init(unitConfig, runtimeConf);
    } catch (error) {
      await bed.close();
      throw error;
    }
    return bed;
  }

  /** `ip -n HOST ARGS...`, which must succeed. */
  async ip(...args: string[]): Promise<void> {
    await must(["ip", "-n", this.topo.host, ...args]);
  }

  /** `ip -n HOST ARGS...` whatever it returns (for the undo of a step, or to look). */
  ipQuiet(...args: string[]): Promise<Result> {
    return run(["ip", "-n", this.topo.host, ...args]);
  }

  /** Waits until something in the host namespace listens on UDP `port`. */
  async udpListener(port: number, what = "a UDP listener"): Promise<void> {
    await waitFor(
      what,
      async () => {
        const r = await run(
          this.topo.inNs(this.topo.host, ["ss", "-Hlun", "sport", "=", `:${port}`]),
        );
        return r.stdout.trim() ? true : undefined;
      },
      5000,
      50,
    );
  }

  /** Starts a UDP listener on `port` in the host namespace (something in aos-unit's way). */
  async occupyUdp(port: number): Promise<() => Promise<void>> {
    const listener = this.topo.procs.start(
      this.topo.inNs(this.topo.host, ["socat", `UDP-LISTEN:${port},reuseaddr`, "-"]),
      `${this.work}/socat-${port}.log`,
    );
    await this.udpListener(port, `a listener on ${port}`);
    return () => this.topo.procs.stop(listener).then(() => {});
  }

  async close(): Promise<void> {
    await this.topo.destroy();
    await Deno.remove(this.work, { recursive: true }).catch(() => {});
  }
}
