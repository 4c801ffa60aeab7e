/**
 * Whether KVM really works. /dev/kvm existing is not enough: on nested or
 * paravirtualised hosts QEMU aborts ("failed to set MSR ...") or crawls. A
 * stopped VM (-S) with the real machine type is created and torn down over
 * QMP; only a clean exit counts.
 */

import type { Arch } from "../base/config_types.ts";
import { brokerDir, kvmProbeFile } from "../plan/layout.ts";
import type { Paths } from "../plan/types.ts";
import { writeFileAtomic } from "./atomic.ts";
import { readSmallFile } from "./safe_file.ts";
import type { Runner } from "./runner.ts";
import { QEMU_BINARY } from "../base/tools.ts";

export type KvmProbe = { usable: true } | { usable: false; reason: string };

/**
 * @param as run the probe as this user and group (QEMU's own), not as the caller
 */
export async function probeKvm(
  runner: Runner,
  arch: Arch,
  as?: { uid: number; gid: number },
): Promise<KvmProbe> {
  // No stat of /dev/kvm here: Deno allows one only with a blanket grant. QEMU tells.
  const argv = [
    QEMU_BINARY[arch],
    "-machine",
    arch === "x86_64" ? "q35" : "virt",
    "-accel",
    "kvm",
    "-cpu",
    arch === "x86_64" ? "max" : "host",
    "-nodefaults",
    "-no-user-config",
    "-display",
    "none",
    "-S",
    "-qmp",
    "stdio",
  ];
  try {
    const r = await runner.run(argv, {
      okCodes: [0],
      timeoutMs: 5000,
      ...(as ? { as } : {}),
      stdin: '{"execute":"qmp_capabilities"}\n{"execute":"cont"}\n{"execute":"quit"}\n',
    });
    return r.code === 0 ? { usable: true } : { usable: false, reason: `exit ${r.code}` };
  } catch (error) {
    const text = (error as Error).message;
    const line = /qemu-system-[^:]+: (.*)/.exec(text)?.[1] ?? text;
    return { usable: false, reason: line.slice(0, 200) };
  }
}

/** The recorded probe: true (usable), false (broken or absent), undefined (not probed yet). */
export function readKvmProbe(paths: Paths): boolean | undefined {
  let text: string;
  try {
    // The runtime directory is the service user's: no link, no FIFO, a few bytes.
    text = (readSmallFile(kvmProbeFile(paths), 4096) ?? "").trim();
  } catch {
    return undefined;
  }
  if (text === "usable") return true;
  if (text.startsWith("broken") || text === "absent") return false;
  return undefined;
}

export function recordKvmProbe(paths: Paths, probe: KvmProbe): void {
  Deno.mkdirSync(brokerDir(paths), { recursive: true, mode: 0o755 });
  writeFileAtomic(kvmProbeFile(paths), probe.usable ? "usable\n" : `broken: ${probe.reason}\n`);
}
