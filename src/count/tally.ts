/**
 * Tally: events counted per client address, per kind, per one-minute bucket.
 * Pure. Buckets make a tally independent of the window asked for, so results can
 * be merged (files of one log family add up; copies of one event in mail.log and
 * mail.warn count once) and windows can be cut from them afterwards, to the minute.
 */
import { addressSortKey, addressWords, networkOf, wordsText } from '../address.js';
import { EVENT_KINDS, KIND_INDEX, SLOT_COUNT, UNNAMED_MESSAGE_REJECT_SLOT, UNNAMED_RECIPIENT_REJECT_SLOT, type EventKind } from '../read/kinds.js';
import type { MailEvent } from '../read/parse.js';

export const BUCKET_MS = 60_000;
const MINUTES_PER_DAY = 1440;

// Usernames: one chain of records per (address, username), newest minute first, in a pool of
// their own: the next record, the minute, SASL failures that named the user, logins as the user.
const U_NEXT = 0;
const U_KEY = 1;
const U_FAILURES = 2;
const U_LOGINS = 3;
const U_STRIDE = 4;

/**
 * Distinct usernames kept per address. Failures naming a further username are kept under
 * OTHER_USERS, which no login matches: they always count. Logins are always kept (they are
 * real accounts, so there are few).
 */
export const MAX_USERS_PER_ADDRESS = 64;
/** Not a username the parser can give (it cuts usernames at MAX_USERNAME characters, and this is longer). */
export const OTHER_USERS = '\u0000'.repeat(200);

/** The serialized form keeps the slots present in a minute as a 32-bit mask; a pair keeps slot + 1 in 5 bits. */
if (SLOT_COUNT > 31) throw new Error(`tally.ts: ${SLOT_COUNT} count slots (EVENT_KINDS + qualifying slots) do not fit the 5-bit slot of a count pair; widen it`);

// A bucket (one address, one minute) is a record of STRIDE int32s in one pool:
// the next (older) bucket of the same address, the minute, the first and last event as
// ms into the minute, then two count pairs and the record that holds more pairs (+1; 0:
// none). A pair is (slot + 1) << 26 | count (0: empty): a minute of one address nearly
// always has one or two kinds, so 28 bytes a bucket instead of one count per kind (88).
// Each address has a chain of buckets, newest first, so a log read in time order only
// ever touches the head, and a window is cut by walking from the head until the minutes
// are older than the window.
const NEXT = 0;
const KEY = 1;
const FIRST = 2;
const LAST = 3;
const PAIR0 = 4;
const PAIR1 = 5;
const MORE = 6;
const STRIDE = 7;
const NONE = -1;
const COUNT_BITS = 26;
const COUNT_MAX = 2 ** COUNT_BITS - 1;
const SCRATCH = new Int32Array(4);

/** `a` copied into a new array of `size` (the rest zero): how every array here grows. */
function grown<T extends Int32Array | Float64Array>(a: T, size: number): T {
  const b = new (a.constructor as new (length: number) => T)(size);
  b.set(a);
  return b;
}

/**
 * Numbers for 128-bit keys (an address as four 32-bit words, or a prefix of one with the rest
 * zero), in the order they come: an open-addressing table of (number + 1), 0 = free.
 */
export class WordTable {
  words = new Int32Array(64 * 4);
  private slots = new Int32Array(128);
  size = 0;

