import assert from "node:assert/strict";
import { formatRuntimeConf, parseRuntimeConf, RUNTIME_DEFAULTS } from "./runtime_conf.ts";

Deno.test("parseRuntimeConf() applies the documented defaults when the file is missing", () => {
  const { config, diagnostics } = parseRuntimeConf("/etc/aos-unit/runtime.conf", undefined);
  assert.deepEqual(diagnostics, []);
  assert.equal(
    formatRuntimeConf(config),
    Object.entries(RUNTIME_DEFAULTS).map(([k, v]) => `${k}="${v}"`).join("\n") + "\n",
  );
});

Deno.test("parseRuntimeConf() reads both quote styles, export, comments and CRLF", () => {
  const text = [
    "# comment",
    "",
    `DHCP_CIDR="10.0.0.0/24"`,
    `  export DNS_ALT_PORT='5353'  # trailing comment`,
    "UPSTREAM_DNS=192.0.2.1#53\r",
    `INTERNET_INTERFACE=""`,
    "ENABLE_KVM=no",
  ].join("\n");
  const { config, diagnostics } = parseRuntimeConf("r.conf", text);
  assert.deepEqual(diagnostics, []);
  assert.equal(config.subnet.prefix, 24);
  assert.equal(config.dnsPort, 5353);
  assert.equal(config.upstreamDns, "192.0.2.1#53");
  assert.equal(config.internetInterface, undefined);
  assert.equal(config.enableKvm, false);
});

Deno.test("parseRuntimeConf() reports every bad line with its position", () => {
  const { diagnostics } = parseRuntimeConf("r.conf", `DNS_ALT_PORT=abc\nENABLE_KVM="perhaps"\n`);
  assert.deepEqual(
    diagnostics.map((d) => [d.line, d.column, d.message]),
    [
      [1, 14, `DNS_ALT_PORT must be a port number (1-65535), got "abc"`],
      [2, 12, `ENABLE_KVM must be true or false, got "perhaps"`],
    ],
  );
});
