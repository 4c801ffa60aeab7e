/**
 * runtime.conf: shell-style `KEY="value"` lines, as the existing tool's users
 * write them. Every key is optional.
 */

import type { Diagnostic } from "../base/errors.ts";
import { formatCidr, parseCidr, parseIpv4, type Subnet } from "../base/ipv4.ts";
import { closest } from "./suggest.ts";
import type { RuntimeConfig } from "../base/config_types.ts";

export const RUNTIME_DEFAULTS = {
  DHCP_CIDR: "10.200.1.0/24",
  DNS_ALT_PORT: "5300",
  UPSTREAM_DNS: "127.0.0.53",
  INTERNET_INTERFACE: "",
  ENABLE_KVM: "true",
  ROUTE_DEBOUNCE_MS: "250",
  READY_TIMEOUT_SEC: "300",
  STOP_TIMEOUT_SEC: "60",
  SERIAL_LOG_MAX_KB: "16384",
  FAILURE_LOG_MAX_KB: "4096",
  GUEST_FENCE: "internet",
} as const;

/** What guests may reach besides each other, DHCP and DNS (see aos-unit.conf(5)). */
export const GUEST_FENCES = ["internet", "strict"] as const;

export type RuntimeKey = keyof typeof RUNTIME_DEFAULTS;
export const RUNTIME_KEYS = Object.keys(RUNTIME_DEFAULTS) as RuntimeKey[];

interface Entry {
  value: string;
  line: number;
  column: number;
}

/** Splits the file into KEY -> value entries, reporting lines that are not assignments. */
function lex(file: string, text: string, diagnostics: Diagnostic[]): Map<string, Entry> {
  const entries = new Map<string, Entry>();
  text.split("\n").forEach((raw, index) => {
    const line = index + 1;
    const stripped = raw.replace(/\r$/, "");
    const trimmed = stripped.trimStart();
    if (trimmed === "" || trimmed.startsWith("#")) return;
    const indent = stripped.length - trimmed.length;
    const m = /^(export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(trimmed);
    if (!m || m[2] === undefined || m[3] === undefined) {
      diagnostics.push({
        severity: "error",
        file,
        line,
        column: indent + 1,
        message: `Cannot parse line: expected KEY="value", got "${trimmed}"`,
      });
      return;
    }
    const key = m[2];
    const valueColumn = indent + (m[1]?.length ?? 0) + key.length + 2;
    const value = unquote(m[3]);
    if (value === undefined) {
      diagnostics.push({
        severity: "error",
        file,
        line,
        column: valueColumn,
        message: `Cannot parse value of ${key}: unbalanced quotes or unquoted spaces in ${m[3]}`,
      });
      return;
    }
    const previous = entries.get(key);
    if (previous) {
      diagnostics.push({
        severity: "warning",
        file,
        line,
        column: indent + 1,
        message: `${key} is set again (first set on line ${previous.line}); the last value wins`,
      });
    }
    entries.set(key, { value, line, column: valueColumn });
  });
  return entries;
}

/** `"x"`, `'x'`, `x` or nothing, optionally followed by ` # comment`. No expansion, as in the old tool. */
function unquote(rest: string): string | undefined {
  // As in sh, "#" starts a comment only at the start of a word.
  const m = /^(?:"([^"]*)"|'([^']*)'|([^\s"'#][^\s"']*)|)(?:\s+#.*)?$/.exec(rest.trimEnd());
  if (!m) return undefined;
  return m[1] ?? m[2] ?? m[3] ?? "";
}

const BOOLEANS: Record<string, boolean> = {
  true: true,
  yes: true,
  "1": true,
  on: true,
  false: false,
  no: false,
  "0": false,
  off: false,
};

/** A Linux interface name: 1-15 bytes, no slash, no whitespace, not "." or "..". */
export function isInterfaceName(name: string): boolean {
  return /^[A-Za-z0-9_.:@-]{1,15}$/.test(name) && name !== "." && name !== "..";
}

/**
 * Parses and validates runtime.conf text.
 * @param file the path shown in messages
 * @param text the file's content, or undefined when the file does not exist (defaults apply)
 * @returns the config (defaults where unset or invalid) and every problem found
 */
