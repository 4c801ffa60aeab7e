/**
 * Runs inside a test bed as an unprivileged user (tier 3 attacks): floods the system bus with
 * forged systemd signals, a JobRemoved "failed" for every job id from FIRST to LAST, over
 * and over, until the file STOP is gone. Prints how many it sent.
 *   deno run -A forge_signals.js FIRST LAST STOP
 */

import { connectSystemBus } from "../../src/systemd/bus.ts";
import { encodeMessage, MessageType } from "../../src/systemd/wire.ts";

const [first, last] = [Number(Deno.args[0]), Number(Deno.args[1])];
const stop = Deno.args[2]!;
const bus = await connectSystemBus();
let serial = 1000;
let sent = 0;
const exists = (path: string) => {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
};
while (exists(stop)) {
  for (let id = first; id <= last; id++) {
    const path = `/org/freedesktop/systemd1/job/${id}`;
    const bytes = encodeMessage({
      type: MessageType.SIGNAL,
      serial: serial++,
      flags: 1,
      path: "/org/freedesktop/systemd1",
      interface: "org.freedesktop.systemd1.Manager",
      member: "JobRemoved",
      signature: "uoss",
      body: [id, path, "aos-node-main.service", "failed"],
    });
    let done = 0;
    while (done < bytes.length) done += await bus.conn.write(bytes.subarray(done));
    sent++;
  }
  await new Promise((r) => setTimeout(r, 5));
}
bus.disconnect();
console.log(sent);
