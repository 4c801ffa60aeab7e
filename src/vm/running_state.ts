/**
 * A node's running state (RAM and devices) saved to a file and loaded back
 * into a new QEMU: QEMU's migration stream over a unix socket that this
 * process listens on (save) or connects to (load), copied to or from the file.
 *
 * Why a socket of ours: the nodes run with `-sandbox spawn=deny`, so QEMU may
 * not start `exec:` helpers; `file:` needs QEMU 8.2 and `mapped-ram` 9.0,
 * neither on bookworm's 7.2; `fd:` needs passing a descriptor over QMP, which
 * Deno cannot do. A unix socket works on every release, and the file is made
 * and read by the service user, never by the node.
 *
 * The guest is paused when its state is saved (the caller pauses every node at
 * one instant, which is what makes the cut consistent across nodes): QEMU then
 * sends each page once, and its zero pages as a few bytes each. The file is
 * flushed once the guests run again. A load leaves the guest paused (its QEMU
 * runs with -S), for the caller to resume every node at once.
 */

import { RuntimeError } from "../base/errors.ts";
import { QmpError, type QmpSession } from "./qmp.ts";

/** A local copy: QEMU's default cap (128 MiB/s in 7.2) would make a save take seconds. */
const BANDWIDTH = 8 * 1024 ** 3;
/** How often the migration's status is asked for. */
const POLL_MS = 20;

/**
 * A guest's state is its RAM written once to a local file, or read back (hundreds of MiB a
 * second): the guests stay paused meanwhile, so a node that never finishes its stream fails
 * the save or the load in bounded time, never more than this.
 */
export function stateTimeoutMs(memMiB: number): number {
  return 30_000 + memMiB * 20;
}

/** What a save wrote. */
export interface SavedState {
  bytes: number;
  ms: number;
}

/** Where the stream goes: a socket path QEMU can reach, and the file kept. */
export interface StateFiles {
  socket: string;
  file: string;
}

interface MigrationInfo {
  status?: string;
  "error-desc"?: string;
}

/** Closes what a finished stream may have closed already. */
function closeQuietly(resource: { close(): void }): void {
  try {
    resource.close();
  } catch { /* closed with its stream */ }
}

function removeSocket(path: string): void {
  try {
    Deno.removeSync(path);
  } catch { /* not there */ }
}

