/**
 * The D-Bus wire format (the D-Bus specification, "Message Protocol"), pure: signatures,
 * marshalling of values and whole messages, little-endian. What the system bus client
 * (bus.ts) sends and reads, without Node's compatibility layer, which a D-Bus library
 * would load into the resident manager (aos-unit(8), FOOTPRINT).
 *
 * Values in JavaScript: y n q i u h as numbers, b as booleans, x t as bigints (numbers are
 * taken too), d as numbers, s o g as strings, v as Variant, structs as arrays, `ay` as a
 * Uint8Array (number[] taken too), a dictionary `a{..}` as a plain object (an array of
 * [key, value] pairs taken too), other arrays as arrays.
 */

/** A value of type `v`: its signature and the value. */
export class Variant {
  constructor(readonly signature: string, readonly value: unknown) {}
}

export const MessageType = { METHOD_CALL: 1, METHOD_RETURN: 2, ERROR: 3, SIGNAL: 4 } as const;
export const MessageFlag = { NO_REPLY_EXPECTED: 1, NO_AUTO_START: 2 } as const;

/** A message, as sent or read. */
export interface Message {
  type: number;
  flags?: number;
  serial?: number;
  path?: string;
  interface?: string;
  member?: string;
  errorName?: string;
  replySerial?: number;
  destination?: string;
  sender?: string;
  signature?: string;
  body?: unknown[];
}

/** A malformed signature or message, or a value that does not fit its type. */
export class WireError extends Error {
  override name = "WireError";
}

/** One complete type of a signature. */
export interface Type {
  code: string;
  /** An array's element, a struct's fields, a dict entry's key and value. */
  children: Type[];
}

const BASIC = "ybnqiuxtdhsog";
const ALIGN: Record<string, number> = {
  y: 1,
  b: 4,
  n: 2,
  q: 2,
  i: 4,
  u: 4,
  x: 8,
  t: 8,
  d: 8,
  h: 4,
  s: 4,
  o: 4,
  g: 1,
  v: 1,
  a: 4,
  "(": 8,
  "{": 8,
};

/** The complete types of a signature, in order. */
export function parseSignature(signature: string): Type[] {
  const out: Type[] = [];
  let at = 0;
  const one = (inArray = false): Type => {
    const c = signature[at++];
    if (c === undefined) throw new WireError(`signature ${signature} ends early`);
    if (BASIC.includes(c) || c === "v") return { code: c, children: [] };
    if (c === "a") return { code: "a", children: [one(true)] };
    if (c === "{" && !inArray) throw new WireError(`signature ${signature}: a dict entry alone`);
    if (c === "(" || c === "{") {
      const close = c === "(" ? ")" : "}";
      const children: Type[] = [];
      while (signature[at] !== close) {
        if (at >= signature.length) throw new WireError(`signature ${signature}: no ${close}`);
        children.push(one());
      }
      at++;
      if (c === "{" && (children.length !== 2 || !BASIC.includes(children[0]!.code))) {
        throw new WireError(`signature ${signature}: a dict entry is a basic key and a value`);
      }
      return { code: c, children };
    }
    throw new WireError(`signature ${signature}: unknown type ${c}`);
  };
  while (at < signature.length) out.push(one());
  return out;
}

/** A growable little-endian buffer; offsets count from the message's start. */
class Writer {
  bytes = new Uint8Array(256);
  view = new DataView(this.bytes.buffer);
  length = 0;

  constructor(readonly base = 0) {}

  reserve(n: number): void {
    if (this.length + n <= this.bytes.length) return;
    const bigger = new Uint8Array(Math.max(this.bytes.length * 2, this.length + n));
    bigger.set(this.bytes.subarray(0, this.length));
    this.bytes = bigger;
    this.view = new DataView(bigger.buffer);
  }

  align(n: number): void {
    const pad = (n - ((this.base + this.length) % n)) % n;
    this.reserve(pad);
    this.bytes.fill(0, this.length, this.length + pad);
    this.length += pad;
  }

  put(n: number, set: (view: DataView, at: number) => void): void {
    this.align(n);
    this.reserve(n);
    set(this.view, this.length);
    this.length += n;
  }

  raw(data: Uint8Array): void {
    this.reserve(data.length);
    this.bytes.set(data, this.length);
    this.length += data.length;
  }

