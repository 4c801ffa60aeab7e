/**
 * The system bus client (src/systemd/bus.ts, wire.ts) against a real dbus-daemon of the
 * test's own, on a socket in a temporary directory: authentication, calls, errors,
 * signals, calls to it, and the daemon going away.
 */

import assert from "node:assert/strict";
import {
  addMatch,
  call,
  connectSystemBus,
  type MessageBus,
  nameHasOwner,
  onDisconnect,
  TIMEOUT_ERROR,
} from "../../src/systemd/bus.ts";
import { encodeMessage, type Message, MessageType } from "../../src/systemd/wire.ts";

const CONFIG = (socket: string) =>
  `<!DOCTYPE busconfig PUBLIC
 "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=${socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
    <allow own="*"/>
  </policy>
</busconfig>
`;

const DBUS = {
  destination: "org.freedesktop.DBus",
  path: "/org/freedesktop/DBus",
  interface: "org.freedesktop.DBus",
};

/**
 * A client that takes `name` and then never reads or answers: calls to it get no reply.
 * @returns its connection, to close
 */
async function silentOwner(socket: string, name: string): Promise<Deno.Conn> {
  const conn = await Deno.connect({ transport: "unix", path: socket });
  const uid = [...String(Deno.uid())].map((c) => c.charCodeAt(0).toString(16)).join("");
  await conn.write(new TextEncoder().encode(`\0AUTH EXTERNAL ${uid}\r\n`));
  const ok = new Uint8Array(256);
  await conn.read(ok);
  assert.match(new TextDecoder().decode(ok), /^OK /);
  await conn.write(new TextEncoder().encode("BEGIN\r\n"));
  for (
    const [serial, member, signature, body] of [
      [1, "Hello", "", []],
      [2, "RequestName", "su", [name, 0]],
    ] as const
  ) {
    await conn.write(encodeMessage({
      type: MessageType.METHOD_CALL,
      serial,
      ...DBUS,
      member,
      signature,
      body: [...body],
    }));
  }
  return conn;
}

async function waitForSocket(path: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      Deno.statSync(path);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  throw new Error(`dbus-daemon made no ${path}`);
}

Deno.test("the bus client against a real dbus-daemon", async (t) => {
  const dir = Deno.makeTempDirSync({ prefix: "aosu-bus-" });
  const socket = `${dir}/bus`;
  Deno.writeTextFileSync(`${dir}/bus.conf`, CONFIG(socket));
  const daemon = new Deno.Command("dbus-daemon", {
    args: [`--config-file=${dir}/bus.conf`, "--nofork", "--nopidfile"],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const buses: MessageBus[] = [];
  try {
    await waitForSocket(socket);
    const a = await connectSystemBus(socket, 3000);
    const b = await connectSystemBus(socket, 3000);
    buses.push(a, b);

    await t.step("calls: a reply's body, typed", async () => {
      const [id] = await call(a, { ...DBUS, member: "GetId" });
      assert.match(String(id), /^[0-9a-f]{32}$/);
      const [names] = await call(a, { ...DBUS, member: "ListNames" }) as [string[]];
      assert.ok(names.includes("org.freedesktop.DBus"));
      assert.equal(await nameHasOwner(a, "org.aosunit.Nobody"), false);
    });

    await t.step("a call nobody answers rejects at its timeout; the bus goes on", async () => {
      const silent = await silentOwner(socket, "org.aosunit.Silent");
      try {
        for (let i = 0; i < 100 && !(await nameHasOwner(a, "org.aosunit.Silent")); i++) {
          await new Promise((r) => setTimeout(r, 10));
        }
        const started = performance.now();
        await assert.rejects(
          call(a, {
            destination: "org.aosunit.Silent",
            path: "/",
            interface: "org.aosunit.X",
            member: "Y",
            timeoutMs: 200,
          }),
          (e: { type?: string }) => e.type === TIMEOUT_ERROR,
        );
        assert.ok(performance.now() - started >= 190);
        const [id] = await call(a, { ...DBUS, member: "GetId" });
        assert.match(String(id), /^[0-9a-f]{32}$/);
      } finally {
        silent.close();
      }
    });

    await t.step("a D-Bus error rejects with its name and text", async () => {
      await assert.rejects(
        call(a, {
          destination: "org.aosunit.Nobody",
          path: "/",
          interface: "org.aosunit.X",
          member: "Y",
        }),
        (e: { type?: string; text?: string }) =>
          e.type === "org.freedesktop.DBus.Error.ServiceUnknown" && /Nobody/.test(e.text ?? ""),
      );
      await assert.rejects(
        call(a, { ...DBUS, member: "NameHasOwner", signature: "u", body: [1] }),
        (e: { type?: string }) => e.type === "org.freedesktop.DBus.Error.InvalidArgs",
      );
    });

    await t.step("signals matched by AddMatch reach on('message')", async () => {
      const seen: Message[] = [];
      a.on("message", (m) => {
        if (m.type === MessageType.SIGNAL && m.member === "NameOwnerChanged") seen.push(m);
      });
      await addMatch(
        a,
        "type='signal',interface='org.freedesktop.DBus',member='NameOwnerChanged'," +
          "arg0='org.aosunit.Test'",
      );
      const [result] = await call(b, {
        ...DBUS,
        member: "RequestName",
        signature: "su",
        body: ["org.aosunit.Test", 0],
      });
      assert.equal(result, 1, "primary owner");
      for (let i = 0; i < 100 && seen.length === 0; i++) {
        await new Promise((r) => setTimeout(r, 10));
      }
      assert.equal(seen.length, 1);
      assert.equal(seen[0]!.body![0], "org.aosunit.Test");
      assert.equal(seen[0]!.body![1], "");
      assert.match(String(seen[0]!.body![2]), /^:\d+\.\d+$/);
      assert.equal(await nameHasOwner(a, "org.aosunit.Test"), true);
    });

    await t.step("a call to a client gets UnknownMethod, not silence", async () => {
      await assert.rejects(
        call(a, {
          destination: "org.aosunit.Test",
          path: "/",
          interface: "org.aosunit.X",
          member: "Y",
          timeoutMs: 2000,
        }),
        (e: { type?: string }) => e.type === "org.freedesktop.DBus.Error.UnknownMethod",
      );
    });

    await t.step("the daemon going away: onDisconnect once, calls fail at once", async () => {
      const why: string[] = [];
      onDisconnect(a, (w) => why.push(w));
      daemon.kill("SIGTERM");
      await daemon.status;
      for (let i = 0; i < 100 && why.length === 0; i++) {
        await new Promise((r) => setTimeout(r, 10));
      }
      assert.equal(why.length, 1, why.join("; "));
      await assert.rejects(call(a, { ...DBUS, member: "GetId" }), /closed/);
    });
  } finally {
    for (const bus of buses) bus.disconnect();
    try {
      daemon.kill("SIGKILL");
    } catch { /* already gone */ }
    await daemon.status;
    await daemon.stderr.cancel();
    Deno.removeSync(dir, { recursive: true });
  }
});
