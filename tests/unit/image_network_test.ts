/**
 * What aos-unit reads out of a node's base image (qcow2 -> GPT -> ext4 -> the
 * networkd file and /etc/hosts), on disks built here like the stock AosCore
 * ones, and what validate makes of it.
 */

import assert from "node:assert/strict";
import { inspectImage, inspectImages } from "../../src/host/image/inspect.ts";
import { unitPaths } from "../../src/host/paths.ts";
import { buildStockDisk, V5_MAIN, V5_SECONDARY, V6_MAIN } from "../lib/stock_disk.ts";
import { aosUnit } from "../lib/cli.ts";

const dir = await Deno.makeTempDir({ prefix: "aosu-images-" });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

Deno.test("inspectImage() reads the stock layouts, plain and compressed, ext4 and ext2", async (t) => {
  const cases: [string, Parameters<typeof buildStockDisk>[1], unknown][] = [
    ["v5 main", { files: V5_MAIN }, {
      source: "/etc/systemd/network/20-wired.network",
      address: { ip: "10.0.0.100", prefix: 24 },
      gateway: "10.0.0.1",
      dns: ["10.0.0.1"],
      dhcp: false,
      hosts: {},
    }],
    ["v5 secondary", { files: V5_SECONDARY }, {
      source: "/etc/systemd/network/20-wired.network",
      dns: [],
      dhcp: true,
      hosts: { main: "10.0.0.100" },
    }],
    ["v6 main ([Address] section, its own DNS)", { files: V6_MAIN }, {
      source: "/etc/systemd/network/20-wired.network",
      address: { ip: "10.0.0.100", prefix: 24 },
      gateway: "10.0.0.1",
      dns: ["10.0.0.100"],
      dhcp: false,
      hosts: {},
    }],
    ["compressed qcow2", { files: V5_MAIN, format: "qcow2-compressed" }, "v5 main"],
    ["raw disk", { files: V5_MAIN, format: "raw" }, "v5 main"],
    ["ext2 (block maps)", { files: V5_MAIN, fs: "ext2" }, "v5 main"],
    ["/etc/hosts as a link inside the image", {
      files: {
        ...V5_SECONDARY,
        "/etc/hosts": { link: "../run/hosts" },
        "/run/hosts": "10.0.0.100 main\n",
      },
    }, "v5 secondary"],
  ];
  const expected = new Map<string, unknown>();
  for (const [name, options, want] of cases) {
    await t.step(name, async () => {
      const file = `${dir}/${name.replaceAll(/\W+/g, "-")}.qcow2`;
      await buildStockDisk(file, options);
      const got = inspectImage(file);
      const value = typeof want === "string" ? expected.get(want) : want;
      assert.deepEqual(got, value);
      expected.set(name, value);
    });
  }
});

Deno.test("inspectImage() has no opinion on what it cannot read", async (t) => {
  await t.step("not a disk", () => {
    Deno.writeTextFileSync(`${dir}/text.qcow2`, "hello\n");
    assert.equal(inspectImage(`${dir}/text.qcow2`), undefined);
  });
  await t.step("a truncated qcow2", async () => {
    await buildStockDisk(`${dir}/whole.qcow2`, { files: V5_MAIN });
    const bytes = Deno.readFileSync(`${dir}/whole.qcow2`);
    Deno.writeFileSync(`${dir}/cut.qcow2`, bytes.subarray(0, 70_000));
    assert.equal(inspectImage(`${dir}/cut.qcow2`), undefined);
  });
  await t.step("no root filesystem configuring anything", async () => {
    await buildStockDisk(`${dir}/empty.qcow2`, { files: { "/etc/motd": "hi\n" } });
    assert.equal(inspectImage(`${dir}/empty.qcow2`), undefined);
  });
  await t.step("a symbolic link to an image, a FIFO: refused, never followed or read", () => {
    Deno.symlinkSync(`${dir}/whole.qcow2`, `${dir}/link.qcow2`);
    assert.equal(inspectImage(`${dir}/link.qcow2`), undefined);
    new Deno.Command("mkfifo", { args: [`${dir}/fifo.qcow2`] }).outputSync();
    assert.equal(inspectImage(`${dir}/fifo.qcow2`), undefined, "returns at once, no hang");
  });
});

