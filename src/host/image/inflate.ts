/**
 * Raw DEFLATE (RFC 1951) decoding into a bounded buffer, for qcow2's compressed
 * clusters. Written here, after zlib's puff.c, rather than taken from node:zlib: any
 * `node:` module loads Deno's Node compatibility layer, about 8 MiB of resident memory
 * and 25 ms of every cold start of the program (aos-unit(8), FOOTPRINT).
 *
 * Like zlib's inflate with Z_SYNC_FLUSH, input that ends before the final block gives
 * the bytes decoded so far; bytes after the final block are ignored (a cluster's last
 * sector is padded).
 */

export class InflateError extends Error {
  override name = "InflateError";
}

/** A canonical Huffman code: how many codes of each length, and the symbols in order. */
interface Huffman {
  counts: Uint16Array;
  symbols: Uint16Array;
}

const MAX_BITS = 15;
const LENGTH_BASE = [
  3,
  4,
  5,
  6,
  7,
  8,
  9,
  10,
  11,
  13,
  15,
  17,
  19,
  23,
  27,
  31,
  35,
  43,
  51,
  59,
  67,
  83,
  99,
  115,
  131,
  163,
  195,
  227,
  258,
];
const LENGTH_EXTRA = [
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  1,
  1,
  1,
  1,
  2,
  2,
  2,
  2,
  3,
  3,
  3,
  3,
  4,
  4,
  4,
  4,
  5,
  5,
  5,
  5,
  0,
];
const DIST_BASE = [
  1,
  2,
  3,
  4,
  5,
  7,
  9,
  13,
  17,
  25,
  33,
  49,
  65,
  97,
  129,
  193,
  257,
  385,
  513,
  769,
  1025,
  1537,
  2049,
  3073,
  4097,
  6145,
  8193,
  12289,
  16385,
  24577,
];
const DIST_EXTRA = [
  0,
  0,
  0,
  0,
  1,
  1,
  2,
  2,
  3,
  3,
  4,
  4,
  5,
  5,
  6,
  6,
  7,
  7,
  8,
  8,
  9,
  9,
  10,
  10,
  11,
  11,
  12,
  12,
  13,
  13,
];
/** The order in which a dynamic block lists its code-length code's lengths. */
const CLEN_ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];

/** Input ran out: the caller keeps what was decoded (Z_SYNC_FLUSH). */
class EndOfInput extends Error {}

function huffman(lengths: ArrayLike<number>): Huffman {
  const counts = new Uint16Array(MAX_BITS + 1);
  for (let i = 0; i < lengths.length; i++) counts[lengths[i]!]!++;
  counts[0] = 0;
  let left = 1;
  for (let len = 1; len <= MAX_BITS; len++) {
    left = left * 2 - counts[len]!;
    if (left < 0) throw new InflateError("an over-subscribed Huffman code");
  }
  const offsets = new Uint16Array(MAX_BITS + 2);
  for (let len = 1; len <= MAX_BITS; len++) offsets[len + 1] = offsets[len]! + counts[len]!;
  const symbols = new Uint16Array(lengths.length);
  for (let s = 0; s < lengths.length; s++) {
    const len = lengths[s]!;
    if (len !== 0) symbols[offsets[len]!++] = s;
  }
  return { counts, symbols };
}

const FIXED_LITERALS = huffman(
  Array.from({ length: 288 }, (_, i) => (i < 144 ? 8 : i < 256 ? 9 : i < 280 ? 7 : 8)),
);
const FIXED_DISTANCES = huffman(new Array(30).fill(5));

/** Decoder state: the input read bit by bit (LSB first), the output bounded. */
class Inflater {
  private pos = 0;
  private bitBuf = 0;
  private bitCount = 0;
  length = 0;

  constructor(private readonly input: Uint8Array, readonly out: Uint8Array) {}

  bits(n: number): number {
    let value = this.bitBuf;
    while (this.bitCount < n) {
      if (this.pos >= this.input.length) throw new EndOfInput();
      value |= this.input[this.pos++]! << this.bitCount;
      this.bitCount += 8;
    }
    this.bitBuf = value >>> n;
    this.bitCount -= n;
    return value & ((1 << n) - 1);
  }

