import assert from "node:assert/strict";
import type { NodePlan, Plan } from "../plan/types.ts";
import { dhcpPreparationNeeded, openToDnsmasq, openToNode } from "./prepare.ts";
import type { Preparation } from "../plan/preparation.ts";

Deno.test("openToNode(): the node's files 0660 to the group, its directory 0750, the base image g+r", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const nodeDir = `${dir}/nodes/main`;
    Deno.mkdirSync(nodeDir, { recursive: true, mode: 0o770 });
    const file = (path: string, mode: number) => {
      Deno.writeFileSync(path, new Uint8Array(1));
      Deno.chmodSync(path, mode);
      return path;
    };
    const node = {
      name: "main",
      dir: nodeDir,
      overlay: file(`${nodeDir}/overlay.qcow2`, 0o640),
      serialLog: file(`${dir}/main-serial.log`, 0o600),
      efiVars: { path: file(`${nodeDir}/efivars.fd`, 0o644), template: "" },
      image: { path: file(`${dir}/base.qcow2`, 0o600) },
    } as unknown as NodePlan;
    const spool = `${nodeDir}/failures.spool`;
    const changed = openToNode(node, spool);
    const mode = (path: string) => Deno.statSync(path).mode! & 0o7777;
    for (const path of [node.overlay, node.serialLog, node.efiVars!.path, spool]) {
      assert.equal(mode(path), 0o660, path);
    }
    assert.equal(mode(nodeDir), 0o750, "the node makes nothing in its directory");
    assert.equal(mode(node.image.path), 0o640, "the base image readable, never writable");
    assert.equal(changed.length, 5);
    assert.deepEqual(openToNode(node, spool), [], "nothing to do the second time");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("openToDnsmasq(): the DHCP directory the group's, the service user's lease files 0660", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const dhcpDir = `${dir}/dhcp`;
    Deno.mkdirSync(dhcpDir, { mode: 0o750 });
    Deno.chmodSync(dhcpDir, 0o750);
    const leaseFile = `${dhcpDir}/dnsmasq.leases`;
    Deno.writeTextFileSync(leaseFile, "");
    Deno.chmodSync(leaseFile, 0o640);
    const plan = {
      dnsmasq: { dhcpDir, leaseFile },
      leaseState: `${dhcpDir}/leases.json`,
    } as unknown as Plan;
    assert.deepEqual(dhcpPreparationNeeded(plan), [`${dhcpDir} not 0770`]);
    Deno.chmodSync(dhcpDir, 0o770);
    assert.deepEqual(dhcpPreparationNeeded(plan), [`${leaseFile} not open to dnsmasq`]);
    Deno.chmodSync(dhcpDir, 0o750);
    assert.deepEqual(
      openToDnsmasq({ dhcpDir, leaseFile, leaseState: plan.leaseState } as Preparation),
      [dhcpDir, leaseFile],
    );
    assert.equal(Deno.statSync(dhcpDir).mode! & 0o7777, 0o770);
    assert.equal(Deno.statSync(leaseFile).mode! & 0o7777, 0o660);
    assert.deepEqual(dhcpPreparationNeeded(plan), []);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
