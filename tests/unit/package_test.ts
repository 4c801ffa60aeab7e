/**
 * The local .deb: version scheme, contents, dependencies, lintian. (A file apart from
 * release_test.ts: tier 1 runs files in parallel, and each of the two builds for ~30 s.)
 */

import assert from "node:assert/strict";
import { ROOT } from "../lib/aos.ts";
import { run } from "../lib/proc.ts";

Deno.test({
  name:
    "the local .deb: version from the newest tag + git sha + time, complete contents, lintian clean",
  sanitizeResources: false,
}, async () => {
  const out = await Deno.makeTempDir({ prefix: "aosu-deb-" });
  try {
    // gzip: the default xz spends ~50 s of CPU in dpkg-deb alone, and tests nothing of ours.
    const r = await run([
      "bash",
      `${ROOT}/packaging/build_package.sh`,
      "--out",
      out,
      "--compress",
      "gzip",
    ], {
      env: { ...Deno.env.toObject(), SOURCE_DATE_EPOCH: "1795600000" },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /no denort runtime .* building the bundle flavour/,
      "says so in one line",
    );
    const deb = r.stdout.trim().split("\n").at(-1)!;
    assert.match(deb, /aos-unit_\d+\.\d+\.\d+\+git[0-9a-f]{7}\+\d{8}T\d{6}_amd64\.deb$/);
    const list = (await run(["dpkg-deb", "-c", deb])).stdout;
    for (
      const path of [
        "./usr/bin/aos-unit",
        "./usr/lib/aos-unit/aos-unit.js",
        "./usr/lib/aos-unit/lease-hook.js",
        "./usr/lib/aos-unit/startup.js",
        "./usr/lib/aos-unit/run.js",
        "./usr/lib/aos-unit/prepare.js",
        "./usr/libexec/aos-unit/lease-hook",
        "./usr/libexec/aos-unit/node-stop",
        "./usr/libexec/aos-unit/node-stopped",
        "./usr/libexec/aos-unit/manager-stopped",
        "./usr/libexec/aos-unit/unit-stopped",
        "./usr/lib/systemd/system/aos-unit.service",
        "./usr/lib/systemd/system/aos-unit.slice",
        "./usr/lib/systemd/system/aos-unit-vm-failed@.service",
        "./usr/lib/systemd/system/aos-unit-stopped.service",
        "./usr/lib/systemd/system/aos-unit@.service",
        "./usr/lib/systemd/system/aos-unit-stopped@.service",
        "./usr/lib/systemd/system/aos-unit-user@.service",
        "./usr/lib/sysusers.d/aos-unit.conf",
        "./usr/lib/tmpfiles.d/aos-unit.conf",
        "./usr/lib/sysctl.d/50-aos-unit.conf",
        "./usr/share/polkit-1/rules.d/50-aos-unit.rules",
        "./etc/aos-unit/unit_config.yaml",
        "./etc/aos-unit/runtime.conf",
        "./etc/logrotate.d/aos-unit",
        "./usr/share/bash-completion/completions/aos-unit",
        "./usr/share/zsh/vendor-completions/_aos-unit",
        "./usr/share/man/man8/aos-unit.8.gz",
        "./usr/share/man/man5/aos-unit.conf.5.gz",
      ]
    ) assert.ok(list.includes(path), `${path} in the package`);
    const control = (await run(["dpkg-deb", "-f", deb, "Depends", "Recommends"])).stdout;
    for (
      const dep of [
        "qemu-system-x86",
        "ovmf",
        "dnsmasq-base",
        "nftables",
        "iproute2",
        "conntrack",
        "systemd",
        "polkitd",
      ]
    ) {
      assert.match(control, new RegExp(`\\b${dep}\\b`), `depends on ${dep}`);
    }
    assert.match(control, /Recommends: .*systemd-resolved/);
    // aarch64 guests are optional on an x86_64 host: their emulator is only suggested.
    const suggests = (await run(["dpkg-deb", "-f", deb, "Suggests"])).stdout;
    assert.match(suggests, /qemu-system-arm/);
    assert.match(suggests, /qemu-efi-aarch64/);
    assert.doesNotMatch(control, /qemu-system-arm|qemu-efi-aarch64/);
    const conffiles =
      (await run(["bash", "-c", `dpkg-deb --ctrl-tarfile '${deb}' | tar -xO ./conffiles`])).stdout;
    assert.match(conffiles, /\/etc\/aos-unit\/unit_config\.yaml/);
    const lint = await run(["lintian", "--tag-display-limit", "0", deb]);
    const findings = lint.stdout.split("\n").filter((l) => /^[EW]: /.test(l));
    assert.deepEqual(findings, [], "lintian: no errors, no unexplained warnings");
    console.log(`package: ${Math.round(Deno.statSync(deb).size / 1024 / 1024)} MiB (gzip -1)`);
  } finally {
    await Deno.remove(out, { recursive: true }).catch(() => {});
  }
});
