import assert from "node:assert/strict";
import { FHS_PATHS } from "../../src/host/paths.ts";
import {
  denoFlags,
  type PermissionSet,
  permissionsFor,
  SUBCOMMANDS,
  unionPermissions,
} from "../../src/permissions.ts";
import { TOOLS } from "../../src/base/tools.ts";

const FIXTURE = new URL("./fixtures/escape.ts", import.meta.url).pathname;
const CONFIG = new URL("../golden/cases/default", import.meta.url).pathname;
const DENO_CONFIG = new URL("../../deno.json", import.meta.url).pathname;

async function escape(command: string, action: string) {
  const ctx = { paths: { ...FHS_PATHS, configDir: CONFIG }, notifySocket: "/run/systemd/notify" };
  const union = unionPermissions(ctx);
  // The fixture itself must be importable: allow reading the source tree.
  const flags = denoFlags({
    ...union,
    read: [...union.read, new URL("../..", import.meta.url).pathname],
  });
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--config", DENO_CONFIG, ...flags, FIXTURE, command, CONFIG, action],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  const out = await child.output();
  clearTimeout(timer);
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

Deno.test("permission table: every subcommand has a set, the union lists no blanket grant", () => {
  const ctx = { paths: FHS_PATHS, notifySocket: "/run/systemd/notify" };
  for (const c of SUBCOMMANDS) assert.ok(permissionsFor(c, ctx), c);
  const union: PermissionSet = unionPermissions(ctx);
  for (const flag of denoFlags(union)) {
    assert.match(flag, /^--no-prompt$|^--allow-net$|^--allow-[a-z]+=./, flag);
  }
  assert.deepEqual(permissionsFor("monitor", ctx).net, [], "the monitor opens no socket");
  for (const tool of union.run) {
    assert.ok(tool.startsWith("/"), `run entries are absolute: ${tool}`);
  }
  assert.deepEqual(permissionsFor("validate", ctx).run, [], "validate runs nothing");
  assert.deepEqual(permissionsFor("lease-hook", ctx).net, [], "lease-hook needs no network");
  assert.ok(permissionsFor("startup", ctx).run.includes(TOOLS.nft));
  assert.ok(
    !permissionsFor("startup", ctx).run.includes(TOOLS.qemuImg),
    "the root broker makes no disk file (prepare does, as the service user)",
  );
  assert.deepEqual(
    permissionsFor("prepare", ctx).write.sort(),
    [FHS_PATHS.logsDir, FHS_PATHS.stateDir].sort(),
  );
  for (const tool of [TOOLS.dnsmasq, TOOLS.qemuX86, TOOLS.qemuImg]) {
    assert.ok(!permissionsFor("run", ctx).run.includes(tool), `the manager never runs ${tool}`);
  }
  assert.deepEqual(permissionsFor("powerdown", ctx).run, [], "powerdown runs nothing");
});

Deno.test("narrowTo() keeps what the subcommand needs", async () => {
  const r = await escape("validate", "none");
  assert.equal(r.stdout.trim(), "allowed", r.stderr);
  assert.equal(r.code, 0);
});

Deno.test("a subcommand that steps outside its set fails with a clear error, not a prompt", async (t) => {
  const cases: [string, string, RegExp][] = [
    ["validate", "run-ip", /Requires run access to "\/usr\/sbin\/ip"/],
    ["validate", "read-runtime", /Requires read access to "\/run\/aos-unit"/],
    ["plan", "write-config", /Requires write access/],
    ["validate", "env", /Requires env access to "DBUS_SYSTEM_BUS_ADDRESS"/],
    ["plan", "connect", /Requires net access to "127.0.0.1:9"/],
    ["lease-hook", "connect", /Requires net access to "127.0.0.1:9"/],
  ];
  for (const [command, action, message] of cases) {
    await t.step(`${command} ${action}`, async () => {
      const r = await escape(command, action);
      assert.equal(r.code, 1, r.stderr);
      assert.match(
        r.stderr,
        new RegExp(
          `^aos-unit ${command}: internal error: this subcommand stepped outside its permissions`,
        ),
      );
      assert.match(r.stderr, message);
    });
  }
});

Deno.test("the packaged launcher starts each subcommand with exactly its own set", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--allow-read", "packaging/deno_flags.ts", "launcher"],
    stdout: "piped",
  }).output();
  const launcher = new TextDecoder().decode(out.stdout);
  // The default unit's grants (a command with a variant for a named unit has them after "else").
  const line = (command: string) => {
    const l = launcher.split("\n").find((l) => l.startsWith(`${command}) `)) ?? "";
    return l.includes("; else perms=") ? l.slice(l.indexOf("; else perms=")) : l;
  };
  // No network at all where the table has none, the bus socket by its path where that is all.
  assert.doesNotMatch(line("validate"), /--allow-net/);
  assert.doesNotMatch(line("lease-hook"), /--allow-net/);
  assert.doesNotMatch(line("monitor"), /--allow-net/);
  for (const command of ["status", "startup", "failed", "doctor", "reset"]) {
    assert.match(line(command), /--allow-net=unix:\/run\/dbus\/system_bus_socket( |,|')/, command);
    assert.doesNotMatch(line(command), /--allow-net /, `${command} has no unscoped network`);
  }
  // Unscoped only where sockets named after the configuration or leased addresses are reached.
  for (const command of ["run", "cleanup"]) {
    assert.match(line(command), /--allow-net /, command);
  }
  assert.match(line("lease-hook"), /--allow-write=\/var\/lib\/aos-unit\/dhcp /);
  assert.match(launcher, /--v8-flags=--max-semi-space-size=1,--lite-mode/);
  assert.match(
    launcher,
    /^cache=--no-code-cache; DENO_DIR=\/run\/aos-unit-root\/deno;/m,
    "no code cache, caches root's only",
  );
  assert.doesNotMatch(launcher, /CACHE_DIRECTORY/, "no cache the service user writes");
});

