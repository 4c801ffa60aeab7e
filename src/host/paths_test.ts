import assert from "node:assert/strict";
import { FHS_PATHS, resolvePaths, unitPaths } from "./paths.ts";

const ROOTS = {
  configDir: "/etc/aos-unit",
  stateDir: "/var/lib/aos-unit",
  logsDir: "/var/log/aos-unit",
  runtimeDir: "/run/aos-unit",
};

Deno.test("the default unit's paths are the FHS roots, with its images and root's records", () => {
  assert.deepEqual(FHS_PATHS, {
    ...ROOTS,
    unit: undefined,
    imagesDir: "/var/lib/aos-unit",
    hostDir: "/run/aos-unit-root",
  });
  assert.deepEqual(resolvePaths(() => undefined), FHS_PATHS);
});

Deno.test("a named unit: configuration in units/NAME, the rest in root's aos-units/NAME; images and host records shared", () => {
  const lab = unitPaths(ROOTS, "lab1");
  assert.deepEqual(lab, {
    configDir: "/etc/aos-unit/units/lab1",
    stateDir: "/var/lib/aos-units/lab1",
    logsDir: "/var/log/aos-units/lab1",
    runtimeDir: "/run/aos-units/lab1",
    unit: "lab1",
    imagesDir: "/var/lib/aos-unit",
    hostDir: "/run/aos-unit-root",
  });
  // Directories that are the unit's own already (systemd's, in aos-unit@lab1 and its
  // transient units) are taken as they are: the same paths, never below them again.
  assert.deepEqual(unitPaths(lab, "lab1"), lab);
  const env: Record<string, string> = {
    CONFIGURATION_DIRECTORY: "/etc/aos-unit/units/lab1",
    STATE_DIRECTORY: "/var/lib/aos-units/lab1:/other",
    LOGS_DIRECTORY: "/var/log/aos-units/lab1/",
    RUNTIME_DIRECTORY: "/run/aos-units/lab1",
  };
  assert.deepEqual(resolvePaths((n) => env[n], undefined, "lab1"), lab);
  // A unit named like a suffix of another's path is not fooled by it.
  assert.equal(unitPaths(lab, "lab").stateDir, "/var/lib/aos-units/lab1s/lab");
});

Deno.test("--config-dir replaces only the unit's configuration directory", () => {
  const p = resolvePaths(() => undefined, "/tmp/cfg/", "lab1");
  assert.equal(p.configDir, "/tmp/cfg");
  assert.equal(p.stateDir, "/var/lib/aos-units/lab1");
  assert.equal(p.unit, "lab1");
});
