/**
 * Tally: events counted per client address, per kind, per one-minute bucket.
 * Pure. Buckets make a tally independent of the window asked for, so results can
 * be merged (files of one log family add up; copies of one event in mail.log and
 * mail.warn count once) and windows can be cut from them afterwards, to the minute.
 */
import { addressWords, wordsText } from '../address.js';
import { KIND_INDEX, SLOT_COUNT, UNNAMED_MESSAGE_REJECT_SLOT, UNNAMED_RECIPIENT_REJECT_SLOT } from '../read/kinds.js';
import type { MailEvent } from '../read/parse.js';
import { COUNT_BITS, COUNT_MAX, FIRST, KEY, LAST, MORE, NEXT, NONE, PAIR0, PAIR1, STRIDE, U_FAILURES, U_KEY, U_LOGINS, U_NEXT, U_STRIDE } from './layout.js';
import { grown, WordTable } from './words.js';

export const BUCKET_MS = 60_000;

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

const SCRATCH = new Int32Array(4);

/**
 * The bucket store. Its arrays and record methods without `private` are shared with its codec
 * (codec.ts) and thread transfer (transfer.ts), in this folder only; everything else uses the methods.
 */
export class Tally {
  // Addresses are numbered in the order they come; each is kept as four 32-bit words (not a
  // string: a flood of a million addresses as strings in a Map is ~180 MB).
  private readonly table = new WordTable();
  get words(): Int32Array {
    return this.table.words;
  }
  get count(): number {
    return this.table.size;
  }
  /** The last addresses looked up by text (bounded: a flood must not grow it without end). */
  private readonly recent = new Map<string, number>();
  /** Per address index: its newest bucket (a record number in `pool`), or NONE. */
  heads = new Int32Array(64);
  pool = new Int32Array(256 * STRIDE);
  /** Records used in `pool`. */
  records = 0;
  /**
   * Per address index: its user chains by username (only addresses whose SASL lines named a
   * user): one chain is kept as its number (the name is userNames[u]), more as a Map. A flood of
   * a million addresses naming one user each would otherwise hold a million Maps (~150 MB).
   */
  userMaps: Array<Map<string, number> | number | undefined> = [];
  /** Per user chain: its address index, its username, its newest record (U_STRIDE int32s in userPool). */
  userAddress = new Int32Array(16);
  readonly userNames: string[] = [];
  userHeads = new Int32Array(16);
  userPool = new Int32Array(64 * U_STRIDE);
  userRecords = 0;
  /** Decoded from a horizon on (deserialize's `fromMs`): older minutes are missing, so it cannot be written back. */
  partial = false;
  /**
   * A username was counted as OTHER_USERS here because its address had MAX_USERS_PER_ADDRESS
   * names already, perhaps on other days: a day cut from this tally may then lack names its own
   * file would keep (scan-state.ts segmentsAfter does not write a day from such a tally).
   */
  usersFolded = false;

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
    if (this.recent.size >= 4096) this.recent.clear(); // small, as the parser's: a flood's strings die young
    this.recent.set(address, id);
    return id;
  }

  /** The number of the address whose words are `from[at..at+3]`, made when missing. */
  idOfWords(from: Int32Array, at: number): number {
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
  addToSlot(record: number, slot: number, n: number): void {
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
  gather(record: number, into: Float64Array): void {
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

  newRecord(): number {
    if ((this.records + 1) * STRIDE > this.pool.length) this.reserve(Math.ceil((this.pool.length * 1.5) / STRIDE));
    return this.records++;
  }

  /** Room for `records` buckets in all, in one allocation (each growth is a copy, and garbage the collector is made to chase). */
  reserve(records: number): void {
    if (records * STRIDE > this.pool.length) this.pool = grown(this.pool, records * STRIDE);
  }

  /**
   * The record of `user` at address `id` in minute `key`, made when missing; past the cap, a
   * failure-only user is counted as OTHER_USERS (logins are always kept). `after`: a record of
   * the same chain known to be newer than `key` (where the search starts), or NONE (the head).
   */
  userRecord(id: number, user: string, key: number, login: boolean, after = NONE): number {
    let u = this.userChain(id, user);
    if (u === undefined) {
      const users = this.userMaps[id];
      const size = users === undefined ? 0 : typeof users === 'number' ? 1 : users.size;
      if (!login && user !== OTHER_USERS && size >= MAX_USERS_PER_ADDRESS) {
        this.usersFolded = true;
        return this.userRecord(id, OTHER_USERS, key, false, after);
      }
      u = this.userNames.length;
      const name = this.interned(user);
      this.addUserChain(id, name, u);
      this.userNames.push(name);
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

  /** Usernames seen lately, each kept once (a flood names the same few on a million addresses). */
  private readonly names = new Map<string, string>();

  /** `user`, as the string already kept for it when there is one. */
  interned(user: string): string {
    const known = this.names.get(user);
    if (known !== undefined) return known;
    if (this.names.size >= 4096) this.names.clear();
    this.names.set(user, user);
    return user;
  }

  /** The user chain of `user` at address `id`, if it has one. */
  private userChain(id: number, user: string): number | undefined {
    const users = this.userMaps[id];
    if (users === undefined) return undefined;
    if (typeof users === 'number') return this.userNames[users] === user ? users : undefined;
    return users.get(user);
  }

  /** Files chain `u` as `user`'s at address `id` (it has none yet). */
  addUserChain(id: number, user: string, u: number): void {
    const users = this.userMaps[id];
    if (users === undefined) this.userMaps[id] = u;
    else if (typeof users === 'number') this.userMaps[id] = new Map([[this.userNames[users]!, users], [user, u]]);
    else users.set(user, u);
  }

  /** Per username of address `id`: its failures and logins in minutes fromKey..toKey (`visit` is not called for a user with none). */
  usersInWindow(id: number, fromKey: number, toKey: number, visit: (user: string, failures: number, logins: number) => void): void {
    const users = this.userMaps[id];
    if (users === undefined) return;
    // one user (a flood's usual case): no array made for it, once per address per summary
    if (typeof users === 'number') this.userInWindow(users, fromKey, toKey, visit);
    else for (const u of users.values()) this.userInWindow(u, fromKey, toKey, visit);
  }

  private userInWindow(u: number, fromKey: number, toKey: number, visit: (user: string, failures: number, logins: number) => void): void {
    const up = this.userPool;
    let failures = 0;
    let logins = 0;
    for (let r = this.userHeads[u]!; r !== NONE && up[r * U_STRIDE + U_KEY]! >= fromKey; r = up[r * U_STRIDE + U_NEXT]!) {
      if (up[r * U_STRIDE + U_KEY]! > toKey) continue;
      failures += up[r * U_STRIDE + U_FAILURES]!;
      logins += up[r * U_STRIDE + U_LOGINS]!;
    }
    if (failures > 0 || logins > 0) visit(this.userNames[u]!, failures, logins);
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
