import assert from "node:assert/strict";
import { permits } from "./file_access.ts";

const QEMU = { name: "aos-unit", uid: 998, gids: [997] };

Deno.test("permits() reads owner, group and other bits as the kernel does", () => {
  assert.ok(permits({ uid: 998, gid: 997, mode: 0o640 }, QEMU, "rw"));
  assert.ok(!permits({ uid: 0, gid: 0, mode: 0o644 }, QEMU, "rw"), "a serial log left to root");
  assert.ok(permits({ uid: 0, gid: 0, mode: 0o644 }, QEMU, "r"), "firmware is world-readable");
  assert.ok(permits({ uid: 0, gid: 997, mode: 0o660 }, QEMU, "rw"), "through the group");
  assert.ok(!permits({ uid: 998, gid: 997, mode: 0o400 }, QEMU, "rw"));
  assert.ok(!permits({ uid: 0, gid: 0, mode: 0o600 }, QEMU, "r"));
  assert.ok(permits({ uid: 0, gid: 0, mode: 0o600 }, { name: "root", uid: 0, gids: [0] }, "rw"));
});