/** Waits until QEMU's migration leaves the states of a migration under way. */
async function migrationEnd(session: QmpSession, deadline: number): Promise<MigrationInfo> {
  while (true) {
    const info = await session.execute("query-migrate") as MigrationInfo;
    if (!UNDER_WAY.includes(info.status ?? "")) return info;
    if (performance.now() > deadline) {
      await session.execute("migrate_cancel").catch(() => {});
      throw new QmpError(`the migration did not end in time (${info.status})`);
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/**
 * Copies at most `limit` bytes from the connection into the file.
 * @returns the bytes written
 * @throws {RuntimeError} past the limit (a QEMU that never ends its stream)
 */
async function receive(conn: Deno.Conn, file: Deno.FsFile, limit: number): Promise<number> {
  let bytes = 0;
  for await (const chunk of conn.readable) {
    bytes += chunk.length;
    if (bytes > limit) throw new RuntimeError(`the state stream is larger than ${limit} bytes`);
    let done = 0;
    while (done < chunk.length) done += await file.write(chunk.subarray(done));
  }
  return bytes;
}

/** The states of a migration that is under way (pre-switchover: paused, waiting for us). */
const UNDER_WAY = ["setup", "active", "device", "wait-unplug", "pre-switchover"];

/**
 * One node's migration stream into a file, from its start to its end, its guest paused
 * (each page is sent once). A stream that does not finish is cancelled, and waited for
 * until QEMU's migration is over: only then does QEMU take `cont`.
 */
export class StateSave {
  #ok = false;
  #conn: Deno.Conn | undefined;

  private constructor(
    private readonly session: QmpSession,
    private readonly files: StateFiles,
    private readonly listener: Deno.Listener,
    private readonly file: Deno.FsFile,
    private readonly deadline: number,
    private readonly started: number,
    private readonly limit: number,
  ) {}

  /** The bytes QEMU sent, once it closed the stream (rejects on a failed copy). */
  #copied: Promise<number> = Promise.resolve(0);

  /**
   * Starts QEMU's migration into `files.file` (made new, 0640).
   * @param limit the most bytes the stream may take (the guest's RAM and its devices)
   */
  static async start(
    session: QmpSession,
    files: StateFiles,
    o: { limit: number; timeoutMs: number },
  ): Promise<StateSave> {
    const started = performance.now();
    removeSocket(files.socket);
    const listener = Deno.listen({ transport: "unix", path: files.socket });
    // The node's QEMU runs as a uid of its own in the service user's group.
    Deno.chmodSync(files.socket, 0o660);
    let file: Deno.FsFile | undefined;
    try {
      file = await Deno.open(files.file, { write: true, createNew: true, mode: 0o640 });
      const save = new StateSave(
        session,
        files,
        listener,
        file,
        started + o.timeoutMs,
        started,
        o.limit,
      );
      save.#copied = save.#copy();
      save.#copied.catch(() => {}); // awaited by finish()
      // No pause of its own at the switchover (left set by an older release's save).
      await session.execute("migrate-set-capabilities", {
        capabilities: [{ capability: "pause-before-switchover", state: false }],
      });
      await session.execute("migrate-set-parameters", { "max-bandwidth": BANDWIDTH });
      await session.execute("migrate", { uri: `unix:${files.socket}` });
      return save;
    } catch (error) {
      if (file) closeQuietly(file);
      listener.close();
      removeSocket(files.socket);
      if (file) await Deno.remove(files.file).catch(() => {});
      throw error;
    }
  }

  /**
   * QEMU's stream into the file. QEMU closes it when it is done: the copy ends with it. The
   * connection is closed at the deadline whatever the node's QEMU says or sends: it cannot
   * keep the save (and every guest paused for it) waiting.
   */
  async #copy(): Promise<number> {
    const accepting = this.listener.accept();
    accepting.catch(() => {}); // a migrate refused never connects: the close ends the wait
    const conn = await within(accepting, this.deadline, "QEMU did not connect");
    this.#conn = conn;
    const cut = setTimeout(
      () => closeQuietly(conn),
      Math.max(0, this.deadline - performance.now()),
    );
    try {
      return await receive(conn, this.file, this.limit);
    } finally {
      clearTimeout(cut);
      closeQuietly(conn);
    }
  }

  /**
   * Lets the stream end and keeps the file; or cancels it and removes the file, when QEMU's
   * migration or the copy failed.
   * @throws {QmpError} when QEMU's migration fails
   */
  async finish(): Promise<SavedState> {
    try {
      // A migration that ends without completing closes the stream: the copy does not
      // wait for a QEMU that will never send. Both are waited for, so the session is never
      // used by two commands at once.
      const ending = migrationEnd(this.session, this.deadline).then((info) => {
        if (info.status !== "completed") this.#stopCopy();
        return info;
      });
      const [copied, ended] = await Promise.allSettled([this.#copied, ending]);
      if (ended.status === "rejected") throw ended.reason;
      const info = ended.value;
      if (info.status !== "completed") {
        throw new QmpError(`the state was not saved: ${info["error-desc"] ?? info.status}`);
      }
      if (copied.status === "rejected") throw copied.reason;
      // Not flushed here: the guests wait for this; syncState() once they run again.
      this.#ok = true;
      return { bytes: copied.value, ms: Math.round(performance.now() - this.started) };
    } finally {
      if (!this.#ok) await this.#cancelMigration();
      await this.#close();
    }
  }

  /** Stops the migration and waits until it is over (a guest it paused resumes), then cleans up. */
  async cancel(): Promise<void> {
    await this.#cancelMigration();
    await this.#close();
  }

  async #cancelMigration(): Promise<void> {
    this.#stopCopy();
    await cancelMigration(this.session);
  }

  #stopCopy(): void {
    closeQuietly(this.listener);
    if (this.#conn) closeQuietly(this.#conn);
  }

  async #close(): Promise<void> {
    this.#stopCopy();
    closeQuietly(this.file);
    removeSocket(this.files.socket);
    if (!this.#ok) await Deno.remove(this.files.file).catch(() => {});
  }
}

/** How long a cancelled migration may take to be over. */
const CANCEL_MS = 10_000;

/**
 * Cancels the node's migration, if one is under way, and waits until it is over: only then
 * does QEMU take `cont` (a guest frozen at its switchover refuses it).
 * @returns whether one was under way
 */
export async function cancelMigration(session: QmpSession): Promise<boolean> {
  const info = await session.execute("query-migrate").catch(() => ({})) as MigrationInfo;
  if (!UNDER_WAY.includes(info.status ?? "")) return false;
  await session.execute("migrate_cancel").catch(() => {});
  const deadline = performance.now() + CANCEL_MS;
  while (performance.now() < deadline) {
    const now = await session.execute("query-migrate").catch(() => ({})) as MigrationInfo;
    if (![...UNDER_WAY, "cancelling"].includes(now.status ?? "")) break;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  return true;
}

/**
 * Saves a paused guest's RAM and device state into `files.file` (made new, 0640).
 * @param limit the most bytes the stream may take (the guest's RAM and its devices)
 * @throws {QmpError} when QEMU's migration fails; the file is then removed
 */
export async function saveState(
  session: QmpSession,
  files: StateFiles,
  limit: number,
  timeoutMs: number,
): Promise<SavedState> {
  const save = await StateSave.start(session, files, { limit, timeoutMs });
  const saved = await save.finish();
  syncState(files.file);
  return saved;
}

/** A saved state on disk for good (after its guest runs again: it may take a while). */
export function syncState(path: string): void {
  const file = Deno.openSync(path, { read: true });
  try {
    file.syncSync();
  } finally {
    file.close();
  }
}

/**
 * Loads a saved state into a QEMU started with `-incoming defer`: it listens on
 * `files.socket`, and the file is streamed to it. The guest is then paused.
 * @throws {QmpError} when QEMU refuses the state (it exits: a failed load is fatal to it)
 */
export async function loadState(
  session: QmpSession,
  files: StateFiles,
  timeoutMs: number,
  /** The uid the socket must belong to: the QEMU's own (a socket planted by another is not). */
  owner?: number,
): Promise<number> {
  const started = performance.now();
  const deadline = started + timeoutMs;
  const status = await session.execute("query-status") as { status?: string };
  if (status.status !== "inmigrate") {
    throw new QmpError(
      `QEMU is not waiting for a state (${status.status}); start it with -incoming defer`,
    );
  }
  removeSocket(files.socket);
  await session.execute("migrate-incoming", { uri: `unix:${files.socket}` });
  const st = Deno.lstatSync(files.socket);
  if (!st.isSocket || (owner !== undefined && st.uid !== owner)) {
    throw new QmpError(`${files.socket} is not the socket QEMU listens on`);
  }
  const file = await Deno.open(files.file, { read: true });
  try {
    const conn = await within(
      Deno.connect({ transport: "unix", path: files.socket }),
      deadline,
      "QEMU did not accept the state",
    );
    // Cut at the deadline whatever QEMU does: a node cannot keep the restore waiting.
    const cut = setTimeout(() => closeQuietly(conn), Math.max(0, deadline - performance.now()));
    try {
      await file.readable.pipeTo(conn.writable, { preventClose: true });
      await conn.closeWrite();
    } finally {
      clearTimeout(cut);
      closeQuietly(conn);
    }
  } finally {
    closeQuietly(file);
  }
  while (true) {
    const now = await session.execute("query-status") as { status?: string };
    if (now.status !== "inmigrate") {
      if (now.status !== "paused" && now.status !== "running") {
        throw new QmpError(`QEMU did not take the state: it is ${now.status}`);
      }
      return Math.round(performance.now() - started);
    }
    if (performance.now() > deadline) throw new QmpError("QEMU did not finish loading the state");
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

async function within<T>(promise: Promise<T>, deadline: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new QmpError(what)),
          Math.max(0, deadline - performance.now()),
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
