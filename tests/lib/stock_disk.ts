/**
 * Small disks laid out like the stock AosCore images (GPT: boot_a, boot_b,
 * rootfs, home, var, aos; ext4 root on partition 3), built without root, loop
 * devices or mounts: mkfs.ext4 -d, sfdisk on a file, qemu-img convert. For the
 * tier-1 tests of what aos-unit reads out of an image.
 */

import { run } from "./proc.ts";

export interface DiskOptions {
  /** Files of the root filesystem: path inside it -> content (or {link} for a symlink). */
  files: Record<string, string | { link: string }>;
  /** "qcow2" (default), "qcow2-compressed" or "raw". */
  format?: "qcow2" | "qcow2-compressed" | "raw";
  /** ext4 (default) or ext2 (block maps instead of extents). */
  fs?: "ext4" | "ext2";
  /** GPT names; the default is the meta-aos-vm layout. */
  names?: string[];
  /** Size of the root partition and its filesystem (default 8 MiB). */
  rootMiB?: number;
}

const MIB = 1024 * 1024;

async function must(argv: string[]): Promise<void> {
  const r = await run(argv);
  if (r.code !== 0) throw new Error(`${argv.join(" ")} exited ${r.code}: ${r.stderr}`);
}

/** Builds the disk at `out` (a scratch directory beside it is removed afterwards). */
export async function buildStockDisk(out: string, o: DiskOptions): Promise<void> {
  const work = await Deno.makeTempDir({ prefix: "aosu-disk-" });
  try {
    const root = `${work}/root`;
    for (const [path, content] of Object.entries(o.files)) {
      const full = `${root}${path}`;
      await Deno.mkdir(full.slice(0, full.lastIndexOf("/")), { recursive: true });
      if (typeof content === "string") await Deno.writeTextFile(full, content);
      else await Deno.symlink(content.link, full);
    }
    const names = o.names ?? ["boot_a", "boot_b", "rootfs", "home", "var", "aos"];
    const rootMiB = o.rootMiB ?? 8;
    const sizes = names.map((_, i) => (i === 2 ? rootMiB : 1));
    const raw = `${work}/disk.raw`;
    await Deno.writeFile(raw, new Uint8Array());
    await Deno.truncate(raw, (sizes.reduce((a, b) => a + b, 0) + 2) * MIB);
    const table = [
      "label: gpt",
      ...names.map((name, i) =>
        `${i === 0 ? "start=2048, " : ""}size=${
          sizes[i]
        }MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="${name}"`
      ),
    ].join("\n");
    const sfdisk = await run(["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", raw], {
      stdin: table + "\n",
    });
    if (sfdisk.code !== 0) throw new Error(`sfdisk: ${sfdisk.stderr}`);
    const part = `${work}/root.img`;
    await must([`/usr/sbin/mkfs.${o.fs ?? "ext4"}`, "-q", "-F", "-d", root, part, `${rootMiB}M`]);
    const offset = (1 + sizes[0]! + sizes[1]!) * MIB;
    await must([
      "dd",
      `if=${part}`,
      `of=${raw}`,
      "bs=1M",
      `seek=${offset / MIB}`,
      "conv=notrunc",
      "status=none",
    ]);
    if (o.format === "raw") {
      await Deno.rename(raw, out);
    } else {
      await must([
        "qemu-img",
        "convert",
        ...(o.format === "qcow2-compressed" ? ["-c"] : []),
        "-f",
        "raw",
        "-O",
        "qcow2",
        raw,
        out,
      ]);
    }
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}

const WIRED = "/etc/systemd/network/20-wired.network";

/** The stock main of meta-aos-vm v5.2.2: static 10.0.0.100/24, gateway and DNS 10.0.0.1. */
export const V5_MAIN = {
  [WIRED]:
    "[Match]\nName=en*\n\n[Network]\nAddress=10.0.0.100/24\nGateway=10.0.0.1\nDNS=10.0.0.1\n",
  "/etc/hosts": "127.0.0.1\tlocalhost\n",
};

/** A v5.2.2 secondary: DHCP, main in /etc/hosts. */
export const V5_SECONDARY = {
  [WIRED]: "[Match]\nName=en*\n\n[Network]\nDHCP=yes\n",
  "/etc/hosts": "127.0.0.1\tlocalhost\n10.0.0.100\tmain\n",
};

/** The v6 main: its own dnsmasq, DNS=10.0.0.100, the address in an [Address] section. */
export const V6_MAIN = {
  [WIRED]:
    "[Match]\nName=en*\n\n[Network]\nGateway=10.0.0.1\nDNS=10.0.0.100\n\n[Address]\nAddress=10.0.0.100/24\n",
};
