/** Which base image a node boots: `image:` if given, else the naming rule of the AosCore releases. */

import type { Arch } from "../base/config_types.ts";
import type { ImageFile } from "./types.ts";

/** Architecture spellings in image names: Debian's, the kernel's, Yocto's machine names. */
export const ARCH_ALIASES: Record<Arch, readonly string[]> = {
  x86_64: ["amd64", "x86_64", "qemux86-64"],
  aarch64: ["arm64", "aarch64", "qemuarm64"],
};

/** Debian's name for an architecture, used in the expected image name. */
export function debianArch(arch: Arch): string {
  return arch === "x86_64" ? "amd64" : "arm64";
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** `^aos-vm-<name>-(<arch aliases>).*\.qcow2$` */
export function imagePattern(name: string, arch: Arch): RegExp {
  return new RegExp(
    `^aos-vm-${escape(name)}-(${ARCH_ALIASES[arch].map(escape).join("|")}).*\\.qcow2$`,
  );
}

export interface ImageChoice {
  file: string;
  source: "explicit" | "discovered" | "expected";
  found: boolean;
  readable: boolean;
  /** Other files that matched the rule (ambiguous discovery). */
  alternatives: string[];
}

/**
 * Picks a node's image from the files in the images directory.
 * Prefers the plain `aos-vm-<name>-<arch>.qcow2`, then the first match in name order.
 */
export function chooseImage(
  name: string,
  arch: Arch,
  explicit: string | undefined,
  files: readonly ImageFile[],
): ImageChoice {
  if (explicit !== undefined) {
    const file = files.find((f) => f.name === explicit);
    return {
      file: explicit,
      source: "explicit",
      found: file !== undefined,
      readable: file?.readable ?? false,
      alternatives: [],
    };
  }
  const pattern = imagePattern(name, arch);
  const matches = files.filter((f) => pattern.test(f.name)).sort((a, b) =>
    a.name.localeCompare(b.name)
  );
  const plain = ARCH_ALIASES[arch].map((a) => `aos-vm-${name}-${a}.qcow2`);
  const best = matches.find((f) => plain.includes(f.name)) ?? matches[0];
  if (!best) {
    return {
      file: `aos-vm-${name}-${debianArch(arch)}.qcow2`,
      source: "expected",
      found: false,
      readable: false,
      alternatives: [],
    };
  }
  return {
    file: best.name,
    source: "discovered",
    found: true,
    readable: best.readable,
    alternatives: matches.filter((f) => f !== best).map((f) => f.name),
  };
}