  done(): Uint8Array {
    return this.bytes.slice(0, this.length);
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

function integer(value: unknown, code: string): number {
  const n = typeof value === "bigint" ? Number(value) : value;
  if (typeof n !== "number" || !Number.isInteger(n)) {
    throw new WireError(`${String(value)} is not an integer for type ${code}`);
  }
  return n;
}

function text(value: unknown, code: string): string {
  if (typeof value !== "string") throw new WireError(`${String(value)} is not a ${code} string`);
  return value;
}

function writeBasic(w: Writer, code: string, value: unknown): void {
  switch (code) {
    case "y":
      return w.put(1, (v, at) => v.setUint8(at, integer(value, code)));
    case "b":
      if (typeof value !== "boolean") throw new WireError(`${String(value)} is not a boolean`);
      return w.put(4, (v, at) => v.setUint32(at, value ? 1 : 0, true));
    case "n":
      return w.put(2, (v, at) => v.setInt16(at, integer(value, code), true));
    case "q":
      return w.put(2, (v, at) => v.setUint16(at, integer(value, code), true));
    case "i":
      return w.put(4, (v, at) => v.setInt32(at, integer(value, code), true));
    case "u":
    case "h":
      return w.put(4, (v, at) => v.setUint32(at, integer(value, code), true));
    case "x":
      return w.put(8, (v, at) => v.setBigInt64(at, BigInt(integer64(value, code)), true));
    case "t":
      return w.put(8, (v, at) => v.setBigUint64(at, BigInt(integer64(value, code)), true));
    case "d":
      if (typeof value !== "number") throw new WireError(`${String(value)} is not a double`);
      return w.put(8, (v, at) => v.setFloat64(at, value, true));
    case "s":
    case "o": {
      const bytes = encoder.encode(text(value, code));
      w.put(4, (v, at) => v.setUint32(at, bytes.length, true));
      w.raw(bytes);
      return w.raw(new Uint8Array(1));
    }
    case "g": {
      const bytes = encoder.encode(text(value, code));
      if (bytes.length > 255) throw new WireError("a signature is at most 255 bytes");
      w.put(1, (v, at) => v.setUint8(at, bytes.length));
      w.raw(bytes);
      return w.raw(new Uint8Array(1));
    }
  }
  throw new WireError(`not a basic type: ${code}`);
}

function integer64(value: unknown, code: string): bigint | number {
  if (typeof value === "bigint") return value;
  return integer(value, code);
}

function writeValue(w: Writer, type: Type, value: unknown): void {
  switch (type.code) {
    case "v": {
      if (!(value instanceof Variant)) throw new WireError("a v value must be a Variant");
      const inner = parseSignature(value.signature);
      if (inner.length !== 1) throw new WireError(`variant signature ${value.signature}`);
      writeBasic(w, "g", value.signature);
      return writeValue(w, inner[0]!, value.value);
    }
    case "a":
      return writeArray(w, type.children[0]!, value);
    case "(":
    case "{": {
      if (!Array.isArray(value) || value.length !== type.children.length) {
        throw new WireError(`a struct of ${type.children.length} expected`);
      }
      w.align(8);
      type.children.forEach((t, i) => writeValue(w, t, value[i]));
      return;
    }
    default:
      return writeBasic(w, type.code, value);
  }
}

function writeArray(w: Writer, element: Type, value: unknown): void {
  w.align(4);
  const lengthAt = w.length;
  w.put(4, () => {});
  w.align(ALIGN[element.code]!);
  const start = w.length;
  if (element.code === "y" && (value instanceof Uint8Array)) {
    w.raw(value);
  } else if (element.code === "{") {
    const entries = Array.isArray(value)
      ? value as unknown[][]
      : Object.entries(value as Record<string, unknown>);
    for (const entry of entries) writeValue(w, element, entry);
  } else {
    if (!Array.isArray(value)) throw new WireError("an array expected");
    for (const item of value) writeValue(w, element, item);
  }
  w.view.setUint32(lengthAt, w.length - start, true);
}

/** The body of a message: `values` marshalled by `signature`, from an 8-aligned offset. */
export function marshal(signature: string, values: readonly unknown[], base = 0): Uint8Array {
  const types = parseSignature(signature);
  if (types.length !== values.length) {
    throw new WireError(`signature ${signature} has ${types.length} values, not ${values.length}`);
  }
  const w = new Writer(base);
  types.forEach((t, i) => writeValue(w, t, values[i]));
  return w.done();
}

/** Reads values from a buffer; offsets count from the message's start. */
class Reader {
  at: number;
  readonly view: DataView;

  constructor(readonly bytes: Uint8Array, at: number) {
    this.at = at;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  align(n: number): void {
    this.at += (n - (this.at % n)) % n;
  }

  take(n: number): number {
    this.align(n);
    if (this.at + n > this.bytes.length) throw new WireError("message ends early");
    const at = this.at;
    this.at += n;
    return at;
  }

  string(length: number): string {
    if (this.at + length + 1 > this.bytes.length) throw new WireError("message ends early");
    const s = decoder.decode(this.bytes.subarray(this.at, this.at + length));
    this.at += length + 1;
    return s;
  }
}

function readValue(r: Reader, type: Type): unknown {
  const v = r.view;
  switch (type.code) {
    case "y":
      return v.getUint8(r.take(1));
    case "b":
      return v.getUint32(r.take(4), true) !== 0;
    case "n":
      return v.getInt16(r.take(2), true);
    case "q":
      return v.getUint16(r.take(2), true);
    case "i":
      return v.getInt32(r.take(4), true);
    case "u":
    case "h":
      return v.getUint32(r.take(4), true);
    case "x":
      return v.getBigInt64(r.take(8), true);
    case "t":
      return v.getBigUint64(r.take(8), true);
    case "d":
      return v.getFloat64(r.take(8), true);
    case "s":
    case "o":
      return r.string(v.getUint32(r.take(4), true));
    case "g":
      return r.string(v.getUint8(r.take(1)));
    case "v": {
      const signature = r.string(v.getUint8(r.take(1)));
      const inner = parseSignature(signature);
      if (inner.length !== 1) throw new WireError(`variant signature ${signature}`);
      return new Variant(signature, readValue(r, inner[0]!));
    }
    case "(":
    case "{":
      r.align(8);
      return type.children.map((t) => readValue(r, t));
    case "a": {
      const length = v.getUint32(r.take(4), true);
      const element = type.children[0]!;
      r.align(ALIGN[element.code]!);
      const end = r.at + length;
      if (end > r.bytes.length) throw new WireError("array past the message's end");
      if (element.code === "y") {
        r.at = end;
        return r.bytes.slice(end - length, end);
      }
      const items: unknown[] = [];
      while (r.at < end) items.push(readValue(r, element));
      if (element.code !== "{") return items;
      return Object.fromEntries(items as [PropertyKey, unknown][]);
    }
  }
  throw new WireError(`unknown type ${type.code}`);
}

/** Values of `signature` from `bytes` at `at` (an offset from the message's start). */
export function unmarshal(signature: string, bytes: Uint8Array, at = 0): unknown[] {
  const r = new Reader(bytes, at);
  return parseSignature(signature).map((t) => readValue(r, t));
}

const FIELDS = {
  path: [1, "o"],
  interface: [2, "s"],
  member: [3, "s"],
  errorName: [4, "s"],
  replySerial: [5, "u"],
  destination: [6, "s"],
  sender: [7, "s"],
  signature: [8, "g"],
} as const;
type Field = keyof typeof FIELDS;

/** A whole message, ready to send. */
export function encodeMessage(m: Message): Uint8Array {
  const signature = m.signature ?? "";
  const body = signature ? marshal(signature, m.body ?? []) : new Uint8Array();
  const fields: [number, Variant][] = [];
  for (const [name, [code, type]] of Object.entries(FIELDS) as [Field, [number, string]][]) {
    const value = name === "signature" ? (signature || undefined) : m[name];
    if (value !== undefined) fields.push([code, new Variant(type, value)]);
  }
  const header = marshal("yyyyuua(yv)", [
    "l".charCodeAt(0),
    m.type,
    m.flags ?? 0,
    1,
    body.length,
    m.serial ?? 0,
    fields,
  ]);
  const headerLength = header.length + ((8 - (header.length % 8)) % 8);
  const out = new Uint8Array(headerLength + body.length);
  out.set(header);
  out.set(body, headerLength);
  return out;
}

/** The length of the message at the start of `bytes`, once its fixed header is there. */
export function messageLength(bytes: Uint8Array): number | undefined {
  if (bytes.length < 16) return undefined;
  if (bytes[0] !== "l".charCodeAt(0)) throw new WireError("only little-endian messages are read");
  const view = new DataView(bytes.buffer, bytes.byteOffset, 16);
  const fields = view.getUint32(12, true);
  const headerLength = 16 + fields + ((8 - ((16 + fields) % 8)) % 8);
  return headerLength + view.getUint32(4, true);
}

/** The message that fills `bytes` (exactly messageLength(bytes) long). */
export function decodeMessage(bytes: Uint8Array): Message {
  const [, type, flags, , bodyLength, serial, fields] = unmarshal("yyyyuua(yv)", bytes) as [
    number,
    number,
    number,
    number,
    number,
    number,
    [number, Variant][],
  ];
  const m: Message = { type, flags, serial, body: [] };
  const byCode = new Map<number, Field>(
    (Object.entries(FIELDS) as [Field, readonly [number, string]][]).map(([k, [c]]) => [c, k]),
  );
  for (const [code, variant] of fields) {
    const name = byCode.get(code);
    if (name !== undefined) (m as unknown as Record<string, unknown>)[name] = variant.value;
  }
  if (m.signature && bodyLength > 0) {
    m.body = unmarshal(m.signature, bytes, bytes.length - bodyLength);
  }
  return m;
}
