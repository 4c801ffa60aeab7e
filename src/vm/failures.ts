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

export function appendFailure(logsDir: string, record: FailureRecord): void {
  // Written by root as well (a node's ExecStopPost=+): never through a link.
  const file = openAppend(failureLogPath(logsDir));
  try {
    file.append(new TextEncoder().encode(JSON.stringify(record) + "\n"));
  } finally {
    file.close();
  }
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
