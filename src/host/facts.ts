/** Gathers HostFacts: the only place the planner's inputs touch the machine. */

import type { Arch } from "../base/config_types.ts";
import { rethrowAccessErrors, RuntimeError } from "../base/errors.ts";
import { isMachineId } from "../base/unit_identity.ts";
import type { Firmware, HostFacts, ImageFile, Paths } from "../plan/types.ts";
import { MACHINE_ID_FILE } from "../base/host_files.ts";
import { QEMU_BINARY } from "../base/tools.ts";
import { inspectImages } from "./image/inspect.ts";
import { openRegular } from "./safe_file.ts";
import { recordedValue } from "./network_record.ts";
import { readKvmProbe } from "./kvm.ts";
import { leaseAddresses } from "./leases.ts";
import { leaseStateFile } from "../plan/layout.ts";

export const SERVICE_USER = "aos-unit";
export const DEFAULT_EXECUTABLE = "/usr/bin/aos-unit";
export const DEFAULT_LEASE_HOOK = "/usr/libexec/aos-unit/lease-hook";
export const DEFAULT_NODE_STOP_HOOK = "/usr/libexec/aos-unit/node-stop";
export const DEFAULT_NODE_STOPPED_HOOK = "/usr/libexec/aos-unit/node-stopped";

const FIRMWARE_CANDIDATES: Record<Arch, Firmware[]> = {
  x86_64: [
    { code: "/usr/share/OVMF/OVMF_CODE_4M.fd", vars: "/usr/share/OVMF/OVMF_VARS_4M.fd" },
    { code: "/usr/share/OVMF/OVMF_CODE.fd", vars: "/usr/share/OVMF/OVMF_VARS.fd" },
  ],
  aarch64: [
    { code: "/usr/share/AAVMF/AAVMF_CODE.fd", vars: "/usr/share/AAVMF/AAVMF_VARS.fd" },
  ],
};

/** True when the path exists (any kind of file). */
export function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

export function hostArch(): Arch {
  return Deno.build.arch === "aarch64" ? "aarch64" : "x86_64";
}

/** Reads /etc/machine-id; the bridge name is derived from it, so it must be sane. */
export function readMachineId(file = MACHINE_ID_FILE): string {
  let text: string;
  try {
    text = Deno.readTextFileSync(file).trim();
  } catch (error) {
    throw new RuntimeError(`Cannot read ${file}: ${(error as Error).message}`, {
      hint: "aos-unit derives the bridge name from the machine-id; run systemd-machine-id-setup",
    });
  }
  if (!isMachineId(text)) {
    throw new RuntimeError(`Cannot derive the bridge name: ${file} does not hold a machine-id`, {
      hint: "run systemd-machine-id-setup",
    });
  }
  return text;
}

export function findFirmware(): Partial<Record<Arch, Firmware>> {
  const out: Partial<Record<Arch, Firmware>> = {};
  for (const arch of ["x86_64", "aarch64"] as const) {
    const found = FIRMWARE_CANDIDATES[arch].find((f) => exists(f.code) && exists(f.vars));
    if (found) out[arch] = found;
  }
  return out;
}

/** The .qcow2 files in the images directory, and whether each can be opened. */
export function listImages(dir: string): ImageFile[] {
  const out: ImageFile[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch (error) {
    rethrowAccessErrors(error, `the images directory ${dir}`);
    return out;
  }
  for (const entry of entries) {
    if (!entry.name.endsWith(".qcow2") || entry.isDirectory) continue;
    let readable = false;
    try {
      // Never a FIFO (the open would block the broker) or a link.
      openRegular(`${dir}/${entry.name}`).close();
      readable = true;
    } catch { /* reported by the planner */ }
    out.push({ name: entry.name, readable });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

export function findEmulators(): Partial<Record<Arch, boolean>> {
  return { x86_64: exists(QEMU_BINARY.x86_64), aarch64: exists(QEMU_BINARY.aarch64) };
}

export interface FactOverrides {
  serviceUser?: string | undefined;
  executable?: string | undefined;
  leaseHook?: string | undefined;
  /** The broker records what the images configure (everyone else only reads the record). */
  recordImageFacts?: boolean | undefined;
  /** Result of the broker's KVM probe; when absent, the recorded probe, else TCG. */
  kvmUsable?: boolean | undefined;
  /** Interfaces with a default route (from `ip route`, by the subcommands that may run ip). */
  uplinks?: string[] | undefined;
  /** From systemd's Version property, by the subcommands that talk to it. */
  systemdVersion?: number | undefined;
  nodeStoppedHook?: string | undefined;
  /** The host's routes on links other than the unit's own (the broker, from `ip route`). */
  takenSubnets?: string[] | undefined;
}

/** The host block an isolated unit's start recorded (network.conf), if any. */
function recordedHostBlock(runtimeDir: string): string | undefined {
  const block = recordedValue(runtimeDir, "HOST_BLOCK");
  return block && /^\d+\.\d+\.\d+\.\d+\/\d+$/.test(block) ? block : undefined;
}

export function gatherFacts(paths: Paths, overrides: FactOverrides = {}): HostFacts {
  const images = listImages(paths.imagesDir);
  return {
    machineId: readMachineId(),
    hostArch: hostArch(),
    // Known once the broker has probed it (cached per boot); TCG until then.
    kvmUsable: overrides.kvmUsable ?? readKvmProbe(paths) ?? false,
    firmware: findFirmware(),
    emulators: findEmulators(),
    images,
    imageNetworks: inspectImages(paths.imagesDir, images, paths, overrides.recordImageFacts),
    leases: leaseAddresses(leaseStateFile(paths)),
    serviceUser: overrides.serviceUser ?? SERVICE_USER,
    executable: overrides.executable ?? DEFAULT_EXECUTABLE,
    leaseHook: overrides.leaseHook ?? DEFAULT_LEASE_HOOK,
    nodeStopHook: DEFAULT_NODE_STOP_HOOK,
    nodeStoppedHook: overrides.nodeStoppedHook ?? DEFAULT_NODE_STOPPED_HOOK,
    systemdVersion: overrides.systemdVersion ?? 0,
    uplinks: overrides.uplinks ?? [],
    ...(overrides.takenSubnets ? { takenSubnets: overrides.takenSubnets } : {}),
    ...optional("hostBlock", recordedHostBlock(paths.runtimeDir)),
  };
}

function optional<K extends string, V>(key: K, value: V | undefined): { [k in K]?: V } {
  return value === undefined ? {} : { [key]: value } as { [k in K]?: V };
}
