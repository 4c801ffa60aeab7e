/**
 * One DNS question over UDP, for probes from inside a test namespace:
 *   deno run --unstable-net -A tests/lib/dns_probe.ts SERVER PORT NAME [TIMEOUT_MS]
 * Prints "answer IP" (the first A record), "empty" (an answer without one) or
 * "timeout"; exit code 0 in every case. (busybox nslookup cannot set a port.)
 */

export function query(name: string, id = 0x4242): Uint8Array {
  const labels = name.split(".").flatMap((l) => [l.length, ...new TextEncoder().encode(l)]);
  return new Uint8Array([
    id >> 8,
    id & 0xff,
    0x01,
    0x00,
    0,
    1,
    0,
    0,
    0,
    0,
    0,
    0, // header: RD, one question
    ...labels,
    0,
    0,
    1,
    0,
    1, // QTYPE A, QCLASS IN
  ]);
}

/** The first A record of a response, or undefined. */
export function firstA(msg: Uint8Array): string | undefined {
  const answers = (msg[6]! << 8) | msg[7]!;
  let i = 12;
  while (msg[i] !== 0) i += msg[i]! + 1; // question name
  i += 5;
  for (let a = 0; a < answers; a++) {
    i += (msg[i]! & 0xc0) === 0xc0 ? 2 : (() => {
      let j = i;
      while (msg[j] !== 0) j += msg[j]! + 1;
      return j + 1 - i;
    })();
    const type = (msg[i]! << 8) | msg[i + 1]!;
    const len = (msg[i + 8]! << 8) | msg[i + 9]!;
    if (type === 1 && len === 4) return [...msg.subarray(i + 10, i + 14)].join(".");
    i += 10 + len;
  }
  return undefined;
}

if (import.meta.main) {
  const [server, port, name, timeout] = Deno.args;
  const conn = Deno.listenDatagram({ transport: "udp", hostname: "0.0.0.0", port: 0 });
  await conn.send(query(name!), { transport: "udp", hostname: server!, port: Number(port) });
  const reply = await Promise.race([
    conn.receive().then(([data]) => data),
    new Promise<undefined>((r) => setTimeout(() => r(undefined), Number(timeout ?? 2000))),
  ]);
  const ip = reply ? firstA(reply) : undefined;
  console.log(reply === undefined ? "timeout" : ip ? `answer ${ip}` : "empty");
  conn.close();
  Deno.exit(0);
}
