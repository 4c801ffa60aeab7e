/**
 * vm-failures.log: one JSON object per line per incident (JSON Lines), so
 * `jq` reads it and `aos-unit status` shows the latest per node.
 */

import { rethrowAccessErrors } from "../base/errors.ts";
import { openAppend, openRegular, UnsafeFileError } from "../host/safe_file.ts";
import { failureLogPath } from "../plan/layout.ts";

export interface FailureRecord {
  time: string;
  node: string;
  unit: string;
  /** systemd's $SERVICE_RESULT (exit-code, signal, core-dump, timeout, ...). */
  result: string;
  exit_code: string | null;
  exit_status: string | null;
  restarts: number | null;
  /** True when systemd gave up (start limit hit) and the node stays failed. */
  final: boolean;
  journal: string[];
  serial_tail: string[];
}

function appendLines(path: string, records: FailureRecord[]): void {
  if (records.length === 0) return;
  // Never through a link, never into a FIFO (safe_file.ts).
  const file = openAppend(path);
  try {
    file.append(new TextEncoder().encode(records.map((r) => JSON.stringify(r) + "\n").join("")));
  } finally {
    file.close();
  }
}

/** Appends to vm-failures.log, which only processes outside the nodes' sandboxes write. */
export function appendFailure(logsDir: string, record: FailureRecord): void {
  appendLines(failureLogPath(logsDir), [record]);
}

/**
 * The spool the manager made for a node (prepare), opened: never created here, since the
 * node cannot create files in its directory; a link or a second name is refused as
 * everywhere else. Nobody locks it: a node holding a lock would stall the manager.
 * @returns undefined when there is no spool
 */
function openSpool(spool: string, how: "append" | "read"): Deno.FsFile | undefined {
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(spool, how === "append" ? { append: true } : { read: true, write: true });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  try {
    const st = file.statSync();
    const named = Deno.lstatSync(spool);
    if (!st.isFile || named.isSymlink || st.ino !== named.ino || st.dev !== named.dev) {
      throw new UnsafeFileError(`Refusing ${spool}: not the regular file it names`);
    }
    if ((st.nlink ?? 1) > 1) {
      throw new UnsafeFileError(`Refusing ${spool}: it has ${st.nlink} names`);
    }
    return file;
  } catch (error) {
    file.close();
    throw error;
  }
}

/**
 * A crash record from inside a node's sandbox goes to the node's own spool: the shared
 * failure log is not even visible there. collectSpooled() moves it on. One write per
 * record (O_APPEND): it lands whole at the end.
 */
export function spoolFailure(spool: string, record: FailureRecord): void {
  const file = openSpool(spool, "append");
  // A unit made before spools were made for nodes (same uid as the directory): made here.
  if (!file) return appendLines(spool, [record]);
  try {
    const bytes = new TextEncoder().encode(JSON.stringify(record) + "\n");
    let done = 0;
    while (done < bytes.length) done += file.writeSync(bytes.subarray(done));
  } finally {
    file.close();
  }
}

/** Records taken from one spool at a time (the newest). */
const MAX_SPOOLED = 5;
/** How much of a spool is read: far more than a handful of crash records. */
const SPOOL_BYTES = 64 * 1024;
const SHORT = 64;
const LINE = 1024;

const text = (v: unknown, max: number): string | null =>
  typeof v === "string" ? v.slice(0, max) : null;

/**
 * A spooled record as the node's sandbox wrote it, rebuilt from the fields a crash record
 * has, each bounded: whatever a broken-out QEMU puts there, it names only its own node.
 */
function fromSpool(line: string, node: string, unit: string): FailureRecord | undefined {
  let r: Record<string, unknown>;
  try {
    r = JSON.parse(line);
  } catch {
    return undefined; // a torn line
  }
  if (typeof r !== "object" || r === null) return undefined;
  const tail = Array.isArray(r.serial_tail) ? r.serial_tail : [];
  return {
    time: text(r.time, SHORT) ?? new Date().toISOString(),
    node,
    unit,
    result: text(r.result, SHORT) ?? "unknown",
    exit_code: text(r.exit_code, SHORT),
    exit_status: text(r.exit_status, SHORT),
    restarts: null,
    final: false,
    journal: [],
    serial_tail: tail.slice(-30).map((l) => text(l, LINE) ?? ""),
  };
}

/** Bytes [from, to) of an open file. */
function readRange(file: Deno.FsFile, from: number, to: number): Uint8Array {
  file.seekSync(from, Deno.SeekMode.Start);
  const buffer = new Uint8Array(Math.max(0, to - from));
  let done = 0;
  while (done < buffer.length) {
    const n = file.readSync(buffer.subarray(done));
    if (n === null || n === 0) break;
    done += n;
  }
  return buffer.subarray(0, done);
}

/** Bounded, rebuilt records from a spool's text (see fromSpool). */
function spooled(text: string, node: string, unit: string): FailureRecord[] {
  // A node crashes at most a few times a pass (systemd's start limit): more is a flood
  // that would push every other node's records out of the bounded log.
  return text.split("\n").filter((l) => l.trim()).map((l) => fromSpool(l, node, unit))
    .filter((r): r is FailureRecord => r !== undefined).slice(-MAX_SPOOLED);
}

