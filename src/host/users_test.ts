import assert from "node:assert/strict";
import { parseGroup, parsePasswd } from "./users.ts";

Deno.test("parsePasswd() and parseGroup() read the numeric ids", () => {
  const passwd =
    "root:x:0:0:root:/root:/bin/bash\naos-unit:x:998:997:AosEdge:/var/lib/aos-unit:/usr/sbin/nologin\n";
  assert.deepEqual(parsePasswd(passwd, "aos-unit"), { uid: 998, gid: 997 });
  assert.equal(parsePasswd(passwd, "aos"), undefined, "no prefix match");
  assert.equal(parseGroup("kvm:x:993:\naos-unit:x:997:\n", "kvm"), 993);
  assert.equal(parseGroup("kvm:x:993:\n", "libvirt"), undefined);
});
