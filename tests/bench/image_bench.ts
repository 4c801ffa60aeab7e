/**
 * How long reading what an image configures for itself takes (the check that
 * validate, doctor and the broker run): a cold cache (the image is read:
 * qcow2 -> GPT -> ext4 -> two small files) and a warm one (size and mtime
 * match, nothing is read). On the stock-like test disk and on a disk with a
 * 4 GiB root filesystem full of files, plain and compressed. Prints numbers.
 */

import { inspectImages } from "../../src/host/image/inspect.ts";
import { unitPaths } from "../../src/host/paths.ts";
import { buildStockDisk, V5_MAIN } from "../lib/stock_disk.ts";
import { run } from "../lib/proc.ts";
import { report } from "./stats.ts";

const ROUNDS = Number(Deno.env.get("BENCH_ROUNDS") ?? "10");
const work = await Deno.makeTempDir({ prefix: "aosu-image-bench-" });

/**
 * A disk whose root filesystem is large and busy: a 1 GiB root with 2000 files in
 * /etc, 200 other files beside the .network one, 32 MiB of data; the disk 4 GiB.
 */
async function bigDisk(out: string, compressed: boolean): Promise<void> {
  const files: Record<string, string> = { ...V5_MAIN };
  for (let i = 0; i < 2000; i++) files[`/etc/filler/${i}.conf`] = `x=${"y".repeat(i % 300)}\n`;
  for (let i = 0; i < 200; i++) {
    files[`/etc/systemd/network/${String(i).padStart(3, "0")}-other.link`] = "[Match]\n";
  }
  files["/usr/lib/blob"] = Array.from({ length: 32 * 1024 }, (_, i) => `${i}`.padEnd(1023, "z"))
    .join("\n");
  await buildStockDisk(`${work}/small.qcow2`, { files, rootMiB: 1024 });
  const convert = ["qemu-img", "convert", "-O", "qcow2", ...(compressed ? ["-c"] : [])];
  await run([...convert, `${work}/small.qcow2`, out]);
  await run(["qemu-img", "resize", out, "4G"]);
}

try {
  const cases: [string, () => Promise<void>][] = [
    [
      "stock-like disk (8 MiB root)",
      () => buildStockDisk(`${work}/img/aos-vm-main-x.qcow2`, { files: V5_MAIN }),
    ],
    ["4 GiB disk, 2200 files in /etc", () => bigDisk(`${work}/img/aos-vm-main-x.qcow2`, false)],
    ["4 GiB disk, compressed clusters", () => bigDisk(`${work}/img/aos-vm-main-x.qcow2`, true)],
  ];
  for (const [name, build] of cases) {
    await Deno.remove(`${work}/img`, { recursive: true }).catch(() => {});
    await Deno.mkdir(`${work}/img`, { recursive: true });
    await build();
    const images = [{ name: "aos-vm-main-x.qcow2", readable: true }];
    const paths = unitPaths({
      configDir: work,
      stateDir: `${work}/img`,
      logsDir: work,
      runtimeDir: `${work}/cache`,
    });
    const cold: number[] = [];
    const warm: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      await Deno.remove(`${work}/cache-root`, { recursive: true }).catch(() => {});
      let t = performance.now();
      const facts = inspectImages(`${work}/img`, images, paths, true);
      cold.push(performance.now() - t);
      if (!facts["aos-vm-main-x.qcow2"]?.address) throw new Error(`${name}: nothing read`);
      t = performance.now();
      inspectImages(`${work}/img`, images, paths, true);
      warm.push(performance.now() - t);
    }
    report(`image check, cold cache: ${name}`, cold);
    report(`image check, warm cache: ${name}`, warm);
  }
} finally {
  await Deno.remove(work, { recursive: true }).catch(() => {});
}
