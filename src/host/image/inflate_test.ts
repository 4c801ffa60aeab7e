import assert from "node:assert/strict";
import { constants, deflateRawSync, inflateRawSync } from "node:zlib";
import { InflateError, inflateRaw } from "./inflate.ts";

/** Bytes that compress in every way DEFLATE has: repeats near and far, text, noise. */
function sample(seed: number, size: number): Uint8Array {
  let x = seed;
  const next = () => (x = (x * 1103515245 + 12345) >>> 0) >>> 16;
  const out = new Uint8Array(size);
  const words = ["aos", "unit", "node", " ", "\n", "main", "10.0.0.100", "\0\0\0\0"];
  for (let i = 0; i < size;) {
    const kind = next() % 4;
    if (kind === 0) out[i++] = next() & 0xff;
    else if (kind === 1 && i > 40) {
      const from = i - 1 - (next() % Math.min(i, 30000));
      const len = 3 + (next() % 250);
      for (let k = 0; k < len && i < size; k++) out[i++] = out[from + k]!;
    } else {
      for (const c of new TextEncoder().encode(words[next() % words.length]!)) {
        if (i < size) out[i++] = c;
      }
    }
  }
  return out;
}

Deno.test("inflateRaw: decodes what zlib deflates, stored, fixed and dynamic blocks", () => {
  for (const size of [0, 1, 100, 4096, 65536]) {
    for (const seed of [1, 2, 3]) {
      const data = sample(seed, size);
      for (
        const options of [
          { level: 0 },
          { level: 1 },
          { level: 9 },
          { level: 6, strategy: constants.Z_FIXED },
          { level: 6, strategy: constants.Z_HUFFMAN_ONLY },
          { level: 6, strategy: constants.Z_RLE },
        ]
      ) {
        const packed = deflateRawSync(data, options);
        assert.deepEqual(
          inflateRaw(packed, 65536),
          data,
          `${size} ${seed} ${JSON.stringify(options)}`,
        );
      }
    }
  }
});

Deno.test("inflateRaw: truncated input gives what zlib's Z_SYNC_FLUSH gives; padding is ignored", () => {
  const data = sample(7, 65536);
  const packed = deflateRawSync(data, { level: 6 });
  const padded = new Uint8Array(packed.length + 300);
  padded.set(packed);
  padded.fill(0xa5, packed.length);
  assert.deepEqual(inflateRaw(padded, 65536), data);
  // A sync-flushed stream without its final block: zlib returns the flushed bytes.
  const half = deflateRawSync(data.subarray(0, 30000), { finishFlush: constants.Z_SYNC_FLUSH });
  const node = inflateRawSync(half, { finishFlush: constants.Z_SYNC_FLUSH });
  assert.deepEqual(inflateRaw(half, 65536), new Uint8Array(node));
  assert.deepEqual(inflateRaw(half, 65536), data.subarray(0, 30000));
});

Deno.test("inflateRaw: more than the bound or corrupt data is an InflateError, never a hang", () => {
  const zeros = deflateRawSync(new Uint8Array(1 << 20), { level: 9 });
  assert.throws(() => inflateRaw(zeros, 65536), InflateError);
  let x = 99;
  for (let trial = 0; trial < 300; trial++) {
    const junk = new Uint8Array(64 + (trial % 200)).map(() => (x = (x * 69069 + 1) >>> 0) >>> 24);
    try {
      assert.ok(inflateRaw(junk, 65536).length <= 65536);
    } catch (error) {
      assert.ok(error instanceof InflateError, String(error));
    }
  }
});
