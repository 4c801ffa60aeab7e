/** sd_notify(3) for Type=notify: READY=1, STATUS=..., STOPPING=1. */

export interface Notifier {
  send(state: string): Promise<void>;
  close(): void;
}

/**
 * A notifier for $NOTIFY_SOCKET, or a no-op when not started by systemd.
 * @param ownSocket a path of our own to send from (Deno needs a bound datagram socket)
 */
export function createNotifier(notifySocket: string | undefined, ownSocket: string): Notifier {
  if (!notifySocket || notifySocket.startsWith("@")) {
    return { send: () => Promise.resolve(), close: () => {} };
  }
  try {
    Deno.removeSync(ownSocket);
  } catch { /* absent */ }
  // deno-lint-ignore no-explicit-any
  const listen = (Deno as any).listenDatagram as (
    o: { transport: "unixpacket"; path: string },
  ) => Deno.DatagramConn;
  const conn = listen({ transport: "unixpacket", path: ownSocket });
  const encoder = new TextEncoder();
  return {
    async send(state: string) {
      await conn.send(
        encoder.encode(state),
        { transport: "unixpacket", path: notifySocket } as Deno.UnixAddr,
      );
    },
    close() {
      try {
        conn.close();
        Deno.removeSync(ownSocket);
      } catch { /* gone */ }
    },
  };
}
