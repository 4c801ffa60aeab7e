/** Runs inside the test bed: D-Bus call latency through aos-unit's own systemd1 layer. */
import { connectSystemBus } from "../../src/systemd/bus.ts";
import { Systemd } from "../../src/systemd/systemd1.ts";

const connectStart = performance.now();
const bus = await connectSystemBus();
const systemd = await Systemd.open(bus);
const connectMs = performance.now() - connectStart;
const reads: number[] = [];
for (let i = 0; i < 100; i++) {
  const t = performance.now();
  await systemd.unitState("aos-unit.service");
  reads.push(performance.now() - t);
}
const starts: number[] = [];
for (let i = 0; i < 10; i++) {
  const name = `aos-unit-bench-${i}.service`;
  const t = performance.now();
  const result = await systemd.startTransient({
    name,
    hash: "",
    properties: [["Type", "s", "oneshot"], ["ExecStart", "a(sasb)", [[
      "/bin/true",
      ["/bin/true"],
      false,
    ]]]],
  });
  starts.push(performance.now() - t);
  if (result !== "done") throw new Error(`${name}: ${result}`);
}
bus.disconnect();
console.log(JSON.stringify({ connectMs, reads, starts }));