Deno.test("the launcher gives console and powerdown their one node's socket, and only for a node name", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--allow-read", "packaging/deno_flags.ts", "launcher"],
    stdout: "piped",
  }).output();
  // The generated script, with deno replaced by a printer of the flags it would get.
  const script = new TextDecoder().decode(out.stdout).replace(
    /^exec \/usr\/lib\/aos-unit\/deno run .*$/m,
    'printf "%s\\n" $perms',
  );
  const flagsWith = async (env: Record<string, string>, ...args: string[]) => {
    const r = await new Deno.Command("sh", {
      args: ["-c", script, "aos-unit", ...args],
      env: { AOS_UNIT_NAME: "", ...env },
    }).output();
    assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
    return new TextDecoder().decode(r.stdout).trim().split("\n");
  };
  const flags = (...args: string[]) => flagsWith({}, ...args);
  const net = (f: string[]) => f.filter((x) => x.startsWith("--allow-net"));
  assert.deepEqual(net(await flags("powerdown", "main", "--timeout", "60")), [
    "--allow-net=unix:/run/aos-unit/nodes/main/qmp",
  ]);
  assert.deepEqual(net(await flags("powerdown", "--timeout", "5", "node-2")), [
    "--allow-net=unix:/run/aos-unit/nodes/node-2/qmp",
  ]);
  assert.deepEqual(net(await flags("console", "main")), [
    "--allow-net=unix:/run/aos-unit/main.serial,unix:/run/aos-unit/nodes/main/serial",
  ]);
  // dash ends the whole script on a shift past the end: these must still reach deno.
  assert.ok((await flags()).includes("--no-prompt"), "no arguments at all");
  assert.deepEqual(net(await flags("powerdown", "--timeout")), [], "a dangling option");
  assert.deepEqual(net(await flags("powerdown", "main", "--timeout")), [
    "--allow-net=unix:/run/aos-unit/nodes/main/qmp",
  ]);
  assert.deepEqual(net(await flags("console", "--", "main")), [
    "--allow-net=unix:/run/aos-unit/main.serial,unix:/run/aos-unit/nodes/main/serial",
  ]);
  // A named unit's node: --unit in any place, or AOS_UNIT_NAME (its node units set it).
  const lab1 = ["--allow-net=unix:/run/aos-units/lab1/nodes/main/qmp"];
  assert.deepEqual(net(await flags("powerdown", "--unit", "lab1", "main")), lab1);
  assert.deepEqual(net(await flags("powerdown", "main", "-u", "lab1", "--timeout", "5")), lab1);
  assert.deepEqual(net(await flags("powerdown", "--unit=lab1", "main")), lab1);
  assert.deepEqual(net(await flagsWith({ AOS_UNIT_NAME: "lab1" }, "powerdown", "main")), lab1);
  // Not a unit name: the default unit's grants (the command refuses the name with exit 2).
  for (const bad of ["Lab1", "../x", "-lab", "a".repeat(21), "x --allow-all"]) {
    const f = await flags("powerdown", "main", "--unit", bad);
    assert.deepEqual(net(f), ["--allow-net=unix:/run/aos-unit/nodes/main/qmp"], bad);
    assert.ok(!f.includes("--allow-all"), bad);
  }
  // aos-unit-vm-failed@UNIT_NODE runs `failed UNIT_NODE` without the unit's environment.
  const writes0 = (f: string[]) => f.filter((x) => x.startsWith("--allow-write"));
  assert.match(writes0(await flags("failed", "lab1_main", "--final")).join(" "), /aos-units\/lab1/);
  assert.doesNotMatch(writes0(await flags("failed", "main", "--final")).join(" "), /aos-units/);
  // The lease hook's unit comes from its sidecar's environment, never from dnsmasq's
  // arguments (a client's host name is one of them).
  const writes = (f: string[]) => f.filter((x) => x.startsWith("--allow-write"));
  assert.deepEqual(writes(await flagsWith({ AOS_UNIT_NAME: "lab1" }, "lease-hook", "add")), [
    "--allow-write=/var/lib/aos-units/lab1/dhcp",
  ]);
  assert.deepEqual(
    writes(await flags("lease-hook", "add", "52:54:00:00:00:01", "10.0.0.2", "--unit=lab1")),
    ["--allow-write=/var/lib/aos-unit/dhcp"],
  );
  // Not a node name: no socket at all (the command refuses the name with exit 2), and
  // nothing in the operand reaches the flags.
  for (const bad of ["x --allow-all", "../dnsmasq", "-main", "main-", "a".repeat(64), ""]) {
    const f = await flags("powerdown", bad);
    assert.deepEqual(net(f), [], bad);
    assert.ok(!f.includes("--allow-all"), bad);
  }
});
