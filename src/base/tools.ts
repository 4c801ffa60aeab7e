/**
 * The programs aos-unit runs, by absolute path (Deno resolves --allow-run names
 * through PATH once, at start: the path run is the path granted), each with the
 * Debian package that provides it, for "install X" messages. One table: the
 * runner, doctor, the planner's warnings and the permission table read it.
 */

import type { Arch } from "./config_types.ts";

const TABLE = {
  ip: ["/usr/sbin/ip", "iproute2"],
  nft: ["/usr/sbin/nft", "nftables"],
  dnsmasq: ["/usr/sbin/dnsmasq", "dnsmasq-base"],
  conntrack: ["/usr/sbin/conntrack", "conntrack"],
  qemuImg: ["/usr/bin/qemu-img", "qemu-utils"],
  qemuX86: ["/usr/bin/qemu-system-x86_64", "qemu-system-x86"],
  qemuArm: ["/usr/bin/qemu-system-aarch64", "qemu-system-arm"],
  journalctl: ["/usr/bin/journalctl", "systemd"],
  sysctl: ["/usr/sbin/sysctl", "procps"],
  ss: ["/usr/bin/ss", "iproute2"],
  ln: ["/usr/bin/ln", "coreutils"],
  cat: ["/usr/bin/cat", "coreutils"],
  fallocate: ["/usr/bin/fallocate", "util-linux"],
  setsid: ["/usr/bin/setsid", "util-linux"],
  nsenter: ["/usr/bin/nsenter", "util-linux"],
} as const satisfies Record<string, readonly [string, string]>;

export type ToolName = keyof typeof TABLE;

/** Tool name -> absolute path. */
export const TOOLS = Object.fromEntries(
  Object.entries(TABLE).map(([name, [path]]) => [name, path]),
) as { readonly [K in ToolName]: typeof TABLE[K][0] };

/** The Debian package of a tool, by its path or its file name (`ip`, `/usr/sbin/ip`). */
export function packageOf(program: string): string | undefined {
  const base = program.split("/").pop();
  return Object.values(TABLE).find(([path]) => path === program || path.endsWith(`/${base}`))
    ?.[1];
}

/** The QEMU system emulator for each guest architecture. */
export const QEMU_BINARY: Record<Arch, string> = {
  x86_64: TOOLS.qemuX86,
  aarch64: TOOLS.qemuArm,
};

/** The Debian package of each guest architecture's emulator. */
export const EMULATOR_PACKAGE: Record<Arch, string> = {
  x86_64: TABLE.qemuX86[1],
  aarch64: TABLE.qemuArm[1],
};

/** The Debian package of each guest architecture's UEFI firmware. */
export const FIRMWARE_PACKAGE: Record<Arch, string> = {
  x86_64: "ovmf",
  aarch64: "qemu-efi-aarch64",
};
