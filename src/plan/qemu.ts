/** The QEMU command line of a node. One argument per element; never a shell string. */

import type { Arch } from "../base/config_types.ts";
import { QEMU_BINARY } from "../base/tools.ts";
import type { Accel } from "./types.ts";

/** Translation-cache bound under TCG, in MiB (QEMU's default is 1 GiB and grows into RSS). */
export const TCG_TB_SIZE_MIB = 256;

/** Fixed part of QEMU's own memory on top of guest RAM (device models, I/O buffers, libraries). */
export const QEMU_BASE_OVERHEAD_MIB = 256;

/**
 * MemoryMax for a node: guest RAM + 256 MiB + RAM/16 (page tables, per-RAM
 * bookkeeping) + the TCG translation cache when emulating. The old tool set
 * MemoryMax to the guest RAM exactly and QEMU's overhead got it OOM-killed.
 */
export function memoryMaxMiB(memMiB: number, accel: Accel): number {
  return memMiB + QEMU_BASE_OVERHEAD_MIB + Math.ceil(memMiB / 16) +
    (accel === "tcg" ? TCG_TB_SIZE_MIB : 0);
}

export function defaultMachineType(arch: Arch): string {
  return arch === "x86_64" ? "q35" : "virt";
}

export function defaultCpuType(arch: Arch, accel: Accel): string {
  if (arch === "aarch64") return accel === "kvm" ? "host" : "cortex-a57";
  return "max";
}

export interface QemuInput {
  name: string;
  /** The process name QEMU gives itself (the node's unit, without ".service"). */
  process: string;
  arch: Arch;
  accel: Accel;
  machineType: string;
  cpuType: string;
  cpu: number;
  memMiB: number;
  disk: string;
  firmware: { code: string; vars: string } | undefined;
  tap: string;
  mac: string;
  serialSocket: string;
  serialLog: string;
  qmpSocket: string;
}

/** QEMU option values escape "," by doubling it. */
function opt(value: string): string {
  return value.replaceAll(",", ",,");
}

/** Builds the full argv (argv[0] is the binary). */
export function qemuArgv(n: QemuInput): string[] {
  const accel = n.accel === "kvm" ? "kvm" : `tcg,tb-size=${TCG_TB_SIZE_MIB}`;
  return [
    QEMU_BINARY[n.arch],
    "-name",
    `guest=${n.name},process=${n.process}`,
    "-no-user-config",
    "-nodefaults",
    "-machine",
    n.machineType,
    "-accel",
    accel,
    "-cpu",
    n.cpuType,
    "-smp",
    String(n.cpu),
    "-m",
    `${n.memMiB}M`,
    "-display",
    "none",
    ...(n.arch === "x86_64" ? ["-vga", "none"] : []),
    "-msg",
    "timestamp=on",
    "-rtc",
    "base=utc",
    // seccomp: QEMU may not spawn, setuid or change resource limits.
    "-sandbox",
    "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
    ...(n.firmware
      ? [
        "-drive",
        `if=pflash,format=raw,unit=0,readonly=on,file=${opt(n.firmware.code)}`,
        "-drive",
        `if=pflash,format=raw,unit=1,file=${opt(n.firmware.vars)}`,
      ]
      : []),
    // AosCore images hard-code root=/dev/sda3: the disk must be SCSI, not virtio-blk.
    "-device",
    "virtio-scsi-pci,id=scsi0",
    "-drive",
    `file=${opt(n.disk)},if=none,id=disk0,format=qcow2,discard=unmap`,
    "-device",
    "scsi-hd,drive=disk0,bus=scsi0.0,bootindex=1",
    "-netdev",
    `tap,id=net0,ifname=${n.tap},script=no,downscript=no`,
    "-device",
    `virtio-net-pci,netdev=net0,mac=${n.mac}`,
    "-device",
    "virtio-rng-pci",
    "-chardev",
    `socket,id=serial0,path=${opt(n.serialSocket)},server=on,wait=off,logfile=${
      opt(n.serialLog)
    },logappend=on`,
    "-serial",
    "chardev:serial0",
    "-chardev",
    `socket,id=qmp0,path=${opt(n.qmpSocket)},server=on,wait=off`,
    "-mon",
    "chardev=qmp0,mode=control",
  ];
}
