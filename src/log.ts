/**
 * Logging: logtape with one sink that knows where it writes. Under systemd
 * (JOURNAL_STREAM set) each line carries an sd-daemon priority prefix so
 * journald keeps the level; otherwise readable lines on stderr. Long-running
 * subcommands also append to a file in the logs directory.
 */

import {
  configure,
  getLogger,
  type Logger,
  type LogLevel,
  type LogRecord,
  reset,
} from "@logtape/logtape";
import { type AppendFile, openAppend } from "./host/safe_file.ts";

export type { Logger };

const PRIORITY: Record<LogLevel, number> = {
  trace: 7,
  debug: 7,
  info: 6,
  warning: 4,
  error: 3,
  fatal: 2,
};

function render(record: LogRecord): string {
  return record.message.map((part) =>
    typeof part === "string" ? part : part instanceof Error ? part.message : JSON.stringify(part)
  ).join("");
}

export interface LogOptions {
  /** The subcommand, shown in each line and used as the logger category. */
  command: string;
  /** True under systemd with stderr connected to the journal. */
  journal: boolean;
  /** Append to this file too (long-running subcommands). */
  file?: string | undefined;
  debug?: boolean;
}

/** Sets up logging for one subcommand; returns a function that flushes and closes. */
export async function setupLogging(options: LogOptions): Promise<() => Promise<void>> {
  const encoder = new TextEncoder();
  const stderrSink = (record: LogRecord) => {
    const text = render(record);
    const line = options.journal
      ? `<${PRIORITY[record.level]}>${text}`
      : record.level === "info" || record.level === "debug" || record.level === "trace"
      ? `aos-unit ${options.command}: ${text}`
      : `aos-unit ${options.command}: ${record.level}: ${text}`;
    Deno.stderr.writeSync(encoder.encode(line + "\n"));
  };
  let file: AppendFile | undefined;
  if (options.file) {
    try {
      // The logs directory is the service user's: root (sudo aos-unit monitor) never
      // writes through a link planted there.
      file = openAppend(options.file);
    } catch (error) {
      stderrSink({
        category: ["aos-unit"],
        level: "warning",
        message: [`Cannot open log file ${options.file}: ${(error as Error).message}`],
        rawMessage: "",
        timestamp: Date.now(),
        properties: {},
      });
    }
  }
  const sinks: Record<string, (r: LogRecord) => void> = { stderr: stderrSink };
  if (file) {
    const f = file;
    sinks.file = (record) => {
      const line = `${
        new Date(record.timestamp).toISOString()
      } ${record.level.toUpperCase()} [${options.command}] ${render(record)}\n`;
      f.append(encoder.encode(line));
    };
  }
  await configure({
    reset: true,
    sinks,
    loggers: [
      {
        category: ["aos-unit"],
        sinks: Object.keys(sinks),
        lowestLevel: options.debug ? "debug" : "info",
      },
      { category: ["logtape", "meta"], sinks: [], lowestLevel: "error" },
      // The final error is printed once by the command's error handler; this keeps it in the file too.
      {
        category: FILE_ONLY,
        sinks: file ? ["file"] : [],
        parentSinks: "override",
        lowestLevel: "error",
      },
    ],
  });
  return async () => {
    await reset();
    file?.close();
  };
}

const FILE_ONLY = ["aos-unit-file"];

/** Records a line in the log file only (nothing on stderr). */
export function logToFileOnly(message: string): void {
  getLogger(FILE_ONLY).error(message);
}

/** The logger of one subcommand or module. */
export function logger(...category: string[]): Logger {
  return getLogger(["aos-unit", ...category]);
}
