/** Tier 3, first lane: its share of every chosen scenario on every chosen release. */

import { registerLane } from "./scenario.ts";

registerLane(0);