export function parseRuntimeConf(
  file: string,
  text: string | undefined,
): { config: RuntimeConfig; diagnostics: Diagnostic[] } {
  const diagnostics: Diagnostic[] = [];
  const entries = text === undefined ? new Map<string, Entry>() : lex(file, text, diagnostics);

  for (const [key, entry] of entries) {
    if ((RUNTIME_KEYS as string[]).includes(key)) continue;
    const hint = closest(key, RUNTIME_KEYS);
    diagnostics.push({
      severity: "error",
      file,
      line: entry.line,
      column: 1,
      message: `Unknown key "${key}"${hint ? `; did you mean "${hint}"?` : ""} (known keys: ${
        RUNTIME_KEYS.join(", ")
      })`,
    });
  }

  const get = (key: RuntimeKey): Entry =>
    entries.get(key) ?? { value: RUNTIME_DEFAULTS[key], line: 1, column: 1 };
  const fail = (entry: Entry, message: string) =>
    diagnostics.push({ severity: "error", file, line: entry.line, column: entry.column, message });

  const cidrEntry = get("DHCP_CIDR");
  const parsed = parseCidr(cidrEntry.value);
  let subnet: Subnet = parseCidr(RUNTIME_DEFAULTS.DHCP_CIDR) as Subnet;
  if ("kind" in parsed) {
    if (parsed.kind === "malformed") {
      fail(cidrEntry, `DHCP_CIDR must look like 10.200.1.0/24, got "${cidrEntry.value}"`);
    } else if (parsed.kind === "prefix") {
      fail(cidrEntry, `DHCP_CIDR prefix must be between /8 and /30, got /${parsed.prefix}`);
    } else {
      fail(
        cidrEntry,
        `DHCP_CIDR "${cidrEntry.value}" has host bits set; did you mean "${parsed.network}"?`,
      );
    }
  } else {
    subnet = parsed;
  }

  const integer = (key: RuntimeKey, min: number, max: number, what: string): number => {
    const entry = get(key);
    const fallback = Number(RUNTIME_DEFAULTS[key]);
    if (!/^[0-9]+$/.test(entry.value)) {
      fail(entry, `${key} must be ${what} (${min}-${max}), got "${entry.value}"`);
      return fallback;
    }
    const n = Number(entry.value);
    if (n < min || n > max) {
      fail(entry, `${key} must be ${what} (${min}-${max}), got ${n}`);
      return fallback;
    }
    return n;
  };
  const dnsPort = integer("DNS_ALT_PORT", 1, 65535, "a port number");
  const routeDebounceMs = integer("ROUTE_DEBOUNCE_MS", 0, 60000, "milliseconds");
  const readyTimeoutSec = integer("READY_TIMEOUT_SEC", 1, 86400, "seconds");
  const stopTimeoutSec = integer("STOP_TIMEOUT_SEC", 1, 3600, "seconds");
  const serialLogMaxKb = integer("SERIAL_LOG_MAX_KB", 64, 16777216, "kibibytes");
  const failureLogMaxKb = integer("FAILURE_LOG_MAX_KB", 64, 16777216, "kibibytes");

  const upstreamEntry = get("UPSTREAM_DNS");
  const upstreamDns = upstreamEntry.value;
  if (!isUpstream(upstreamDns)) {
    fail(
      upstreamEntry,
      `UPSTREAM_DNS must be an IP address, optionally with #port (127.0.0.53, 192.0.2.1#5353), got "${upstreamDns}"`,
    );
  }

  const ifEntry = get("INTERNET_INTERFACE");
  if (ifEntry.value !== "" && !isInterfaceName(ifEntry.value)) {
    fail(
      ifEntry,
      `INTERNET_INTERFACE must be an interface name (at most 15 characters, no "/" or spaces) or empty, got "${ifEntry.value}"`,
    );
  }

  const fenceEntry = get("GUEST_FENCE");
  const guestFence = (GUEST_FENCES as readonly string[]).includes(fenceEntry.value)
    ? fenceEntry.value as typeof GUEST_FENCES[number]
    : "internet";
  if (guestFence !== fenceEntry.value) {
    fail(fenceEntry, `GUEST_FENCE must be internet or strict, got "${fenceEntry.value}"`);
  }

  const kvmEntry = get("ENABLE_KVM");
  const enableKvm = BOOLEANS[kvmEntry.value.toLowerCase()];
  if (enableKvm === undefined) {
    fail(kvmEntry, `ENABLE_KVM must be true or false, got "${kvmEntry.value}"`);
  }

  return {
    config: {
      file,
      subnet,
      subnetAt: { file, line: cidrEntry.line, column: cidrEntry.column },
      dnsPort,
      upstreamDns,
      internetInterface: ifEntry.value === "" || !isInterfaceName(ifEntry.value)
        ? undefined
        : ifEntry.value,
      enableKvm: enableKvm ?? true,
      routeDebounceMs,
      readyTimeoutSec,
      stopTimeoutSec,
      serialLogMaxKb,
      failureLogMaxKb,
      guestFence,
    },
    diagnostics,
  };
}

function isUpstream(text: string): boolean {
  const [address, port, extra] = text.split("#");
  if (extra !== undefined || address === undefined) return false;
  if (
    port !== undefined && !(/^[0-9]{1,5}$/.test(port) && Number(port) >= 1 && Number(port) <= 65535)
  ) {
    return false;
  }
  return parseIpv4(address) !== undefined || isIpv6(address);
}

function isIpv6(text: string): boolean {
  return /^[0-9A-Fa-f:]+$/.test(text) && text.includes(":") &&
    (text.match(/::/g)?.length ?? 0) <= 1;
}

/** The effective runtime.conf as KEY="value" lines (for `plan`). */
export function formatRuntimeConf(config: RuntimeConfig): string {
  return [
    `DHCP_CIDR="${formatCidr(config.subnet)}"`,
    `DNS_ALT_PORT="${config.dnsPort}"`,
    `UPSTREAM_DNS="${config.upstreamDns}"`,
    `INTERNET_INTERFACE="${config.internetInterface ?? ""}"`,
    `ENABLE_KVM="${config.enableKvm}"`,
    `ROUTE_DEBOUNCE_MS="${config.routeDebounceMs}"`,
    `READY_TIMEOUT_SEC="${config.readyTimeoutSec}"`,
    `STOP_TIMEOUT_SEC="${config.stopTimeoutSec}"`,
    `SERIAL_LOG_MAX_KB="${config.serialLogMaxKb}"`,
    `FAILURE_LOG_MAX_KB="${config.failureLogMaxKb}"`,
    `GUEST_FENCE="${config.guestFence}"`,
  ].join("\n") + "\n";
}