Deno.test("inspectImages() keeps results by size and mtime, and forgets images gone", async () => {
  const images = `${dir}/cache-images`;
  const cache = `${dir}/cache-run`;
  const paths = unitPaths({ configDir: dir, stateDir: images, logsDir: dir, runtimeDir: cache });
  Deno.mkdirSync(images);
  Deno.mkdirSync(cache);
  await buildStockDisk(`${images}/aos-vm-main-qemux86-64.qcow2`, { files: V5_MAIN });
  const list = [{ name: "aos-vm-main-qemux86-64.qcow2", readable: true }];
  const first = inspectImages(images, list, paths, true);
  assert.equal(first["aos-vm-main-qemux86-64.qcow2"]?.address?.ip, "10.0.0.100");
  // A cached answer is used while size and mtime match (the image is not read again).
  const recorded = JSON.parse(Deno.readTextFileSync(`${cache}-root/image-network.json`));
  recorded.images["aos-vm-main-qemux86-64.qcow2"].network.address.ip = "10.0.0.99";
  Deno.writeTextFileSync(`${cache}-root/image-network.json`, JSON.stringify(recorded));
  assert.equal(
    inspectImages(images, list, paths, true)["aos-vm-main-qemux86-64.qcow2"]?.address?.ip,
    "10.0.0.99",
  );
  // A changed image is read again.
  Deno.utimeSync(`${images}/aos-vm-main-qemux86-64.qcow2`, new Date(), new Date(2020, 1, 1));
  assert.equal(
    inspectImages(images, list, paths, true)["aos-vm-main-qemux86-64.qcow2"]?.address?.ip,
    "10.0.0.100",
  );
  inspectImages(images, [], paths, true);
  assert.deepEqual(
    JSON.parse(Deno.readTextFileSync(`${cache}-root/image-network.json`)).images,
    {},
  );
});

Deno.test("aos-unit validate holds the config against what the stock images expect", async (t) => {
  const state = `${dir}/validate-state`;
  const run = `${dir}/validate-run`;
  const config = `${dir}/validate-etc`;
  for (const d of [state, run, config]) Deno.mkdirSync(d);
  await buildStockDisk(`${state}/aos-vm-main-qemux86-64.qcow2`, { files: V5_MAIN });
  await buildStockDisk(`${state}/aos-vm-secondary-qemux86-64.qcow2`, { files: V5_SECONDARY });
  const env = { STATE_DIRECTORY: state, RUNTIME_DIRECTORY: run };
  const write = (cidr: string, mainIp: string | undefined) => {
    Deno.writeTextFileSync(`${config}/runtime.conf`, `# the unit's subnet\nDHCP_CIDR="${cidr}"\n`);
    Deno.writeTextFileSync(
      `${config}/unit_config.yaml`,
      [
        "unit:",
        "  node_configs:",
        "    - name: main",
        "      cpu: 1",
        "      mem: 512M",
        ...(mainIp ? [`      ip: ${mainIp}`] : []),
        "    - name: secondary",
        "      cpu: 1",
        "      mem: 512M",
        "",
      ].join("\n"),
    );
  };
  await t.step("the shipped addressing (10.0.0.0/24, main at 10.0.0.100): exit 0", async () => {
    write("10.0.0.0/24", "10.0.0.100");
    const r = await aosUnit(["validate", "-c", config], env);
    assert.equal(r.code, 0, r.stderr);
  });
  await t.step(
    "the old sample (10.200.1.0/24): exit 2 at main's ip line, with the fix",
    async () => {
      write("10.200.1.0/24", "10.200.1.100");
      const r = await aosUnit(["validate", "-c", config], env);
      assert.equal(r.code, 2, r.stderr);
      assert.match(
        r.stderr,
        new RegExp(
          `${config}/unit_config\\.yaml:6:11: Node "main": its image aos-vm-main-qemux86-64\\.qcow2 configures itself as 10\\.0\\.0\\.100/24 via 10\\.0\\.0\\.1 \\(/etc/systemd/network/20-wired\\.network\\), outside 10\\.200\\.1\\.0/24; set DHCP_CIDR="10\\.0\\.0\\.0/24" in ${config}/runtime\\.conf and ip: 10\\.0\\.0\\.100`,
        ),
      );
      assert.equal(r.stderr.match(/Node "main"/g)?.length, 1, "one message, not one per image");
    },
  );
  await t.step("the right subnet, main reserved elsewhere: exit 2, set ip", async () => {
    write("10.0.0.0/24", "10.0.0.50");
    const r = await aosUnit(["validate", "-c", config], env);
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      /unit_config\.yaml:6:11: .*configures itself as 10\.0\.0\.100\/24.*, not 10\.0\.0\.50; set ip: 10\.0\.0\.100/,
    );
  });
  await t.step("main not reserved: exit 2 at main's name", async () => {
    write("10.0.0.0/24", undefined);
    const r = await aosUnit(["validate", "-c", config], env);
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      /unit_config\.yaml:3:13: .*has no reserved address; set ip: 10\.0\.0\.100/,
    );
  });
  await t.step("an image it cannot read: no opinion", async () => {
    write("10.200.1.0/24", "10.200.1.100");
    Deno.writeTextFileSync(`${state}/aos-vm-main-qemux86-64.qcow2`, "not a disk\n");
    Deno.writeTextFileSync(`${state}/aos-vm-secondary-qemux86-64.qcow2`, "not a disk\n");
    const r = await aosUnit(["validate", "-c", config], env);
    assert.equal(r.code, 0, r.stderr);
  });
});
