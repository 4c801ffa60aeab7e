/**
 * aos-unit@.service is aos-unit.service for unit %i, line for line: the same broker,
 * manager, limits and hardening; only its name, its directories (units/%i below the
 * default unit's) and the unit it names differ. Likewise aos-unit-stopped@.service.
 */

import assert from "node:assert/strict";

const UNITS = new URL("../../units", import.meta.url).pathname;

/** The unit's settings, comments and blank lines dropped. */
function settings(file: string): string[] {
  return Deno.readTextFileSync(`${UNITS}/${file}`).split("\n").filter((l) =>
    l.trim() !== "" && !l.startsWith("#")
  );
}

/** Lines of `b` not in `a`, and of `a` not in `b`. */
function difference(a: string[], b: string[]): { added: string[]; removed: string[] } {
  return { added: b.filter((l) => !a.includes(l)), removed: a.filter((l) => !b.includes(l)) };
}

Deno.test("aos-unit@.service differs from aos-unit.service only in the unit it runs", () => {
  assert.deepEqual(difference(settings("aos-unit.service"), settings("aos-unit@.service")), {
    added: [
      "Description=AosEdge unit %i: main and secondary nodes as QEMU VMs",
      "OnSuccess=aos-unit-stopped@%i.service",
      "Environment=AOS_UNIT_NAME=%i",
      // A named unit's network namespace (its mount is PID 1's: root deletes it).
      "ExecStopPost=-+/usr/bin/aos-unit cleanup --release-namespace",
      "ConfigurationDirectory=aos-unit/units/%i",
      "StateDirectory=aos-units/%i",
      "LogsDirectory=aos-units/%i",
      "ReadWritePaths=-/run/aos-units/%i",
    ],
    removed: [
      "Description=AosEdge unit: main and secondary nodes as QEMU VMs",
      "OnSuccess=aos-unit-stopped.service",
      "ConfigurationDirectory=aos-unit",
      "StateDirectory=aos-unit",
      "LogsDirectory=aos-unit",
      "ReadWritePaths=-/run/aos-unit",
    ],
  });
});

Deno.test("aos-unit-stopped@.service differs from aos-unit-stopped.service only in its unit", () => {
  assert.deepEqual(
    difference(settings("aos-unit-stopped.service"), settings("aos-unit-stopped@.service")),
    {
      added: [
        "Description=aos-unit: take unit %i down when it ended stopped (a stop that raced a restart)",
        "Before=aos-unit@%i.service",
        "Environment=AOS_UNIT_NAME=%i",
        "ExecStart=/usr/libexec/aos-unit/unit-stopped %i",
        "ReadWritePaths=-/run/aos-units/%i",
      ],
      removed: [
        "Description=aos-unit: take the unit down when it ended stopped (a stop that raced a restart)",
        "Before=aos-unit.service",
        "ExecStart=/usr/libexec/aos-unit/unit-stopped",
        "ReadWritePaths=-/run/aos-unit",
      ],
    },
  );
});