  /** The number of the key `from[at..at+3]`, made when missing (then it is size - 1). */
  idOf(from: Int32Array, at: number): number {
    const a = from[at]!;
    const b = from[at + 1]!;
    const c = from[at + 2]!;
    const d = from[at + 3]!;
    const mask = this.slots.length - 1;
    for (let i = hashWords(a, b, c, d) & mask; ; i = (i + 1) & mask) {
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
    } else this.place(id);
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

function hashWords(a: number, b: number, c: number, d: number): number {
  return fmix(fmix(fmix(fmix(0x811c9dc5 ^ a) ^ b) ^ c) ^ d) >>> 0;
}

/** MurmurHash3's finaliser: every input bit reaches the low bits the table uses. */
function fmix(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/** A tally's arrays, sent between threads (see Tally.toParts). */
export interface TallyParts {
  /** Per address: its four words (address.ts addressWords). */
  words: Int32Array<ArrayBuffer>;
  heads: Int32Array<ArrayBuffer>;
  pool: Int32Array<ArrayBuffer>;
  /** Per user chain: its address (an index), its username, its newest record. */
  userAddress: Int32Array<ArrayBuffer>;
  userNames: string[];
  userHeads: Int32Array<ArrayBuffer>;
  userPool: Int32Array<ArrayBuffer>;
  partial: boolean;
}

export class Tally {
  // Addresses are numbered in the order they come; each is kept as four 32-bit words (not a
  // string: a flood of a million addresses as strings in a Map is ~180 MB).
  private readonly table = new WordTable();
  private get words(): Int32Array {
    return this.table.words;
  }
  private get count(): number {
    return this.table.size;
  }
  /** The last addresses looked up by text (bounded: a flood must not grow it without end). */
  private readonly recent = new Map<string, number>();
  /** Per address index: its newest bucket (a record number in `pool`), or NONE. */
  private heads = new Int32Array(64);
  private pool = new Int32Array(256 * STRIDE);
  /** Records used in `pool`. */
  private records = 0;
  /** Per address index: username -> its user chain (only addresses whose SASL lines named a user). */
  private userMaps: Array<Map<string, number> | undefined> = [];
  /** Per user chain: its address index, its username, its newest record (U_STRIDE int32s in userPool). */
  private userAddress = new Int32Array(16);
  private readonly userNames: string[] = [];
  private userHeads = new Int32Array(16);
  private userPool = new Int32Array(64 * U_STRIDE);
  private userRecords = 0;
  /** Decoded from a horizon on (deserialize's `fromMs`): older minutes are missing, so it cannot be written back. */
  private partial = false;

  /** How many addresses it holds. */
  get size(): number {
    return this.count;
  }

  /** The addresses it holds, in the order they came. */
  addressList(): string[] {
    return Array.from({ length: this.count }, (_, id) => this.nameOf(id));
  }

  /** The address numbered `id`, as text. */
  nameOf(id: number): string {
    return wordsText(this.words, id * 4);
  }

  isIpv6(id: number): boolean {
    return !(this.words[id * 4] === 0 && this.words[id * 4 + 1] === 0 && this.words[id * 4 + 2] === 0xffff);
  }

  /** The words of the address numbered `id` with all but its first `bits` bits zero, in `into`. */
  prefixWords(id: number, bits: number, into: Int32Array): Int32Array {
    for (let k = 0; k < 4; k++) {
      const keep = Math.min(32, Math.max(0, bits - 32 * k));
      into[k] = keep === 0 ? 0 : keep === 32 ? this.words[id * 4 + k]! : this.words[id * 4 + k]! & (-1 << (32 - keep));
    }
    return into;
  }

  add(event: MailEvent): void {
    const key = Math.floor(event.time / BUCKET_MS);
    const offset = event.time - key * BUCKET_MS;
    const id = this.idOf(event.address);
    const record = this.bucket(id, key, offset, offset, NONE);
    this.addToSlot(record, KIND_INDEX[event.kind], event.count ?? 1);
    if (event.unnamed === true) this.addToSlot(record, event.kind === 'messageReject' ? UNNAMED_MESSAGE_REJECT_SLOT : UNNAMED_RECIPIENT_REJECT_SLOT, 1);
    if (event.user !== undefined && (event.kind === 'saslFailure' || event.kind === 'saslSuccess')) {
      const login = event.kind === 'saslSuccess';
      const r = this.userRecord(id, event.user, key, login); // first: making it may grow userPool
      this.userPool[r * U_STRIDE + (login ? U_LOGINS : U_FAILURES)]!++;
    }
  }

  /** Adds every count of `other` to this tally (files of one family, read one after the other). */
  addAll(other: Tally): void {
    this.combine(other, false);
  }

  /**
   * Keeps, per address, minute and kind, the larger count of this tally and `other`.
   * For logs that hold copies of the same lines (mail.log and mail.warn written by
   * one rsyslog), this counts each event once; for logs that split the kinds between
   * them (mail.info vs mail.warn), it keeps every kind from the file that has it.
   */
  maxAll(other: Tally): void {
    this.combine(other, true);
  }

  private combine(other: Tally, max: boolean): void {
    if (other.partial) this.partial = true;
    this.reserve(this.records + other.records);
    const theirs = other.pool;
    const theirCounts = new Float64Array(SLOT_COUNT);
    const myCounts = new Float64Array(SLOT_COUNT);
    for (let o = 0; o < other.count; o++) {
      const id = this.idOfWords(other.words, o * 4);
      let cursor = NONE; // their chain runs newest first: each of their buckets lies after the one before
      for (let r = other.heads[o]!; r !== NONE; r = theirs[r * STRIDE + NEXT]!) {
        const from = r * STRIDE;
        const mine = this.bucket(id, theirs[from + KEY]!, theirs[from + FIRST]!, theirs[from + LAST]!, cursor);
        cursor = mine;
        theirCounts.fill(0);
        other.gather(r, theirCounts);
        if (max) {
          myCounts.fill(0);
          this.gather(mine, myCounts);
        }
        for (let i = 0; i < SLOT_COUNT; i++) {
          const add = max ? theirCounts[i]! - myCounts[i]! : theirCounts[i]!;
          if (add > 0) this.addToSlot(mine, i, add);
        }
      }
    }
    const up = other.userPool;
    for (let u = 0; u < other.userNames.length; u++) {
      const id = this.idOfWords(other.words, other.userAddress[u]! * 4);
      // a user who logged in in any minute is a real account: kept past the cap for all its minutes
      let login = false;
      for (let r = other.userHeads[u]!; r !== NONE && !login; r = up[r * U_STRIDE + U_NEXT]!) login = up[r * U_STRIDE + U_LOGINS]! > 0;
      let cursor = NONE; // their minutes come newest first: each lies after the one before
      for (let r = other.userHeads[u]!; r !== NONE; r = up[r * U_STRIDE + U_NEXT]!) {
        const failures = up[r * U_STRIDE + U_FAILURES]!;
        const logins = up[r * U_STRIDE + U_LOGINS]!;
        cursor = this.userRecord(id, other.userNames[u]!, up[r * U_STRIDE + U_KEY]!, login, cursor);
        const at = cursor * U_STRIDE;
        const mine = this.userPool;
        mine[at + U_FAILURES] = max ? Math.max(mine[at + U_FAILURES]!, failures) : mine[at + U_FAILURES]! + failures;
        mine[at + U_LOGINS] = max ? Math.max(mine[at + U_LOGINS]!, logins) : mine[at + U_LOGINS]! + logins;
      }
    }
  }

  private idOf(address: string): number {
    let id = this.recent.get(address);
    if (id !== undefined) return id;
    if (!addressWords(address, SCRATCH, 0)) throw new Error(`tally: ${JSON.stringify(address.slice(0, 60))} is not an address`);
    id = this.idOfWords(SCRATCH, 0);
    if (this.recent.size >= 65_536) this.recent.clear();
    this.recent.set(address, id);
    return id;
  }

  /** The number of the address whose words are `from[at..at+3]`, made when missing. */
  private idOfWords(from: Int32Array, at: number): number {
    const before = this.count;
    const id = this.table.idOf(from, at);
    if (id === before) {
      if (id === this.heads.length) this.heads = grown(this.heads, this.heads.length * 2);
      this.heads[id] = NONE;
    }
    return id;
  }

  /**
   * The record of minute `key` of address `id`, made when missing; `first` and `last` (ms
   * into the minute) widen its span. `after`: a record of this address known to be newer
   * than `key` (where the search starts), or NONE (from the head).
   */
  private bucket(id: number, key: number, first: number, last: number, after: number): number {
    const pool = this.pool;
    let previous = after;
    let r = after === NONE ? this.heads[id]! : pool[after * STRIDE + NEXT]!;
    while (r !== NONE && pool[r * STRIDE + KEY]! > key) {
      previous = r;
      r = pool[r * STRIDE + NEXT]!;
    }
    if (r !== NONE && pool[r * STRIDE + KEY] === key) {
      const at = r * STRIDE;
      if (first < pool[at + FIRST]!) pool[at + FIRST] = first;
      if (last > pool[at + LAST]!) pool[at + LAST] = last;
      return r;
    }
    const made = this.newRecord();
    const at = made * STRIDE;
    const p = this.pool; // newRecord may have grown it
    p[at + NEXT] = r;
    p[at + KEY] = key;
    p[at + FIRST] = first;
    p[at + LAST] = last;
    if (previous === NONE) this.heads[id] = made;
    else p[previous * STRIDE + NEXT] = made;
    return made;
  }

  /** Adds `n` to `slot` of bucket `record`: into its pair for the slot, or a free one (in a further record when both are taken). */
  private addToSlot(record: number, slot: number, n: number): void {
    if (!(n > 0)) return;
    const tag = (slot + 1) * 2 ** COUNT_BITS;
    let r = record;
    for (;;) {
      for (let p = r * STRIDE + PAIR0; p <= r * STRIDE + PAIR1; p++) {
        const v = this.pool[p]!;
        if (v === 0) {
          const take = Math.min(n, COUNT_MAX);
          this.pool[p] = tag + take;
          n -= take;
        } else if (v >>> COUNT_BITS === slot + 1 && (v & COUNT_MAX) < COUNT_MAX) {
          const take = Math.min(n, COUNT_MAX - (v & COUNT_MAX));
          this.pool[p] = v + take;
          n -= take;
        }
        if (n === 0) return;
      }
      let more = this.pool[r * STRIDE + MORE]! - 1;
      if (more === NONE) {
        more = this.newRecord(); // may grow the pool: this.pool is read again after it
        this.pool[more * STRIDE + NEXT] = NONE;
        this.pool[more * STRIDE + KEY] = this.pool[r * STRIDE + KEY]!;
        this.pool[r * STRIDE + MORE] = more + 1;
      }
      r = more;
    }
  }

  /** Adds the counts of bucket `record` to `into` (per slot). */
  private gather(record: number, into: Float64Array): void {
    const pool = this.pool;
    for (let r = record; r !== NONE; r = pool[r * STRIDE + MORE]! - 1) {
      const a = pool[r * STRIDE + PAIR0]!;
      if (a === 0) return;
      into[(a >>> COUNT_BITS) - 1]! += a & COUNT_MAX;
      const b = pool[r * STRIDE + PAIR1]!;
      if (b === 0) return;
      into[(b >>> COUNT_BITS) - 1]! += b & COUNT_MAX;
    }
  }

  private newRecord(): number {
    if ((this.records + 1) * STRIDE > this.pool.length) this.reserve(Math.ceil((this.pool.length * 1.5) / STRIDE));
    return this.records++;
  }

  /** Room for `records` buckets in all, in one allocation (each growth is a copy, and garbage the collector is made to chase). */
  private reserve(records: number): void {
    if (records * STRIDE > this.pool.length) this.pool = grown(this.pool, records * STRIDE);
  }

  /**
   * The record of `user` at address `id` in minute `key`, made when missing; past the cap, a
   * failure-only user is counted as OTHER_USERS (logins are always kept). `after`: a record of
   * the same chain known to be newer than `key` (where the search starts), or NONE (the head).
   */
  private userRecord(id: number, user: string, key: number, login: boolean, after = NONE): number {
    let users = this.userMaps[id];
    if (users === undefined) this.userMaps[id] = users = new Map();
    let u = users.get(user);
    if (u === undefined) {
      if (!login && user !== OTHER_USERS && users.size >= MAX_USERS_PER_ADDRESS) return this.userRecord(id, OTHER_USERS, key, false, after);
      u = this.userNames.length;
      users.set(user, u);
      this.userNames.push(user);
      if (u === this.userHeads.length) {
        this.userHeads = grown(this.userHeads, Math.max(16, u * 2));
        this.userAddress = grown(this.userAddress, Math.max(16, u * 2));
      }
      this.userHeads[u] = NONE;
      this.userAddress[u] = id;
    }
    // newest first: a log read in time order finds its minute at the head
    if (after !== NONE && this.userPool[after * U_STRIDE + U_KEY]! <= key) after = NONE; // not newer: from the head
    let previous = after;
    let r = after === NONE ? this.userHeads[u]! : this.userPool[after * U_STRIDE + U_NEXT]!;
    while (r !== NONE && this.userPool[r * U_STRIDE + U_KEY]! > key) {
      previous = r;
      r = this.userPool[r * U_STRIDE + U_NEXT]!;
    }
    if (r !== NONE && this.userPool[r * U_STRIDE + U_KEY] === key) return r;
    if ((this.userRecords + 1) * U_STRIDE > this.userPool.length) this.userPool = grown(this.userPool, Math.max(64 * U_STRIDE, this.userPool.length * 2));
    const made = this.userRecords++;
    const at = made * U_STRIDE;
    this.userPool[at + U_NEXT] = r;
    this.userPool[at + U_KEY] = key;
    if (previous === NONE) this.userHeads[u] = made;
    else this.userPool[previous * U_STRIDE + U_NEXT] = made;
    return made;
  }

  /** Per username of address `id`: its failures and logins in minutes fromKey..toKey (`visit` is not called for a user with none). */
  usersInWindow(id: number, fromKey: number, toKey: number, visit: (user: string, failures: number, logins: number) => void): void {
    const users = this.userMaps[id];
    if (users === undefined) return;
    const up = this.userPool;
    for (const [user, u] of users) {
      let failures = 0;
      let logins = 0;
      for (let r = this.userHeads[u]!; r !== NONE && up[r * U_STRIDE + U_KEY]! >= fromKey; r = up[r * U_STRIDE + U_NEXT]!) {
        if (up[r * U_STRIDE + U_KEY]! > toKey) continue;
        failures += up[r * U_STRIDE + U_FAILURES]!;
        logins += up[r * U_STRIDE + U_LOGINS]!;
      }
      if (failures > 0 || logins > 0) visit(user, failures, logins);
    }
  }

  /**
   * Calls `visit(id, sums, first, last)` for each address with events in minutes
   * fromKey..toKey: `sums` (SLOT_COUNT counts, reused between calls) holds its counts there,
   * `first` and `last` its first and last event there (see summarise).
   */
  windowSums(fromKey: number, toKey: number, visit: (id: number, sums: Float64Array, first: number, last: number) => void): void {
    const pool = this.pool;
    const sums = new Float64Array(SLOT_COUNT);
    for (let id = 0; id < this.count; id++) {
      let r = this.heads[id]!;
      while (r !== NONE && pool[r * STRIDE + KEY]! > toKey) r = pool[r * STRIDE + NEXT]!;
      if (r === NONE || pool[r * STRIDE + KEY]! < fromKey) continue;
      sums.fill(0);
      const last = pool[r * STRIDE + KEY]! * BUCKET_MS + pool[r * STRIDE + LAST]!;
      let first = 0;
      for (; r !== NONE && pool[r * STRIDE + KEY]! >= fromKey; r = pool[r * STRIDE + NEXT]!) {
        this.gather(r, sums);
        first = pool[r * STRIDE + KEY]! * BUCKET_MS + pool[r * STRIDE + FIRST]!;
      }
      visit(id, sums, first, last);
    }
  }

  /**
   * A compact binary form, for the state file and the worker thread: the count of
   * addresses, then per address its text, the byte length of its buckets, their count and
   * the buckets newest first (minute, first and last event as ms into the minute, a bit
   * mask of the slots present and their counts); then per address and username, per
   * minute the failures and logins. The byte length lets a reader skip the minutes it does not need.
   */
  serialize(): Buffer {
    return this.serializeSection(-Infinity, Infinity).data;
  }

  /**
   * serialize() per UTC day: one tally of each day that has events, with its first and
   * last event (the scan state keeps a log's tally as day segments, so a cron run reads
   * only the days of its window and rewrites only the days new lines fall on).
   */
  serializeByDay(): Array<{ day: number; data: Buffer; first: number; last: number }> {
    const pool = this.pool;
    const days = new Set<number>();
    for (let r = 0; r < this.records; r++) days.add(Math.floor(pool[r * STRIDE + KEY]! / MINUTES_PER_DAY));
    return [...days].sort((a, b) => a - b).map((day) => ({ day, ...this.serializeSection(day * MINUTES_PER_DAY, (day + 1) * MINUTES_PER_DAY - 1) }));
  }

  /** The minutes fromKey..toKey of every address and username (those with none left out). */
  private serializeSection(fromKey: number, toKey: number): { data: Buffer; first: number; last: number } {
    if (this.partial) throw new Error('a tally decoded from a horizon on cannot be written back (its older minutes are missing)');
    const pool = this.pool;
    /** The newest record of `id` at or before toKey, or NONE. */
    const startOf = (id: number) => {
      let r = this.heads[id]!;
      while (r !== NONE && pool[r * STRIDE + KEY]! > toKey) r = pool[r * STRIDE + NEXT]!;
      return r !== NONE && pool[r * STRIDE + KEY]! >= fromKey ? r : NONE;
    };
    const counts = new Float64Array(SLOT_COUNT);
    let size = 8;
    // the addresses with minutes in the section: their newest such minute and their text
    const starts: number[] = [];
    const names: string[] = [];
    for (let id = 0; id < this.count; id++) {
      const start = startOf(id);
      if (start === NONE) continue;
      starts.push(start);
      names.push(this.nameOf(id));
      size += 2 + names.at(-1)!.length + 8;
      for (let r = start; r !== NONE && pool[r * STRIDE + KEY]! >= fromKey; r = pool[r * STRIDE + NEXT]!) {
        size += 12;
        counts.fill(0);
        this.gather(r, counts);
        for (let i = 0; i < SLOT_COUNT; i++) if (counts[i] !== 0) size += 4;
      }
    }
    const userParts: Buffer[] = [];
    let pairs = 0;
    const up = this.userPool;
    for (let u = 0; u < this.userNames.length; u++) {
      let start = this.userHeads[u]!;
      while (start !== NONE && up[start * U_STRIDE + U_KEY]! > toKey) start = up[start * U_STRIDE + U_NEXT]!;
      let count = 0;
      for (let r = start; r !== NONE && up[r * U_STRIDE + U_KEY]! >= fromKey; r = up[r * U_STRIDE + U_NEXT]!) count++;
      if (count === 0) continue;
      pairs++;
      const address = this.nameOf(this.userAddress[u]!);
      const userBytes = Buffer.from(this.userNames[u]!, 'utf8');
      const out = Buffer.allocUnsafe(2 + address.length + 2 + userBytes.length + 4 + 12 * count);
      let at = out.writeUInt16LE(address.length, 0);
      at += out.write(address, at, 'latin1');
      at = out.writeUInt16LE(userBytes.length, at);
      at += userBytes.copy(out, at);
      at = out.writeUInt32LE(count, at);
      for (let r = start; r !== NONE && up[r * U_STRIDE + U_KEY]! >= fromKey; r = up[r * U_STRIDE + U_NEXT]!) {
        at = out.writeInt32LE(up[r * U_STRIDE + U_KEY]!, at);
        at = out.writeUInt32LE(up[r * U_STRIDE + U_FAILURES]!, at);
        at = out.writeUInt32LE(up[r * U_STRIDE + U_LOGINS]!, at);
      }
      userParts.push(out);
    }
    const out = Buffer.allocUnsafe(size);
    const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
    let first = Infinity;
    let last = -Infinity;
    let at = 0;
    view.setUint32(at, starts.length, true);
    at += 4;
    for (const [k, start] of starts.entries()) {
      const name = names[k]!;
      view.setUint16(at, name.length, true);
      at += 2 + out.write(name, at + 2, 'latin1');
      const lengthAt = at;
      at += 8;
      let count = 0;
      const newest = pool[start * STRIDE + KEY]! * BUCKET_MS + pool[start * STRIDE + LAST]!;
      if (newest > last) last = newest;
      for (let r = start; r !== NONE && pool[r * STRIDE + KEY]! >= fromKey; r = pool[r * STRIDE + NEXT]!) {
        const base = r * STRIDE;
        view.setInt32(at, pool[base + KEY]!, true);
        view.setUint16(at + 4, pool[base + FIRST]!, true);
        view.setUint16(at + 6, pool[base + LAST]!, true);
        const oldest = pool[base + KEY]! * BUCKET_MS + pool[base + FIRST]!;
        if (oldest < first) first = oldest;
        let mask = 0;
        let c = at + 12;
        counts.fill(0);
        this.gather(r, counts);
        for (let i = 0; i < SLOT_COUNT; i++) {
          const n = counts[i]!;
          if (n === 0) continue;
          mask |= 1 << i;
          view.setUint32(c, n, true);
          c += 4;
        }
        view.setUint32(at + 8, mask >>> 0, true);
        at = c;
        count++;
      }
      view.setUint32(lengthAt, at - lengthAt - 8, true);
      view.setUint32(lengthAt + 4, count, true);
    }
    view.setUint32(at, pairs, true);
    return { data: userParts.length === 0 ? out : Buffer.concat([out, ...userParts]), first, last };
  }

  /**
   * The inverse of serialize(); throws on data that is not one, or that holds anything
   * but canonical addresses (a state file is input like any other). With `fromMs`, minutes
   * before it are skipped (a cron run needs only its window): such a tally answers for
   * its window but cannot be serialized again.
   */
  static deserialize(data: Buffer, fromMs = -Infinity): Tally {
    const tally = new Tally();
    const fromKey = Math.floor(fromMs / BUCKET_MS);
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const words = new Int32Array(4);
    const need = (at: number, bytes: number) => {
      if (at + bytes > data.length) throw new Error('tally data ends too early');
    };
    let at = 0;
    need(at, 4);
    const addresses = view.getUint32(at, true);
    at += 4;
    // the buckets in all (each address's header has their count), to make room once
    let buckets = 0;
    for (let a = 0, skip = at; a < addresses && skip + 2 <= data.length; a++) {
      skip += 2 + view.getUint16(skip, true);
      if (skip + 8 > data.length) break;
      buckets += view.getUint32(skip + 4, true);
      skip += 8 + view.getUint32(skip, true);
    }
    tally.reserve(Math.min(buckets, Math.floor(data.length / 12)));
    for (let a = 0; a < addresses; a++) {
      need(at, 2);
      const length = view.getUint16(at, true);
      const id = tally.idOfWords(readAddress(data, at + 2, length, words), 0);
      at += 2 + length;
      need(at, 8);
      const bytes = view.getUint32(at, true);
      const count = view.getUint32(at + 4, true);
      at += 8;
      const end = at + bytes;
      need(at, bytes);
      let previous = NONE;
      let lastKey = Infinity;
      for (let b = 0; b < count; b++) {
        need(at, 12);
        const key = view.getInt32(at, true);
        if (key >= lastKey) throw new Error('tally data has minutes out of order');
        lastKey = key;
        if (key < fromKey) {
          tally.partial = true;
          break;
        }
        const mask = view.getUint32(at + 8, true);
        if (mask >= 2 ** SLOT_COUNT) throw new Error('tally data names an unknown event kind');
        const r = tally.newRecord();
        const base = r * STRIDE;
        tally.pool[base + NEXT] = NONE;
        tally.pool[base + KEY] = key;
        tally.pool[base + FIRST] = view.getUint16(at + 4, true);
        tally.pool[base + LAST] = view.getUint16(at + 6, true);
        at += 12;
        for (let i = 0; i < SLOT_COUNT; i++) {
          if ((mask & (1 << i)) === 0) continue;
          need(at, 4);
          const n = view.getUint32(at, true);
          if (n > 0) tally.addToSlot(r, i, n);
          at += 4;
        }
        if (previous === NONE) tally.heads[id] = r;
        else tally.pool[previous * STRIDE + NEXT] = r;
        previous = r;
      }
      if (at > end || (!tally.partial && at !== end)) throw new Error('tally data does not add up');
      at = end;
    }
    need(at, 4);
    const pairs = view.getUint32(at, true);
    at += 4;
    for (let p = 0; p < pairs; p++) {
      need(at, 2);
      const length = view.getUint16(at, true);
      readAddress(data, at + 2, length, words);
      let id = -1; // numbered when a minute is kept: an address with none in the window is not added
      at += 2 + length;
      need(at, 2);
      const userLength = view.getUint16(at, true);
      need(at + 2, userLength + 4);
      const user = data.toString('utf8', at + 2, at + 2 + userLength);
      at += 2 + userLength;
      const count = view.getUint32(at, true);
      at += 4;
      need(at, 12 * count);
      // a user who logged in in any minute is a real account: kept past the cap for all its minutes
      let login = false;
      for (let b = 0; b < count && !login; b++) login = view.getUint32(at + 12 * b + 8, true) > 0;
      let cursor = NONE; // written newest first: each minute lies after the one before
      for (let b = 0; b < count; b++) {
        const key = view.getInt32(at, true);
        const failures = view.getUint32(at + 4, true);
        const logins = view.getUint32(at + 8, true);
        at += 12;
        if (key < fromKey) continue;
        if (id === -1) id = tally.idOfWords(words, 0);
        cursor = tally.userRecord(id, user, key, login, cursor);
        const r = cursor * U_STRIDE;
        tally.userPool[r + U_FAILURES] = Math.min(2 ** 31 - 1, tally.userPool[r + U_FAILURES]! + failures);
        tally.userPool[r + U_LOGINS] = Math.min(2 ** 31 - 1, tally.userPool[r + U_LOGINS]! + logins);
      }
    }
    if (at !== data.length) throw new Error(`tally data has ${data.length - at} bytes too many`);
    return tally;
  }

  /** The tally's arrays as they are, for another thread: postMessage moves the arrays and copies the usernames (no re-encoding). */
  toParts(): TallyParts {
    const users = this.userNames.length;
    return {
      words: this.words.slice(0, this.count * 4),
      heads: this.heads.slice(0, this.count),
      pool: this.pool.slice(0, this.records * STRIDE),
      userAddress: this.userAddress.slice(0, users),
      userNames: this.userNames,
      userHeads: this.userHeads.slice(0, users),
      userPool: this.userPool.slice(0, this.userRecords * U_STRIDE),
      partial: this.partial,
    };
  }

  /** The inverse of toParts(), on the thread that received them (trusted: they never come from a file). */
  static fromParts(parts: TallyParts): Tally {
    const tally = new Tally();
    for (let id = 0; id < parts.words.length / 4; id++) tally.idOfWords(parts.words, id * 4);
    tally.heads.set(parts.heads);
    tally.pool = parts.pool.length > 0 ? parts.pool : tally.pool;
    tally.records = parts.pool.length / STRIDE;
    for (const [u, user] of parts.userNames.entries()) {
      const id = parts.userAddress[u]!;
      let users = tally.userMaps[id];
      if (users === undefined) tally.userMaps[id] = users = new Map();
      users.set(user, u);
      tally.userNames.push(user);
    }
    tally.userAddress = parts.userAddress.length > 0 ? parts.userAddress : tally.userAddress;
    tally.userHeads = parts.userHeads.length > 0 ? parts.userHeads : tally.userHeads;
    tally.userPool = parts.userPool.length > 0 ? parts.userPool : tally.userPool;
    tally.userRecords = parts.userPool.length / U_STRIDE;
    tally.partial = parts.partial;
    return tally;
  }

  /** Counted events per minute of the window, for countPerHour. */
  perMinute(visit: (key: number, counts: Float64Array) => void): void {
    const pool = this.pool;
    const counts = new Float64Array(SLOT_COUNT);
    for (let id = 0; id < this.count; id++) {
      for (let r = this.heads[id]!; r !== NONE; r = pool[r * STRIDE + NEXT]!) {
        counts.fill(0);
        this.gather(r, counts);
        visit(pool[r * STRIDE + KEY]!, counts);
      }
    }
  }
}

/** The address at `from` into `words`; throws unless it is one, in canonical form (as the tally writes it). */
function readAddress(data: Buffer, from: number, length: number, words: Int32Array): Int32Array {
  if (from + length > data.length) throw new Error('tally data ends inside an address');
  const address = data.toString('latin1', from, from + length);
  if (!addressWords(address, words, 0) || wordsText(words, 0) !== address) throw new Error(`tally data holds ${JSON.stringify(address.slice(0, 60))}, which is not an address`);
  return words;
}

/** A time range, both ends included, in ms since the epoch; infinite ends for `--window all`. */
export interface TimeWindow {
  from: number;
  to: number;
}

export const ALL_TIME: TimeWindow = { from: -Infinity, to: Infinity };

/** Whether events from `first` to `last` (ms) may fall in `window`, to the minute (as summarise counts). */
export function minutesOverlap(first: number, last: number, window: TimeWindow): boolean {
  return Math.floor(last / BUCKET_MS) >= Math.floor(window.from / BUCKET_MS) && Math.floor(first / BUCKET_MS) <= Math.floor(window.to / BUCKET_MS);
}

export interface AddressSummary {
  address: string;
  /** Events per kind in the window; every kind is present. */
  events: Record<EventKind, number>;
  /** Sum of the counted kinds. */
  total: number;
  firstSeen: number;
  lastSeen: number;
  /** recipientReject events of this address that Postfix logged as `unknown[ADDR]`. */
  unnamedRecipientRejects: number;
  /** messageReject events of this address that Postfix logged as `unknown[ADDR]`. */
  unnamedMessageRejects: number;
  /** SASL usernames named in the window: failures naming each, logins as each (absent: none named). */
  users?: Map<string, { failures: number; logins: number }>;
  /** SASL failures naming usernames past MAX_USERS_PER_ADDRESS: no login spares them. */
  otherUserFailures?: number;
  /**
   * Past the --max-tracked bound: this is not one address but the IPv6 addresses of `cidr`
   * (`address` is its network address), added up. The policy counts it as that range.
   */
  summarised?: { cidr: string; addresses: number };
}

/** What summarise does past `maxTracked` addresses. */
export interface Bound {
  /** At most this many addresses are summarised one by one (besides offenders and clients that logged in or had mail accepted). */
  maxTracked: number;
  /** Thresholds: an address at or over its threshold is always kept. */
  threshold: number;
  threshold6: number;
  /** IPv6 addresses past the bound are added up per prefix of this length (the policy's ipv6Prefix)... */
  ipv6Prefix: number;
  /** ...and, when those prefixes are still too many, per network of this length (the policy's ipv6Subnet). */
  ipv6Subnet: number;
}

export interface Bounded {
  summaries: AddressSummary[];
  /** Addresses past the bound: not summarised one by one (0: the bound was not reached). */
  summarised: number;
  /** Their events of the counted kinds. */
  summarisedEvents: number;
  /** IPv6 ranges they were added up into (each one summary). */
  summarisedRanges: number;
}

/**
 * Per address, the events inside `window` (to the minute: a bucket counts when its
 * minute lies in the window), with `total` the sum of the `counted` kinds.
 * Every address with at least one event of any kind in the window is returned,
 * worst first (highest total, then most events, then by address).
 */
export function summarise(tally: Tally, window: TimeWindow, counted: readonly EventKind[]): AddressSummary[] {
  return summariseBounded(tally, window, counted, null).summaries;
}

/**
 * summarise(), bounded: past `bound.maxTracked` addresses with events in the window, the
 * ones farthest from their threshold (fewest counted events) are not listed one by one.
 * Never dropped: addresses at or over their threshold, and those that logged in or had
 * mail accepted (they spare others). IPv4 addresses below the threshold cannot make a
 * block (a /24 needs offenders), so the rest of IPv4 is only counted; the rest of IPv6 is
 * added up per prefix (`summarised` names the range) so a flood of many small prefixes still
 * adds up to its /48, and per /48 when the prefixes are too many.
 */
export function summariseBounded(tally: Tally, window: TimeWindow, counted: readonly EventKind[], bound: Bound | null): Bounded {
  const fromKey = Math.floor(window.from / BUCKET_MS);
  const toKey = Math.floor(window.to / BUCKET_MS);
  const countedIndexes = counted.map((kind) => KIND_INDEX[kind]);
  const totalOf = (sums: Float64Array) => {
    let total = 0;
    for (const i of countedIndexes) total += sums[i]!;
    return total;
  };
  const allOf = (sums: Float64Array) => {
    let all = 0;
    for (let i = 0; i < EVENT_KINDS.length; i++) all += sums[i]!;
    return all;
  };
  // past the bound: the score (counted events, then all events) an address needs to be listed
  let cut = -1;
  let atCut = Infinity; // how many addresses scoring exactly `cut` may still be listed
  let present = 0;
  if (bound !== null && tally.size > bound.maxTracked) {
    // (no more addresses than the bound: nothing to cut, and no pass to find where)
    const scores: number[] = [];
    tally.windowSums(fromKey, toKey, (id, sums) => {
      const all = allOf(sums);
      if (all === 0) return;
      present++;
      if (!mustKeep(tally.isIpv6(id), sums, totalOf(sums), bound)) scores.push(totalOf(sums) * 2 ** 24 + Math.min(all, 2 ** 24 - 1));
    });
    const room = Math.max(0, bound.maxTracked - (present - scores.length));
    if (scores.length > room) {
      const sorted = Float64Array.from(scores).sort().reverse();
      cut = room === 0 ? Infinity : sorted[room - 1]!;
      atCut = 0;
      for (let i = room - 1; i >= 0 && sorted[i] === cut; i--) atCut++;
    }
  }
  const out: AddressSummary[] = [];
  const alls: number[] = [];
  const keys: string[] = [];
  const push = (summary: AddressSummary, all: number) => {
    out.push(summary);
    alls.push(all);
    keys.push(addressSortKey(summary.address));
  };
  // past the bound, IPv6 is added up per prefix: first only each prefix's total, to know which
  // prefixes keep their own summary (a flood makes a million of them); prefixes numbered by their words
  const prefixes = new WordTable();
  const words = new Int32Array(4);
  let prefixTotals = new Float64Array(1024);
  const prefixOf = bound === null ? null : new Int32Array(tally.size).fill(-1);
  let summarised = 0;
  let summarisedEvents = 0;
  tally.windowSums(fromKey, toKey, (id, sums, firstSeen, lastSeen) => {
    const all = allOf(sums);
    if (all === 0) return;
    const total = totalOf(sums);
    if (cut >= 0 && bound !== null && !mustKeep(tally.isIpv6(id), sums, total, bound)) {
      const score = total * 2 ** 24 + Math.min(all, 2 ** 24 - 1);
      if (score < cut || (score === cut && atCut-- <= 0)) {
        summarised++;
        summarisedEvents += total;
        if (tally.isIpv6(id)) {
          const g = prefixes.idOf(tally.prefixWords(id, bound.ipv6Prefix, words), 0);
          if (g === prefixTotals.length) prefixTotals = grown(prefixTotals, g * 2);
          prefixTotals[g]! += total;
          prefixOf![id] = g;
        }
        return;
      }
    }
    const summary = summaryOf(tally.nameOf(id), sums, total, firstSeen, lastSeen);
    tally.usersInWindow(id, fromKey, toKey, (user, failures, logins) => {
      if (user === OTHER_USERS) summary.otherUserFailures = failures;
      else (summary.users ??= new Map()).set(user, { failures, logins });
    });
    push(summary, all);
  });
  let summarisedRanges = 0;
  if (bound !== null && prefixes.size > 0) {
    // too many prefixes for the room left: those with the fewest events are added up per ipv6Subnet network
    const room = Math.max(1, bound.maxTracked - out.length);
    const folded = new Uint8Array(prefixes.size);
    if (prefixes.size > room && bound.ipv6Subnet < bound.ipv6Prefix) {
      const order = Array.from({ length: prefixes.size }, (_, g) => g).sort((a, b) => prefixTotals[b]! - prefixTotals[a]! || a - b);
      for (let k = room; k < order.length; k++) folded[order[k]!] = 1;
    }
    // each prefix's own group (kept) or its network's (folded), made when its first address comes
    const groupOf = new Int32Array(prefixes.size).fill(-1);
    const kept = new Groups();
    const wider = new Groups();
    const subnets = new WordTable();
    tally.windowSums(fromKey, toKey, (id, sums, firstSeen, lastSeen) => {
      const g = prefixOf![id]!;
      if (g === -1) return;
      if (groupOf[g] === -1) {
        if (folded[g] === 0) groupOf[g] = kept.open(tally.nameOf(id), firstSeen, lastSeen);
        else {
          const w = subnets.idOf(tally.prefixWords(id, bound.ipv6Subnet, words), 0);
          if (w === wider.size) wider.open(tally.nameOf(id), firstSeen, lastSeen);
          groupOf[g] = w;
        }
      }
      (folded[g] === 0 ? kept : wider).add(groupOf[g]!, sums, firstSeen, lastSeen);
    });
    const one = new Float64Array(SLOT_COUNT);
    const name = (groups: Groups, g: number, bits: number) => {
      const cidr = networkOf(groups.samples[g]!, bits);
      const sums = groups.sumsOf(g, one);
      const summary = summaryOf(cidr.slice(0, cidr.indexOf('/')), sums, totalOf(sums), groups.first[g]!, groups.last[g]!);
      summary.summarised = { cidr, addresses: groups.addresses[g]! };
      push(summary, allOf(sums));
      summarisedRanges++;
    };
    for (let g = 0; g < kept.size; g++) name(kept, g, bound.ipv6Prefix);
    for (let g = 0; g < wider.size; g++) name(wider, g, bound.ipv6Subnet);
  }
  const order = Array.from({ length: out.length }, (_, i) => i);
  order.sort((a, b) => out[b]!.total - out[a]!.total || alls[b]! - alls[a]! || (keys[a]! < keys[b]! ? -1 : keys[a]! > keys[b]! ? 1 : 0));
  return { summaries: order.map((i) => out[i]!), summarised, summarisedEvents, summarisedRanges };
}

/** Ranges added up past the bound: per range its counts, first and last event, addresses, and one of them. */
class Groups {
  sums = new Float64Array(256 * SLOT_COUNT);
  first = new Float64Array(256);
  last = new Float64Array(256);
  addresses = new Float64Array(256);
  readonly samples: string[] = [];

  get size(): number {
    return this.samples.length;
  }

  /** A new range, `sample` one of its addresses; its number. */
  open(sample: string, first: number, last: number): number {
    const g = this.samples.length;
    this.samples.push(sample);
    if (g === this.first.length) this.grow();
    this.first[g] = first;
    this.last[g] = last;
    return g;
  }

  /** Adds one address's counts to range `g`. */
  add(g: number, sums: Float64Array, first: number, last: number): void {
    for (let i = 0; i < SLOT_COUNT; i++) this.sums[g * SLOT_COUNT + i]! += sums[i]!;
    if (first < this.first[g]!) this.first[g] = first;
    if (last > this.last[g]!) this.last[g] = last;
    this.addresses[g]!++;
  }

  /** The counts of range `g`, in `into`. */
  sumsOf(g: number, into: Float64Array): Float64Array {
    into.set(this.sums.subarray(g * SLOT_COUNT, (g + 1) * SLOT_COUNT));
    return into;
  }

  private grow(): void {
    const n = this.first.length * 2;
    this.sums = grown(this.sums, n * SLOT_COUNT);
    this.first = grown(this.first, n);
    this.last = grown(this.last, n);
    this.addresses = grown(this.addresses, n);
  }
}

/** Never summarised away: offenders, and clients whose logins or accepted mail spare others. */
function mustKeep(ipv6: boolean, sums: Float64Array, total: number, bound: Bound): boolean {
  if (sums[KIND_INDEX.saslSuccess]! > 0 || sums[KIND_INDEX.accepted]! > 0) return true;
  return total >= (ipv6 ? bound.threshold6 : bound.threshold);
}

function summaryOf(address: string, sums: Float64Array, total: number, firstSeen: number, lastSeen: number): AddressSummary {
  const events = {} as Record<EventKind, number>;
  for (let i = 0; i < EVENT_KINDS.length; i++) events[EVENT_KINDS[i]!] = sums[i]!;
  return { address, events, total, firstSeen, lastSeen, unnamedRecipientRejects: sums[UNNAMED_RECIPIENT_REJECT_SLOT]!, unnamedMessageRejects: sums[UNNAMED_MESSAGE_REJECT_SLOT]! };
}

/**
 * Counted events per hour over the `hours` hours that end with the hour of `now`,
 * oldest first (for the status chart).
 */
export function countPerHour(tally: Tally, now: number, counted: readonly EventKind[], hours: number): number[] {
  const HOUR = 3_600_000;
  const last = Math.floor(now / HOUR);
  const out = new Array<number>(hours).fill(0);
  const indexes = counted.map((k) => KIND_INDEX[k]);
  tally.perMinute((key, counts) => {
    const slot = Math.floor((key * BUCKET_MS) / HOUR) - (last - hours + 1);
    if (slot < 0 || slot >= hours) return;
    for (const i of indexes) out[slot]! += counts[i]!;
  });
  return out;
}
