/**
 * aos-unit@.service is aos-unit.service for unit %i, line for line: the same broker,
 * manager, limits and hardening; only its name, its user (aos-unit-%i), its directories (units/%i below the
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
      // Its own service user (aos-unit-user@.service makes it).
      "Requires=aos-unit-user@%i.service",
      "After=aos-unit-user@%i.service",
      "OnSuccess=aos-unit-stopped@%i.service",
      "Environment=AOS_UNIT_NAME=%i",
      "User=aos-unit-%i",
      // A named unit's network namespace (its mount is PID 1's: root deletes it).
      "ExecStopPost=-+/usr/bin/aos-unit cleanup --release-namespace",
      "ConfigurationDirectory=aos-unit/units/%i",
      "StateDirectory=aos-units/%i",
      "LogsDirectory=aos-units/%i",
      "ReadWritePaths=-/run/aos-units/%i",
      // Nothing of another unit in its mount namespace.
      "TemporaryFileSystem=/var/lib/aos-units:ro /var/log/aos-units:ro /run/aos-units:ro",
      "BindPaths=/var/lib/aos-units/%i /var/log/aos-units/%i -/run/aos-units/%i",
      "InaccessiblePaths=-/run/aos-unit -/var/lib/aos-unit/nodes -/var/lib/aos-unit/dhcp",
      "InaccessiblePaths=-/var/lib/aos-unit/snapshots -/var/log/aos-unit",
    ],
    removed: [
      "Description=AosEdge unit: main and secondary nodes as QEMU VMs",
      "OnSuccess=aos-unit-stopped.service",
      "User=aos-unit",
      "ConfigurationDirectory=aos-unit",
      "StateDirectory=aos-unit",
      "LogsDirectory=aos-unit",
      "ReadWritePaths=-/run/aos-unit",
      "InaccessiblePaths=-/var/lib/aos-units -/var/log/aos-units -/run/aos-units",
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
        "User=aos-unit-%i",
        "ExecStart=/usr/libexec/aos-unit/unit-stopped %i",
        "ReadWritePaths=-/run/aos-units/%i",
      ],
      removed: [
        "Description=aos-unit: take the unit down when it ended stopped (a stop that raced a restart)",
        "Before=aos-unit.service",
        "User=aos-unit",
        "ExecStart=/usr/libexec/aos-unit/unit-stopped",
        "ReadWritePaths=-/run/aos-unit",
      ],
    },
  );
});
