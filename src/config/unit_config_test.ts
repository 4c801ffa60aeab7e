import assert from "node:assert/strict";
import { parseMem, parseUnitConfig } from "./unit_config.ts";

Deno.test("parseMem() reads <n>M, <n>G and bare GiB", () => {
  assert.equal(parseMem("8G"), 8192);
  assert.equal(parseMem("512M"), 512);
  assert.equal(parseMem("512m"), 512);
  assert.equal(parseMem("2GiB"), 2048);
  assert.equal(parseMem(4), 4096);
  assert.equal(parseMem("4"), 4096);
  assert.equal(parseMem("8X"), undefined);
  assert.equal(parseMem(1.5), undefined);
});

Deno.test("parseUnitConfig() loads the existing tool's format unchanged", () => {
  // Verbatim from the old tool's documentation, comments included.
  const text = `unit:
  node_configs:
    - name: main          # required; DNS label, <= 63 chars
      cpu: 4              # required; positive integer
      mem: 8G             # required; <n>M, <n>G, or bare <n> = GiB
      ip: 10.0.0.100      # optional; static DHCP reservation in the subnet
      arch: amd64         # optional; amd64|x86_64|arm64|aarch64; default host
      image: custom.qcow2 # optional; file name in the images directory
      machine_type: q35   # optional; default q35 (x86_64) / virt (aarch64)
      cpu_type: max       # optional; default max / cortex-a57; host on aarch64+KVM
      uefi: true          # optional
    - name: secondary
      cpu: 2
      mem: 4G
`;
  const { config, diagnostics } = parseUnitConfig("unit_config.yaml", text);
  assert.deepEqual(diagnostics, []);
  assert.deepEqual(
    config.nodes.map((
      n,
    ) => [n.name, n.cpu, n.memMiB, n.ip, n.arch, n.image, n.machineType, n.cpuType, n.uefi]),
    [
      ["main", 4, 8192, "10.0.0.100", "x86_64", "custom.qcow2", "q35", "max", true],
      ["secondary", 2, 4096, undefined, undefined, undefined, undefined, undefined, undefined],
    ],
  );
  assert.deepEqual(config.nodes[0]?.at, { file: "unit_config.yaml", line: 3, column: 13 });
});
