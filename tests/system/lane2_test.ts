/** Tier 3, second lane: its share of every chosen scenario on every chosen release. */

import { registerLane } from "./scenario.ts";

registerLane(1);
