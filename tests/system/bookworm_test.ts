/** Tier 3 on Debian bookworm (12, systemd 252): every scenario (see scenario.ts). */

import { registerScenarios } from "./scenario.ts";

registerScenarios("bookworm");
