import assert from "node:assert/strict";
import { powerdownAndWait, QmpError, qmpExecute, QmpSession } from "./qmp.ts";

/** A QMP server stand-in: greets, answers every command, and on system_powerdown obeys or not. */
function fakeQemu(
  path: string,
  obeys: boolean,
  name = "main",
): { close(): void; powerdowns: () => number } {
  const listener = Deno.listen({ transport: "unix", path });
  let powerdowns = 0;
  const conns: Deno.Conn[] = [];
  (async () => {
    for await (const conn of listener) {
      conns.push(conn);
      (async () => {
        const enc = new TextEncoder();
        await conn.write(enc.encode('{"QMP": {"version": {}, "capabilities": []}}\n'));
        const buf = new Uint8Array(1024);
        let text = "";
        while (true) {
          const n = await conn.read(buf).catch(() => null);
          if (n === null) return;
          text += new TextDecoder().decode(buf.subarray(0, n));
          for (; text.includes("\n"); text = text.slice(text.indexOf("\n") + 1)) {
            const cmd = JSON.parse(text.slice(0, text.indexOf("\n"))).execute;
            // An event before each reply, as QEMU may send one at any time.
            await conn.write(enc.encode('{"event": "RTC_CHANGE", "data": {}}\n')).catch(() => {});
            const reply = cmd === "query-name" ? { return: { name } } : { return: {} };
            await conn.write(enc.encode(JSON.stringify(reply) + "\n")).catch(() => {});
            if (cmd === "system_powerdown") {
              powerdowns++;
              if (obeys) {
                conn.close();
                return;
              }
            }
          }
        }
      })();
    }
  })().catch(() => {});
  return {
    close() {
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      listener.close();
    },
    powerdowns: () => powerdowns,
  };
}

Deno.test("powerdownAndWait(): exited, timeout or unreachable - never a timeout taken for an exit", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const obeying = fakeQemu(`${dir}/obeys`, true);
    // "exited", not "timeout": the answer itself says the wait ended on the exit.
    assert.equal(await powerdownAndWait(`${dir}/obeys`, 5000), "exited");
    obeying.close();

    const deaf = fakeQemu(`${dir}/deaf`, false);
    const t1 = performance.now();
    assert.equal(await powerdownAndWait(`${dir}/deaf`, 1200, 500), "timeout");
    assert.ok(performance.now() - t1 >= 1200, "waited the whole grace");
    assert.ok(deaf.powerdowns() >= 2, "the power button was pressed again");
    assert.deepEqual(await qmpExecute(`${dir}/deaf`, "query-status"), {}, "replies still read");
    deaf.close();

    assert.equal(await powerdownAndWait(`${dir}/none`, 500), "unreachable");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a socket that leads to another node's QEMU: no powerdown sent, no session", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const secondary = fakeQemu(`${dir}/secondary`, true, "secondary");
    // main's socket path, repointed by main's own QEMU (it owns its socket directory).
    Deno.symlinkSync(`${dir}/secondary`, `${dir}/main`);
    assert.equal(await powerdownAndWait(`${dir}/main`, 2000, 500, "main"), "unreachable");
    assert.equal(secondary.powerdowns(), 0, "secondary was not powered down");
    await assert.rejects(() => QmpSession.open(`${dir}/main`, 2000, "main"), QmpError);
    const own = await QmpSession.open(`${dir}/secondary`, 2000, "secondary");
    own.close();
    assert.equal(await powerdownAndWait(`${dir}/secondary`, 2000, 500, "secondary"), "exited");
    secondary.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