  decode(h: Huffman): number {
    let code = 0;
    let first = 0;
    let index = 0;
    for (let len = 1; len <= MAX_BITS; len++) {
      code |= this.bits(1);
      const count = h.counts[len]!;
      if (code - count < first) return h.symbols[index + (code - first)]!;
      index += count;
      first = (first + count) << 1;
      code <<= 1;
    }
    throw new InflateError("an invalid Huffman code");
  }

  put(byte: number): void {
    if (this.length >= this.out.length) {
      throw new InflateError(`it inflates to more than ${this.out.length} bytes`);
    }
    this.out[this.length++] = byte;
  }

  stored(): void {
    this.bitBuf = 0;
    this.bitCount = 0;
    if (this.pos + 4 > this.input.length) throw new EndOfInput();
    const len = this.input[this.pos]! | (this.input[this.pos + 1]! << 8);
    const nlen = this.input[this.pos + 2]! | (this.input[this.pos + 3]! << 8);
    if (len !== (~nlen & 0xffff)) throw new InflateError("a stored block's length is corrupt");
    this.pos += 4;
    for (let i = 0; i < len; i++) {
      if (this.pos >= this.input.length) throw new EndOfInput();
      this.put(this.input[this.pos++]!);
    }
  }

  codes(literals: Huffman, distances: Huffman): void {
    for (;;) {
      const symbol = this.decode(literals);
      if (symbol < 256) {
        this.put(symbol);
        continue;
      }
      if (symbol === 256) return;
      const l = symbol - 257;
      if (l >= 29) throw new InflateError("an invalid length code");
      const length = LENGTH_BASE[l]! + this.bits(LENGTH_EXTRA[l]!);
      const d = this.decode(distances);
      if (d >= 30) throw new InflateError("an invalid distance code");
      const distance = DIST_BASE[d]! + this.bits(DIST_EXTRA[d]!);
      if (distance > this.length) throw new InflateError("a distance before the output's start");
      for (let i = 0; i < length; i++) this.put(this.out[this.length - distance]!);
    }
  }

  dynamic(): void {
    const nlen = this.bits(5) + 257;
    const ndist = this.bits(5) + 1;
    const ncode = this.bits(4) + 4;
    if (nlen > 286 || ndist > 30) throw new InflateError("too many length or distance codes");
    const clen = new Array<number>(19).fill(0);
    for (let i = 0; i < ncode; i++) clen[CLEN_ORDER[i]!] = this.bits(3);
    const lengthCode = huffman(clen);
    const lengths: number[] = [];
    while (lengths.length < nlen + ndist) {
      const symbol = this.decode(lengthCode);
      if (symbol < 16) {
        lengths.push(symbol);
        continue;
      }
      let repeat: number;
      let value = 0;
      if (symbol === 16) {
        if (lengths.length === 0) throw new InflateError("a repeat with no length before it");
        value = lengths.at(-1)!;
        repeat = 3 + this.bits(2);
      } else repeat = symbol === 17 ? 3 + this.bits(3) : 11 + this.bits(7);
      if (lengths.length + repeat > nlen + ndist) throw new InflateError("too many code lengths");
      for (let i = 0; i < repeat; i++) lengths.push(value);
    }
    if (lengths[256] === 0) throw new InflateError("no end-of-block code");
    this.codes(huffman(lengths.slice(0, nlen)), huffman(lengths.slice(nlen)));
  }
}

/**
 * Inflates raw DEFLATE data into a buffer of `maxOutput` bytes.
 * @returns the decoded bytes (a view of that buffer)
 * @throws {InflateError} for corrupt data, or output beyond `maxOutput`
 */
export function inflateRaw(input: Uint8Array, maxOutput: number): Uint8Array {
  const inflater = new Inflater(input, new Uint8Array(maxOutput));
  try {
    for (let last = 0; !last;) {
      last = inflater.bits(1);
      const type = inflater.bits(2);
      if (type === 0) inflater.stored();
      else if (type === 1) inflater.codes(FIXED_LITERALS, FIXED_DISTANCES);
      else if (type === 2) inflater.dynamic();
      else throw new InflateError("an invalid block type");
    }
  } catch (error) {
    if (!(error instanceof EndOfInput)) throw error;
  }
  return inflater.out.subarray(0, inflater.length);
}
