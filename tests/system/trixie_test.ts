/** Tier 3 on Debian trixie (13, systemd 257): every scenario (see scenario.ts). */

import { registerScenarios } from "./scenario.ts";

registerScenarios("trixie");
