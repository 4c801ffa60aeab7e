/** Names and addresses derived from names: bridge, MACs, taps. Deterministic by design. */

import { createHash } from "node:crypto";

function md5(text: string): string {
  return createHash("md5").update(text).digest("hex");
}

/** A machine-id: 32 lowercase hex digits (machine-id(5)). */
export function isMachineId(text: string): boolean {
  return /^[0-9a-f]{32}$/.test(text);
}

/** `aosbr` + the first 6 characters of the host's machine-id. */
export function bridgeName(machineId: string): string {
  return `aosbr${machineId.slice(0, 6)}`;
}

/**
 * A fixed, locally administered MAC for the bridge, so it does not change as
 * ports come and go (the kernel would otherwise pick the lowest port MAC).
 */
export function bridgeMac(machineId: string): string {
  const hex = md5(`aos-unit bridge ${machineId}`);
  return ["02", ...(hex.slice(0, 10).match(/../g) ?? [])].join(":");
}

/** `52:54:00:` + the first 6 hex digits of md5(name) - as the existing tool did. */
export function nodeMac(name: string): string {
  const hex = md5(name);
  return `52:54:00:${hex.slice(0, 2)}:${hex.slice(2, 4)}:${hex.slice(4, 6)}`;
}

/** `aostap` + the last 6 hex digits of the node's MAC. */
export function tapName(mac: string): string {
  return `aostap${mac.replaceAll(":", "").slice(-6)}`;
}
