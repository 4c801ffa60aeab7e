/** Every tier-3 scenario, in the order a release's suite runs them. */

import type { Scenario } from "../system_bed.ts";
import { arm } from "./arm.ts";
import { attacks } from "./attacks.ts";
import { faults } from "./faults.ts";
import { lifecycle } from "./lifecycle.ts";
import { snapshots } from "./snapshots.ts";
import { startFailures } from "./start_failures.ts";
import { stock } from "./stock.ts";
import { units } from "./units.ts";
import { upgrade } from "./upgrade.ts";

export const SCENARIOS: readonly Scenario[] = [
  lifecycle,
  attacks,
  faults,
  startFailures,
  upgrade,
  stock,
  snapshots,
  arm,
  units,
];
