/** What the bed-based benchmarks share: the package built, then installed with its images. */

import { buildGuests, ROOT } from "../lib/aos.ts";
import { Bed } from "../lib/bed.ts";
import { run, waitFor } from "../lib/proc.ts";
import { Topology } from "../lib/topology.ts";

/** Builds the .deb (gzip: quick) into `out`, with this SOURCE_DATE_EPOCH; returns its path. */
export async function buildDeb(
  out: string,
  epoch = Math.floor(Date.now() / 1000),
): Promise<string> {
  const r = await run(
    ["bash", `${ROOT}/packaging/build_package.sh`, "--out", out, "--compress", "gzip"],
    { env: { ...Deno.env.toObject(), SOURCE_DATE_EPOCH: String(epoch) } },
  );
  if (r.code !== 0) throw new Error(r.stderr);
  return r.stdout.trim().split("\n").at(-1)!;
}

/**
 * Copies the packages into the bed, installs the first, and puts each node's UEFI test
 * image (buildGuests in `images`) where the unit finds it, owned by the service user.
 */
export async function installWithImages(
  bed: Bed,
  debs: string[],
  images: string,
  nodes: string[],
): Promise<void> {
  const sh = async (script: string) => {
    const r = await bed.sh(script);
    if (r.code !== 0) throw new Error(`${script}: ${r.stderr}`);
  };
  for (const d of debs) await bed.cpIn(d, "/tmp/");
  await sh(`apt-get install -y -q /tmp/${debs[0]!.split("/").pop()} >/dev/null`);
  for (const n of nodes) {
    await bed.cpIn(
      `${images}/aos-vm-${n}-amd64-uefi.qcow2`,
      `/var/lib/aos-unit/aos-vm-${n}-amd64.qcow2`,
    );
  }
  await sh("chown aos-unit:aos-unit /var/lib/aos-unit/*.qcow2");
}

/** SIGKILLs the manager, and returns once systemd has started it again (NRestarts moved). */
export async function killManager(sh: (script: string) => Promise<string>): Promise<void> {
  await sh("systemctl kill -s KILL --kill-whom=main aos-unit");
  await waitFor(
    "a restart",
    async () =>
      (await sh("systemctl show -p NRestarts --value aos-unit")) !== "0" ? true : undefined,
    10_000,
    50,
  );
}

/**
 * Builds the package and the test guests once, runs `benchSuite` for each release, then
 * prints every figure side by side (a key "TITLE\0LABEL" prints as LABEL).
 */
export async function benchReleases<Suite extends string>(
  title: string,
  suites: readonly Suite[],
  nodes: string[],
  benchSuite: (suite: Suite, work: string, deb: string) => Promise<[string, string][]>,
): Promise<void> {
  const work = await Deno.makeTempDir({ prefix: `aosu-${title}-` });
  try {
    const deb = await buildDeb(`${work}/deb`);
    await buildGuests(`${work}/images`, nodes);
    const results = new Map<Suite, Map<string, string>>();
    for (const suite of suites) {
      console.log(`== ${suite}`);
      results.set(suite, new Map(await benchSuite(suite, work, deb)));
    }
    console.log(`\n== ${title}, side by side`);
    const keys = [...new Set([...results.values()].flatMap((m) => [...m.keys()]))];
    const label = (k: string) => k.includes("\0") ? k.split("\0")[1]! : k;
    const width = Math.max(...keys.map((k) => label(k).length));
    console.log(`${"".padEnd(width)} | ${suites.join(" | ")}`);
    for (const k of keys) {
      console.log(
        `${label(k).padEnd(width)} | ${
          suites.map((s) => results.get(s)!.get(k) ?? "-").join(" | ")
        }`,
      );
    }
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}

/** A shell in the bed: stdout trimmed, a failure thrown with its stderr. */
export type BedShell = (script: string) => Promise<string>;

/**
 * A bed of release `suite` (named after `prefix`) with the package installed and the
 * images of `nodes` in place: `counts` are measured in turn (each printed as it comes), and
 * the bed and its network go whatever happens.
 * @returns the rows of `first` and of every count
 */
export async function benchCounts<Suite extends "bookworm" | "trixie">(
  o: { suite: Suite; work: string; deb: string; prefix: string; nodes: string[] },
  counts: readonly number[],
  first: (sh: BedShell) => Promise<[string, string][]>,
  each: (sh: BedShell, count: number) => Promise<[string, string][]>,
): Promise<[string, string][]> {
  const tag = `${o.prefix}${o.suite.slice(0, 1)}${Deno.pid % 1000}`;
  const topo = new Topology(tag, `${o.work}/${o.suite}`);
  const bed = new Bed(`aos${tag}`, o.suite);
  await Deno.mkdir(`${o.work}/${o.suite}`, { recursive: true });
  const sh = async (script: string) => {
    const r = await bed.sh(script);
    if (r.code !== 0) throw new Error(`${script}: ${r.stderr}`);
    return r.stdout.trim();
  };
  try {
    await topo.create();
    await bed.up({ flavour: "base", netns: topo.host });
    await installWithImages(bed, [o.deb], `${o.work}/images`, o.nodes);
    const rows = await first(sh);
    for (const count of counts) {
      const more = await each(sh, count);
      for (const [k, v] of more) console.log(`  [${o.suite}] ${k}: ${v}`);
      rows.push(...more);
    }
    return rows;
  } finally {
    await bed.down();
    await topo.destroy();
  }
}
