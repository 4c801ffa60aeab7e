/** Tier 3 on Debian trixie (13, systemd 257): see scenario.ts. */

import { systemScenario } from "./scenario.ts";

Deno.test({
  name: "the aos-unit package under a real systemd: trixie",
  sanitizeResources: false,
  sanitizeOps: false,
}, systemScenario("trixie"));
