import assert from "node:assert/strict";
import type { Forward } from "../base/config_types.ts";
import { crossUnitForwardClashes, forwardsTaken, heldForwards } from "./forwards.ts";

function fwd(host: number, line: number, file: string, more: Partial<Forward> = {}): Forward {
  return { host, port: 22, proto: "tcp", at: { file, line, column: 9 }, ...more };
}

const A = "/etc/aos-unit/units/lab1/unit_config.yaml";
const B = "/etc/aos-unit/units/lab2/unit_config.yaml";

Deno.test("crossUnitForwardClashes(): one host port in two units is an error at both lines", () => {
  const lab1 = { label: "unit lab1", nodes: [{ name: "main", forwards: [fwd(2222, 7, A)] }] };
  const lab2 = {
    label: "unit lab2",
    nodes: [{ name: "main", forwards: [fwd(2222, 9, B), fwd(2223, 10, B)] }],
  };
  const d = crossUnitForwardClashes(lab1, [lab2]);
  assert.deepEqual(d.map((x) => `${x.file}:${x.line}`), [`${A}:7`, `${B}:9`]);
  assert.match(
    d[0]!.message,
    /tcp\/2222 is also forwarded by unit lab2 \(to "main", .*lab2\/unit_config\.yaml:9:9\)/,
  );
  assert.match(
    d[1]!.message,
    /also forwarded by unit lab1 \(to "main", .*lab1\/unit_config\.yaml:7:9\)/,
  );
  // Another protocol, or two different host addresses, do not clash.
  const udp = {
    label: "unit lab2",
    nodes: [{ name: "m", forwards: [fwd(2222, 9, B, { proto: "udp" })] }],
  };
  assert.deepEqual(crossUnitForwardClashes(lab1, [udp]), []);
  const on = (address: string, file: string) => ({
    label: file,
    nodes: [{ name: "m", forwards: [fwd(2222, 9, file, { address })] }],
  });
  assert.deepEqual(crossUnitForwardClashes(on("192.0.2.1", A), [on("192.0.2.2", B)]), []);
  assert.equal(
    crossUnitForwardClashes(lab1, [on("192.0.2.2", B)]).length,
    2,
    "any address clashes",
  );
});

Deno.test("heldForwards() reads a unit's forwards from its table; forwardsTaken() names the unit", () => {
  const table = `table inet aos_unit_lab2 {
	chain prerouting {
		iifname @uplinks fib daddr type local tcp dport 2222 counter packets 0 bytes 0 dnat ip to 10.0.0.100:22 comment "forward tcp/2222 to main:22"
		iifname @uplinks fib daddr type local ip daddr 192.0.2.7 udp dport 5000 counter packets 0 bytes 0 dnat ip to 10.0.0.100:5000 comment "forward udp/5000 to main:5000"
		iifname "aosbr1" ip daddr 10.0.0.1 udp dport 53 counter packets 0 bytes 0 dnat ip to 10.0.0.1:5300
	}
	chain forward {
		oifname "aosbr1" ip daddr 10.0.0.100 tcp dport 22 ct status dnat counter packets 0 bytes 0 accept comment "forwarded to main:22"
	}
}`;
  const held = heldForwards(table);
  assert.deepEqual(held, [
    { proto: "tcp", host: 2222, to: "main:22" },
    { proto: "udp", host: 5000, address: "192.0.2.7", to: "main:5000" },
  ]);
  const mine = [{ name: "main", forwards: [fwd(2222, 7, A), fwd(2224, 8, A)] }];
  const d = forwardsTaken(mine, [{ label: "unit lab2", forwards: held }]);
  assert.equal(d.length, 1);
  assert.equal(d[0]!.line, 7);
  assert.match(d[0]!.message, /tcp\/2222 is taken: running unit lab2 forwards it \(to main:22\)/);
});
