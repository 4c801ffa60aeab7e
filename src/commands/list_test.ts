import assert from "node:assert/strict";
import { renderUnitList, unitList } from "./list.ts";

Deno.test("unitList(): the default unit first, then named units, then units only systemd has", () => {
  const entries = unitList(
    [
      {
        unit: "lab2",
        config: "/etc/aos-unit/units/lab2/unit_config.yaml",
        forwards: [
          { node: "main", proto: "tcp", host: 18089, port: 8089 },
          { node: "main", proto: "udp", host: 5000, port: 5000, address: "192.0.2.7" },
        ],
      },
      { unit: undefined, config: "/etc/aos-unit/unit_config.yaml" },
      { unit: "lab1", config: "/etc/aos-unit/units/lab1/unit_config.yaml" },
    ],
    [
      { name: "aos-unit.service", activeState: "active", subState: "running" },
      { name: "aos-unit@lab1.service", activeState: "activating", subState: "start" },
      { name: "aos-unit@gone.service", activeState: "active", subState: "running" },
      // Not a unit's manager: never listed.
      { name: "aos-unit@Bad_Name.service", activeState: "active", subState: "running" },
      { name: "aos-unit-dnsmasq.service", activeState: "active", subState: "running" },
    ],
  );
  assert.deepEqual(entries.map((e) => [e.name, e.service, e.state, e.config, e.hostDomain]), [
    ["default", "aos-unit.service", "active/running", "/etc/aos-unit/unit_config.yaml", "aos-unit"],
    [
      "lab1",
      "aos-unit@lab1.service",
      "activating/start",
      "/etc/aos-unit/units/lab1/unit_config.yaml",
      "lab1.aos-unit",
    ],
    [
      "lab2",
      "aos-unit@lab2.service",
      "inactive/dead",
      "/etc/aos-unit/units/lab2/unit_config.yaml",
      "lab2.aos-unit",
    ],
    ["gone", "aos-unit@gone.service", "active/running", null, "gone.aos-unit"],
  ]);
  assert.deepEqual(entries.map((e) => e.default), [true, false, false, false]);
  const text = renderUnitList(entries).split("\n");
  assert.match(text[0]!, /^UNIT +SERVICE +STATE +NODES RESOLVE AS +FORWARDS +CONFIGURATION$/);
  assert.match(
    text[3]!,
    / NODE\.lab2\.aos-unit +18089->main:8089,192\.0\.2\.7:udp\/5000->main:5000 /,
  );
  assert.deepEqual(entries[2]!.forwards[0], {
    node: "main",
    proto: "tcp",
    host: 18089,
    port: 8089,
  });
  assert.match(
    text[4]!,
    /^gone +aos-unit@gone\.service +active\/running +NODE\.gone\.aos-unit +- +\(gone\)$/,
  );
});
