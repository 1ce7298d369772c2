/** The address word table: addresses (and prefixes) as four 32-bit words, numbered in the order they come. Pure but for its hash seed. */

/** `a` copied into a new array of `size` (the rest zero): how every array here grows. */
export function grown<T extends Int32Array | Float64Array>(a: T, size: number): T {
  const b = new (a.constructor as new (length: number) => T)(size);
  b.set(a);
  return b;
}

/**
 * Numbers for 128-bit keys (an address as four 32-bit words, or a prefix of one with the rest
 * zero), in the order they come: an open-addressing table of (number + 1), 0 = free.
 */
export class WordTable {
  words: Int32Array;
  private slots: Int32Array;
  size = 0;

  /**
   * @param capacity keys it holds before it first grows
   * @param words its keys' array, taken as it is (WordTable.of), else a new one for `capacity`
   */
  constructor(capacity = 64, words: Int32Array | null = null) {
    const keys = Math.max(64, capacity);
    this.words = words ?? new Int32Array(keys * 4);
    this.slots = new Int32Array(2 ** Math.ceil(Math.log2(keys * 2)));
  }

  /** A table of the first `count` keys of `words`, numbered in their order: they must be distinct (a table's own, from another thread). */
  static of(words: Int32Array, count: number): WordTable {
    const table = new WordTable(count, words);
    table.size = count;
    for (let id = 0; id < count; id++) table.place(id);
    return table;
  }

  /** Empties it, keeping its arrays: `this`. */
  cleared(): this {
    this.size = 0;
    this.slots.fill(0);
    return this;
  }

  /** The number of the key `from[at..at+3]`, made when missing (then it is size - 1). */
  idOf(from: Int32Array, at: number): number {
    const a = from[at]!;
    const b = from[at + 1]!;
    const c = from[at + 2]!;
    const d = from[at + 3]!;
    const mask = this.slots.length - 1;
    let i = hashWords(a, b, c, d) & mask;
    for (; ; i = (i + 1) & mask) {
      const v = this.slots[i]!;
      if (v === 0) break;
      const w = (v - 1) * 4;
      if (this.words[w + 3] === d && this.words[w + 2] === c && this.words[w + 1] === b && this.words[w] === a) return v - 1;
    }
    const id = this.size++;
    if (id * 4 + 4 > this.words.length) this.words = grown(this.words, this.words.length * 2);
    this.words[id * 4] = a;
    this.words[id * 4 + 1] = b;
    this.words[id * 4 + 2] = c;
    this.words[id * 4 + 3] = d;
    if (this.size * 2 > this.slots.length) {
      this.slots = new Int32Array(this.slots.length * 2);
      for (let k = 0; k < this.size; k++) this.place(k);
    } else this.slots[i] = id + 1; // the free slot the search ended on
    return id;
  }

  private place(id: number): void {
    const w = id * 4;
    const mask = this.slots.length - 1;
    let i = hashWords(this.words[w]!, this.words[w + 1]!, this.words[w + 2]!, this.words[w + 3]!) & mask;
    while (this.slots[i] !== 0) i = (i + 1) & mask;
    this.slots[i] = id + 1;
  }
}

/**
 * A seed of this process's own: the hash is invertible, so without one a client could choose
 * a million addresses of its /64 that all land in one slot, and make every lookup walk them all.
 */
const SEED = Math.floor(Math.random() * 2 ** 32) | 0;

export function hashWords(a: number, b: number, c: number, d: number): number {
  return fmix(fmix(fmix(fmix(SEED ^ a) ^ b) ^ c) ^ d) >>> 0;
}

/** MurmurHash3's finaliser: every input bit reaches the low bits the table uses. */
function fmix(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return h ^ (h >>> 16);
}

