/** Tier 3 on Debian bookworm (12, systemd 252): see scenario.ts. */

import { systemScenario } from "./scenario.ts";

Deno.test({
  name: "the aos-unit package under a real systemd: bookworm",
  sanitizeResources: false,
  sanitizeOps: false,
}, systemScenario("bookworm"));
