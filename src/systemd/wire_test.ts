import assert from "node:assert/strict";
import dbusNextMarshall from "dbus-next/lib/marshall.js";
import {
  decodeMessage,
  encodeMessage,
  marshal,
  type Message,
  messageLength,
  MessageType,
  parseSignature,
  unmarshal,
  Variant,
  WireError,
} from "./wire.ts";

/** Our values in dbus-next's low-level form: a variant as [signature, value], dicts as pairs. */
function toDbusNext(type: string, value: unknown): unknown {
  const [t] = parseSignature(type);
  const convert = (code: ReturnType<typeof parseSignature>[number], v: unknown): unknown => {
    if (code.code === "v") {
      const variant = v as Variant;
      return [variant.signature, toDbusNext(variant.signature, variant.value)];
    }
    if (code.code === "a") {
      const element = code.children[0]!;
      const items = element.code === "{" && !Array.isArray(v)
        ? Object.entries(v as Record<string, unknown>)
        : [...(v as Iterable<unknown>)];
      return items.map((item) => convert(element, item));
    }
    if (code.code === "(" || code.code === "{") {
      return (v as unknown[]).map((item, i) => convert(code.children[i]!, item));
    }
    // dbus-next takes 64-bit integers as strings or numbers.
    return typeof v === "bigint" ? v.toString() : v;
  };
  return convert(t!, value);
}

function theirs(signature: string, values: unknown[], offset = 0): Uint8Array {
  const types = parseSignature(signature);
  let at = 0;
  const sigs = types.map((t) => {
    const start = at;
    const take = (x: typeof t): number => {
      at++;
      if (x.code === "a") take(x.children[0]!);
      else if (x.code === "(" || x.code === "{") {
        x.children.forEach(take);
        at++;
      }
      return at;
    };
    take(t);
    return signature.slice(start, at);
  });
  const converted = values.map((v, i) => toDbusNext(sigs[i]!, v));
  return new Uint8Array(dbusNextMarshall(signature, converted, offset));
}

/** A StartTransientUnit body as the broker sends it: every property type it uses. */
const TRANSIENT: [string, unknown[]] = [
  "ssa(sv)a(sa(sv))",
  [
    "aos-node-lab1_main.service",
    "fail",
    [
      ["Description", new Variant("s", "AosEdge node main (QEMU x86_64, TCG) é")],
      ["ExecStart", new Variant("a(sasb)", [["/usr/bin/qemu", ["qemu", "-m", "512"], false]])],
      ["Environment", new Variant("as", ["A=1", "AOS_UNIT_NAME=lab1"])],
      ["MemoryMax", new Variant("t", 536870912n)],
      ["RuntimeMaxUSec", new Variant("t", 0xffffffffffffffffn)],
      ["OOMScoreAdjust", new Variant("i", -500)],
      ["Nice", new Variant("x", -3n)],
      ["DynamicUser", new Variant("b", true)],
      ["UMask", new Variant("u", 0o007)],
      ["BindPaths", new Variant("a(ssbt)", [["/a", "/a", false, 16384n]])],
      ["TemporaryFileSystem", new Variant("a(ss)", [["/run/aos-units", "ro"]])],
      ["IPAddressDeny", new Variant("a(iayu)", [[2, new Uint8Array([10, 0, 0, 0]), 8]])],
      ["CPUWeight", new Variant("t", 100n)],
    ],
    [],
  ],
];

const CASES: [string, unknown[]][] = [
  TRANSIENT,
  ["yndqux", [7, -2, 1.5, 65535, 4000000000, -9007199254740993n]],
  ["sogb", ["é", "/org/freedesktop/systemd1/unit/aos_2dunit_2eservice", "a(sv)", false]],
  ["a{sv}", [{ ActiveState: new Variant("s", "active"), NRestarts: new Variant("u", 3) }]],
  ["ay", [new Uint8Array([1, 2, 3, 255])]],
  ["aay", [[new Uint8Array([]), new Uint8Array([9])]]],
  ["at", [[1n, 2n]]],
  ["a(ssssssouso)", [[["u.service", "d", "loaded", "active", "running", "", "/o", 0, "", "/"]]]],
  ["iuoa(iayu)", [1, 2, "/x", [[10, new Uint8Array([192, 0, 2, 1]), 53]]]],
];