/** A spool larger than this is emptied once read (a few dozen crash records). */
const SPOOL_EMPTY_AT = 64 * 1024;

/**
 * How far the collectors have read a node's spool: a file of the service user's (0600, in
 * a directory the node cannot write), locked while one of them (the manager, the final
 * handler) takes records. The node can neither read, change nor lock it.
 */
function readMark(spool: string): string {
  return `${spool}.read`;
}

/**
 * Moves a node's new spooled crash records into vm-failures.log (the manager, every pass,
 * and the final handler before its own record): what lies past the read mark, up to its
 * last complete line; then the mark moves on. A pass that dies midway repeats records
 * rather than losing them. A flood is skipped to its last SPOOL_BYTES, and a spool past
 * SPOOL_EMPTY_AT is emptied once read.
 * @returns how many records moved
 */
export function collectSpooled(spool: string, logsDir: string, node: string, unit: string): number {
  const moved = collectLegacy(spool, logsDir, node, unit);
  try {
    Deno.lstatSync(spool);
  } catch {
    return moved; // not made yet
  }
  const mark = Deno.openSync(readMark(spool), {
    read: true,
    write: true,
    create: true,
    mode: 0o600,
  });
  try {
    mark.lockSync(true);
    const file = openSpool(spool, "read");
    if (!file) return moved;
    try {
      const size = file.statSync().size;
      const recorded = Number(new TextDecoder().decode(readRange(mark, 0, 32)).trim()) || 0;
      // Emptied or replaced since: from its start.
      let from = recorded > size ? 0 : recorded;
      const skipped = size - from > SPOOL_BYTES;
      if (skipped) from = size - SPOOL_BYTES;
      let bytes = readRange(file, from, size);
      // Complete lines only (in bytes: a cut may fall inside a character).
      bytes = bytes.subarray(0, bytes.lastIndexOf(0x0a) + 1);
      const next = from + bytes.length;
      if (skipped) bytes = bytes.subarray(bytes.indexOf(0x0a) + 1);
      const text = new TextDecoder().decode(bytes);
      const records = spooled(text, node, unit);
      appendLines(failureLogPath(logsDir), records);
      let at = next;
      // Past the cap it is emptied even mid-line (only a flood leaves a line unfinished).
      if (size > SPOOL_EMPTY_AT) {
        file.truncateSync(0);
        at = 0;
      }
      if (at !== recorded) {
        mark.truncateSync(0);
        mark.seekSync(0, Deno.SeekMode.Start);
        mark.writeSync(new TextEncoder().encode(`${at}\n`));
      }
      return moved + records.length;
    } finally {
      file.close();
    }
  } finally {
    mark.close();
  }
}

/** A spool an older release was moving when it stopped (renamed to FILE.collecting). */
function collectLegacy(spool: string, logsDir: string, node: string, unit: string): number {
  const taking = `${spool}.collecting`;
  try {
    Deno.lstatSync(taking);
  } catch {
    return 0;
  }
  let text = "";
  try {
    text = readTail(taking, SPOOL_BYTES);
  } catch { /* a link or a FIFO planted there: dropped */ }
  const records = spooled(text, node, unit);
  appendLines(failureLogPath(logsDir), records);
  Deno.removeSync(taking, { recursive: true });
  return records.length;
}

/**
 * The last record of each node (of those `pick` accepts: e.g. crash records,
 * which carry the exit status, and not the final one).
 */
export function lastFailures(
  logsDir: string,
  pick: (r: FailureRecord) => boolean = () => true,
): Map<string, FailureRecord> {
  const out = new Map<string, FailureRecord>();
  let text = "";
  try {
    // Only the end: the log is bounded, and the newest records are what counts.
    text = readTail(failureLogPath(logsDir), TAIL_BYTES);
  } catch (error) {
    rethrowAccessErrors(error, failureLogPath(logsDir));
    return out;
  }
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    try {
      const r = JSON.parse(line) as FailureRecord;
      if (pick(r)) out.set(r.node, r);
    } catch { /* a torn line */ }
  }
  return out;
}

/** How much of vm-failures.log `status` reads: far more than the last record of each node. */
const TAIL_BYTES = 256 * 1024;

/**
 * The last `maxBytes` of a file, from the first complete line on.
 * @throws when the file cannot be read
 */
export function readTail(path: string, maxBytes: number): string {
  // Never through a link: the forensic handler reads with the systemd-journal group, and a
  // serial log replaced by a link to the journal must not end up in a record.
  const file = openRegular(path);
  try {
    const start = Math.max(0, file.size - maxBytes);
    const text = new TextDecoder().decode(file.read(start, file.size - start));
    return start > 0 ? text.slice(text.indexOf("\n") + 1) : text;
  } finally {
    file.close();
  }
}

/** The last `n` lines of a text file (reads only its end); none when it cannot be read. */
export function tailLines(path: string, n: number, maxBytes = 64 * 1024): string[] {
  try {
    const lines = readTail(path, maxBytes).replaceAll("\r", "").split("\n");
    while (lines.length > 0 && lines.at(-1) === "") lines.pop();
    return lines.slice(-n);
  } catch {
    return [];
  }
}
