/** End-to-end CLI cases: exit code, stdout and stderr, through main.ts as users run it. */

import assert from "node:assert/strict";
import { aosUnit } from "../lib/cli.ts";
import { FHS_PATHS } from "../../src/host/paths.ts";
import { denoFlags, NOTIFY_SOCKET_DEFAULT, unionPermissions } from "../../src/permissions.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const CASES = new URL("../golden/cases", import.meta.url).pathname;
const BAD = new URL("../config/bad", import.meta.url).pathname;

Deno.test("aos-unit validate accepts a good config (exit 0)", async () => {
  const r = await aosUnit(["validate", "--config-dir", `${CASES}/default`]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /valid: 2 nodes \(main, secondary\), network 10\.200\.1\.0\/24/);
});

Deno.test("aos-unit validate lists every problem and exits 2", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.copyFile(`${BAD}/many-errors.yaml`, `${dir}/unit_config.yaml`);
    const r = await aosUnit(["validate", "-c", dir]);
    assert.equal(r.code, 2);
    const lines = r.stderr.trimEnd().split("\n");
    assert.equal(lines.filter((l) => /unit_config\.yaml:\d+:\d+: /.test(l)).length, 6, r.stderr);
    assert.match(lines.at(-1)!, /invalid configuration: 6 errors/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("aos-unit validate reports a missing file with its path (exit 2)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const r = await aosUnit(["validate", "-c", dir]);
    assert.equal(r.code, 2);
    assert.match(
      r.stderr,
      new RegExp(`${dir}/unit_config.yaml:1:1: Cannot read unit_config.yaml: no such file`),
    );
  } finally {
    await Deno.remove(dir);
  }
});

Deno.test("aos-unit plan with no config says where it looked and how to plan the sample", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const r = await aosUnit(["plan", "-c", dir]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, new RegExp(`looked in ${dir}`));
    assert.match(r.stderr, /aos-unit plan --config-dir \/usr\/share\/aos-unit\/examples/);
  } finally {
    await Deno.remove(dir);
  }
});

Deno.test("aos-unit plan --json shows bridge, pool and both nodes", async () => {
  const r = await aosUnit(["plan", "--json", "-c", `${CASES}/default`]);
  assert.equal(r.code, 0, r.stderr);
  const plan = JSON.parse(r.stdout);
  assert.match(plan.network.bridge, /^aosbr[0-9a-f]{6}$/);
  assert.equal(plan.network.bridgeIp, "10.200.1.1");
  assert.equal(plan.network.poolStart, "10.200.1.128");
  assert.deepEqual(plan.nodes.map((n: { name: string }) => n.name), ["main", "secondary"]);
  assert.equal(plan.nodes[0].unit.name, "aos-node-main.service");
  assert.match(plan.nodes[0].mac, /^52:54:00:/);
});

Deno.test("aos-unit plan --unit NAME plans that unit: its names, directories and shared images", async () => {
  const r = await aosUnit(["plan", "--json", "--unit", "lab-1", "-c", `${CASES}/default`]);
  assert.equal(r.code, 0, r.stderr);
  const plan = JSON.parse(r.stdout);
  assert.equal(plan.unit.name, "lab-1");
  assert.equal(plan.unit.managerUnit, "aos-unit@lab-1.service");
  assert.equal(plan.unit.slice, "aos-unit-lab\\x2d1.slice");
  assert.equal(plan.nft.table, "aos_unit_lab_1");
  assert.equal(plan.dnsmasq.unit.name, "aos-unit-dnsmasq@lab-1.service");
  assert.equal(plan.nodes[0].unit.name, "aos-node-lab-1_main.service");
  assert.equal(plan.paths.stateDir, "/var/lib/aos-units/lab-1");
  assert.equal(plan.paths.runtimeDir, "/run/aos-units/lab-1");
  assert.equal(plan.paths.imagesDir, "/var/lib/aos-unit");
  assert.equal(plan.nodes[0].overlay, "/var/lib/aos-units/lab-1/nodes/main/overlay.qcow2");
  const own = await aosUnit(["plan", "--json", "-c", `${CASES}/default`]);
  const other = JSON.parse(own.stdout);
  assert.notEqual(plan.network.bridge, other.network.bridge, "a bridge of its own");
  assert.notEqual(plan.nodes[0].mac, other.nodes[0].mac, "the same node name, another MAC");
  assert.notEqual(plan.nodes[0].tap, other.nodes[0].tap, "and another tap");
  // The environment a named unit's own units carry says the same.
  const env = await aosUnit(["plan", "--json", "-c", `${CASES}/default`], {
    AOS_UNIT_NAME: "lab-1",
  });
  assert.equal(JSON.parse(env.stdout).unit.managerUnit, "aos-unit@lab-1.service");
});

