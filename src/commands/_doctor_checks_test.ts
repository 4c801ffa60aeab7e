import assert from "node:assert/strict";
import { enabledControllers } from "./_doctor_checks.ts";

Deno.test("enabledControllers() reads /proc/cgroups' enabled column", () => {
  const text =
    "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t3\t40\t1\nmemory\t0\t1\t0\npids\t5\t40\t1\n";
  assert.deepEqual([...enabledControllers(text)].sort(), ["cpu", "pids"]);
});