Deno.test("marshal writes what dbus-next writes, for every type the broker and manager send", () => {
  for (const [signature, values] of CASES) {
    for (const offset of [0, 8]) {
      assert.deepEqual(
        marshal(signature, values, offset),
        theirs(signature, values, offset),
        signature,
      );
    }
  }
});

/** What unmarshal gives back for a value marshal took (the forms it takes are wider). */
function normal(v: unknown): unknown {
  if (v instanceof Variant) return new Variant(v.signature, normal(v.value));
  if (v instanceof Uint8Array) return [...v];
  if (Array.isArray(v)) return v.map(normal);
  if (v && typeof v === "object") {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normal(x)]));
  }
  return v;
}

Deno.test("unmarshal reads back what marshal wrote", () => {
  for (const [signature, values] of CASES) {
    const read = unmarshal(signature, marshal(signature, values));
    assert.deepEqual(normal(read), normal(values), signature);
  }
  // 64-bit integers come back as bigints, the numbers they were given as too.
  assert.deepEqual(unmarshal("tx", marshal("tx", [5, -5])), [5n, -5n]);
});

Deno.test("a message is encoded as dbus-next encodes it, and decoded back", () => {
  const m: Message = {
    type: MessageType.METHOD_CALL,
    flags: 2,
    serial: 7,
    destination: "org.freedesktop.systemd1",
    path: "/org/freedesktop/systemd1",
    interface: "org.freedesktop.systemd1.Manager",
    member: "StartTransientUnit",
    signature: TRANSIENT[0],
    body: TRANSIENT[1],
  };
  const ours = encodeMessage(m);
  // The header as dbus-next writes it (fields in code order), padded to 8, then the body.
  const header = theirs("yyyyuua(yv)", [
    "l".charCodeAt(0),
    1,
    2,
    1,
    marshal(TRANSIENT[0], TRANSIENT[1]).length,
    7,
    [
      [1, new Variant("o", m.path)],
      [2, new Variant("s", m.interface)],
      [3, new Variant("s", m.member)],
      [6, new Variant("s", m.destination)],
      [8, new Variant("g", m.signature)],
    ],
  ]);
  const padded = header.length + ((8 - (header.length % 8)) % 8);
  assert.deepEqual(ours.subarray(0, header.length), header);
  assert.deepEqual(ours.subarray(header.length, padded), new Uint8Array(padded - header.length));
  assert.deepEqual(ours.subarray(padded), theirs(TRANSIENT[0], TRANSIENT[1], padded));
  assert.equal(messageLength(ours.subarray(0, 16)), ours.length);
  assert.equal(messageLength(ours.subarray(0, 15)), undefined);
  const back = decodeMessage(ours);
  assert.deepEqual(normal(back), normal({ ...m, body: TRANSIENT[1] }));
  // No body, no signature field.
  const hello = encodeMessage({
    type: MessageType.METHOD_CALL,
    serial: 1,
    destination: "org.freedesktop.DBus",
    path: "/org/freedesktop/DBus",
    interface: "org.freedesktop.DBus",
    member: "Hello",
  });
  assert.equal(hello.length % 8, 0);
  assert.deepEqual(decodeMessage(hello).body, []);
  assert.equal(decodeMessage(hello).signature, undefined);
});

Deno.test("bad signatures, values and messages are WireErrors", () => {
  for (const bad of ["a", "(s", "{sv}x", "a{vs}", "z"]) {
    assert.throws(() => parseSignature(bad), WireError, bad);
  }
  assert.throws(() => marshal("s", [1]), WireError);
  assert.throws(() => marshal("u", [1.5]), WireError);
  assert.throws(() => marshal("v", ["x"]), WireError);
  assert.throws(() => marshal("ss", ["x"]), WireError);
  assert.throws(() => unmarshal("s", new Uint8Array([9, 0, 0, 0, 65])), WireError);
  const big = new Uint8Array(16);
  big[0] = "B".charCodeAt(0);
  assert.throws(() => messageLength(big), WireError);
});