Deno.test("aos-unit list --json names the default unit and each units/NAME, configured or not", async () => {
  const root = await Deno.makeTempDir();
  try {
    const yaml = Deno.readTextFileSync(`${CASES}/default/unit_config.yaml`);
    for (const dir of [root, `${root}/units/lab1`, `${root}/units/lab-2`, `${root}/units/empty`]) {
      Deno.mkdirSync(dir, { recursive: true });
      if (!dir.endsWith("empty")) Deno.writeTextFileSync(`${dir}/unit_config.yaml`, yaml);
    }
    // Not a unit name: never a unit.
    Deno.mkdirSync(`${root}/units/Not_A_Unit`);
    Deno.writeTextFileSync(`${root}/units/Not_A_Unit/unit_config.yaml`, yaml);
    // Whether or not a system bus answers here, the list is whole.
    const r = await aosUnit(["list", "--json"], { CONFIGURATION_DIRECTORY: root });
    assert.equal(r.code, 0, r.stderr);
    const list = JSON.parse(r.stdout) as { name: string; config: string; service: string }[];
    assert.deepEqual(list.map((u) => [u.name, u.service, u.config]), [
      ["default", "aos-unit.service", `${root}/unit_config.yaml`],
      ["lab-2", "aos-unit@lab-2.service", `${root}/units/lab-2/unit_config.yaml`],
      ["lab1", "aos-unit@lab1.service", `${root}/units/lab1/unit_config.yaml`],
    ]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("aos-unit validate --unit warns about another configured unit on an overlapping subnet", async () => {
  const root = await Deno.makeTempDir();
  try {
    const yaml = Deno.readTextFileSync(`${CASES}/default/unit_config.yaml`);
    for (
      const [name, cidr] of [["a", "10.200.1.0/24"], ["b", "10.200.1.128/25"], ["c", "10.9.0.0/24"]]
    ) {
      Deno.mkdirSync(`${root}/units/${name}`, { recursive: true });
      Deno.writeTextFileSync(`${root}/units/${name}/unit_config.yaml`, yaml);
      Deno.writeTextFileSync(`${root}/units/${name}/runtime.conf`, `DHCP_CIDR="${cidr}"\n`);
    }
    const r = await aosUnit(["validate", "--unit", "a"], { CONFIGURATION_DIRECTORY: root });
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(
        `units/a/runtime.conf:1:\\d+: warning: DHCP_CIDR 10\\.200\\.1\\.0/24 overlaps unit b's 10\\.200\\.1\\.128/25 \\(${root}/units/b/runtime.conf\\): the two cannot run at the same time`,
      ),
    );
    assert.doesNotMatch(r.stderr, /unit c's/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("aos-unit --unit with a name that is no unit name exits 2 and says why", async () => {
  for (const bad of ["Lab", "lab_1", "-lab", "a".repeat(21), "../etc", "default", "dnsmasq"]) {
    const r = await aosUnit(["plan", "--unit", bad, "-c", `${CASES}/default`]);
    assert.equal(r.code, 2, bad);
    assert.match(r.stderr, /is not a unit name: a DNS label .* at most 20 characters/, bad);
    assert.equal(r.stdout, "", bad);
  }
});

Deno.test("unknown subcommands and flags get a one-line error and a hint (exit 2)", async (t) => {
  for (const args of [["vaildate"], ["plan", "--jsno"], ["--frobnicate"]]) {
    await t.step(args.join(" "), async () => {
      const r = await aosUnit(args);
      assert.equal(r.code, 2);
      assert.equal(r.stdout, "");
      assert.match(r.stderr, /^error: unknown (command|option)/);
      assert.match(r.stderr, /Run 'aos-unit --help'/);
    });
  }
  await t.step("a close typo gets a suggestion", async () => {
    const r = await aosUnit(["vaildate"]);
    assert.match(r.stderr, /Did you mean validate\?/);
  });
});

Deno.test("aos-unit --version and --help exit 0", async () => {
  const v = await aosUnit(["--version"]);
  assert.equal(v.code, 0);
  assert.match(v.stdout, /^\d+\.\d+\.\d+/);
  const h = await aosUnit(["--help"]);
  assert.equal(h.code, 0);
  assert.match(h.stdout, /Examples:/);
  const ph = await aosUnit(["plan", "--help"]);
  assert.match(ph.stdout, /Examples:/);
});

Deno.test("help works with the packaged grants in a plain environment (no NO_COLOR)", async () => {
  // The launcher's fallback for --help, typos and no command: the union of every set.
  const flags = denoFlags(
    unionPermissions({ paths: FHS_PATHS, notifySocket: NOTIFY_SOCKET_DEFAULT }),
  );
  const run = async (...args: string[]) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", "--unstable-net", ...flags, MAIN, ...args],
      clearEnv: true,
      env: {
        PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
        DENO_DIR: Deno.env.get("DENO_DIR") ?? "",
      },
      stdout: "piped",
      stderr: "piped",
    }).output();
    return {
      code: out.code,
      text: new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr),
    };
  };
  const help = await run("--help");
  assert.equal(help.code, 0, help.text);
  assert.match(help.text, /Examples:/);
  const bare = await run();
  assert.equal(bare.code, 2, bare.text);
  assert.match(bare.text, /Usage: aos-unit/);
  assert.doesNotMatch(bare.text, /NotCapable/);
});

Deno.test("the command table lists every subcommand once, in SUBCOMMANDS order, under its name", async () => {
  const { COMMANDS } = await import("../../src/command_table.ts");
  const { SUBCOMMANDS } = await import("../../src/base/subcommands.ts");
  assert.deepEqual(Object.keys(COMMANDS), [...SUBCOMMANDS]);
  for (const [name, spec] of Object.entries(COMMANDS)) assert.equal(spec.name, name);
});
