/**
 * vm-failures.log: one JSON object per line per incident (JSON Lines), so
 * `jq` reads it and `aos-unit status` shows the latest per node.
 */

import { rethrowAccessErrors } from "../base/errors.ts";
import { openAppend, openRegular } from "../host/safe_file.ts";
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
 * A crash record from inside a node's sandbox goes to the node's own directory: the
 * shared failure log is not even visible there. collectSpooled() moves it on.
 */
export function spoolFailure(spool: string, record: FailureRecord): void {
  appendLines(spool, [record]);
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

/**
 * Moves a node's spooled crash records into vm-failures.log (the manager, every pass, and
 * the final handler before its own record). The spool is renamed first, so a record the
 * node writes meanwhile starts a new spool; a pass that died midway is finished next time.
 * @returns how many records moved
 */
export function collectSpooled(spool: string, logsDir: string, node: string, unit: string): number {
  const taking = `${spool}.collecting`;
  try {
    // A directory (or anything but a file) planted there would stop every collection.
    if (!Deno.lstatSync(taking).isFile) Deno.removeSync(taking, { recursive: true });
  } catch { /* not there */ }
  try {
    Deno.lstatSync(taking);
  } catch {
    try {
      Deno.renameSync(spool, taking);
    } catch {
      return 0; // nothing spooled
    }
  }
  let lines: string[] = [];
  try {
    lines = readTail(taking, SPOOL_BYTES).split("\n");
  } catch { /* a link or a FIFO planted there: dropped below */ }
  // A node crashes at most a few times a pass (systemd's start limit): more is a flood
  // that would push every other node's records out of the bounded log.
  const records = lines.filter((l) => l.trim()).map((l) => fromSpool(l, node, unit))
    .filter((r): r is FailureRecord => r !== undefined).slice(-MAX_SPOOLED);
  appendLines(failureLogPath(logsDir), records);
  Deno.removeSync(taking);
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
