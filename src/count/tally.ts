/**
 * Tally: events counted per client address, per kind, per one-minute bucket.
 * Pure. Buckets make a tally independent of the window asked for, so results can
 * be merged (files of one log family add up; copies of one event in mail.log and
 * mail.warn count once) and windows can be cut from them afterwards, to the minute.
 */
import { addressWords, wordsText } from '../address.js';
import { DEFAULT_COUNTED_KINDS, EVENT_KINDS, FOLDED_ADDRESSES_SLOT, KIND_INDEX, SLOT_COUNT, UNNAMED_MESSAGE_REJECT_SLOT, UNNAMED_RECIPIENT_REJECT_SLOT, type EventKind } from '../read/kinds.js';
import type { MailEvent } from '../read/parse.js';
import type { ByteEvent } from '../read/parse-bytes.js';
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
const SASL_FAILURE = KIND_INDEX.saslFailure;
const SASL_SUCCESS = KIND_INDEX.saslSuccess;
const MESSAGE_REJECT = KIND_INDEX.messageReject;
const ACCEPTED = KIND_INDEX.accepted;
const ROUTED = new Int32Array(4);
/** Per slot, one bucket's counts on each side of maxAll. */
const THEIR_COUNTS = new Float64Array(SLOT_COUNT);
const MY_COUNTS = new Float64Array(SLOT_COUNT);
/** What totalsOf found: events, counted events, logins, accepted mail. */
const TOTALS = new Float64Array(4);

/** The address space a tally's pool sets aside to grow in place (1 GiB: 38 million buckets); only what it uses is memory. */
const POOL_MAX_BYTES = 1 << 30;
/** A WebAssembly memory grows by pages of 64 KiB. */
const WASM_PAGE = 1 << 16;

/**
 * The memory behind each pool that grows in place, by the pool's buffer. A WebAssembly memory, not
 * a resizable ArrayBuffer: it sets address space aside the same way (10 GiB of it, with V8's guard
 * region: ~13,000 memories fit a process, and there are a few at a time) and its pages are used only
 * as records are, but its buffer is a plain one, whose arrays V8 reads and writes at full speed (a
 * resizable buffer's took the tally's inserts ~1.6x the time in Node 20). Shared, so that a worker's
 * tally reaches the main thread without a copy (a plain memory's buffer cannot be moved).
 */
const poolMemories = new WeakMap<ArrayBufferLike, WasmMemory>();

/** WebAssembly.Memory as far as a pool uses it (Node has it; the libs this project builds with do not name it). */
interface WasmMemory {
  readonly buffer: ArrayBufferLike;
  grow(pages: number): number;
}
const WasmMemory = (globalThis as unknown as { WebAssembly?: { Memory: new (descriptor: { initial: number; maximum: number; shared: boolean }) => WasmMemory } }).WebAssembly?.Memory;

/**
 * Whether a memory could not be made (a process under `ulimit -v`): then this thread's pools grow by
 * copying. Tried once: V8 collects garbage and tries again before it gives up (~0.1 s each time).
 */
let noGrowablePools = WasmMemory === undefined;

/** A pool of at least `ints` that can grow in place, or null when the address space cannot be set aside. */
function growablePool(ints: number): Int32Array<ArrayBufferLike> | null {
  if (noGrowablePools) return null;
  try {
    return poolIn(new WasmMemory!({ initial: Math.ceil((ints * 4) / WASM_PAGE), maximum: POOL_MAX_BYTES / WASM_PAGE, shared: true }));
  } catch {
    noGrowablePools = true;
    return null;
  }
}

/** `pool` grown in place to at least `ints`, or null when it cannot be (not a growable pool, or its memory cannot grow). */
function grownInPlace(pool: Int32Array<ArrayBufferLike>, ints: number): Int32Array<ArrayBufferLike> | null {
  const memory = poolMemories.get(pool.buffer);
  if (memory === undefined || pool.byteOffset !== 0 || ints * 4 > POOL_MAX_BYTES) return null;
  const pages = Math.ceil((ints * 4) / WASM_PAGE) - memory.buffer.byteLength / WASM_PAGE;
  if (pages > 0) {
    try {
      memory.grow(pages);
    } catch {
      return null;
    }
  }
  return poolIn(memory); // a view of the whole memory (one received from a thread is a part)
}

/** A pool of all of `memory`, known by its buffer (a memory that grew has a new one). */
function poolIn(memory: WasmMemory): Int32Array<ArrayBufferLike> {
  poolMemories.set(memory.buffer, memory);
  return new Int32Array(memory.buffer);
}

/** The memory a pool grows in, to send to another thread with it (null: it has none). */
export function poolMemoryOf(pool: Int32Array<ArrayBufferLike>): object | null {
  return poolMemories.get(pool.buffer) ?? null;
}

/** Lets a pool received from another thread grow in place on this one, in the memory sent with it (poolMemoryOf). */
export function adoptPoolMemory(memory: object): void {
  const wasm = memory as WasmMemory;
  poolMemories.set(wasm.buffer, wasm);
}

/**
 * Whether rows are folded as addFolded plans them (true) or made first and compacted after:
 * the same rows and counts either way; the second is kept for the test that says so.
 */
let foldRowsDirectly = true;

/** For test/fold.test.ts: fold rows the plain way (false), to compare with the direct one. */
export function setFoldRowsDirectly(on: boolean): void {
  foldRowsDirectly = on;
}

/** Addresses a tally holds one by one unless told otherwise: 10 x the default --max-tracked. */
export const DEFAULT_ADDRESS_LIMIT = 200_000;

/** What a tally made from now on in this thread is bounded by (see Tally.compact). */
export interface TallyBound {
  /** Past this many addresses, the tally folds the quietest half into rows. */
  limit: number;
  /** Events of the `counted` kinds that make an address an offender: folded after all but logins. */
  offender: number;
  /** The kinds that count toward blocking (--kinds). */
  counted: readonly EventKind[];
}

let tallyBound: TallyBound = { limit: DEFAULT_ADDRESS_LIMIT, offender: 5, counted: DEFAULT_COUNTED_KINDS };

/** Sets the bound of the tallies this thread makes from now on (cli.ts: 10 x --max-tracked, the lower threshold, --kinds; a scan worker: its parent's). */
export function setTallyBound(bound: TallyBound): void {
  tallyBound = { ...bound, limit: Math.max(16, Math.floor(bound.limit)), offender: Math.max(1, bound.offender) };
}

/** The bound tallies are made with (for a scan worker). */
export function currentTallyBound(): TallyBound {
  return tallyBound;
}

/**
 * Folded rows (Tally.folded) are keyed by four words too, not an address: the network's first
 * two words, the prefix length (64, then 48, then 0) and the family (4 or 6). IPv4 has one row:
 * an IPv4 address under its threshold cannot make a block (a /24 needs offenders), so the
 * addresses past the limit are only counted; IPv6 keeps its /64s, which the policy blocks whole.
 */
export const FOLD_PREFIX6 = 64;
export const FOLD_NETWORK6 = 48;

/**
 * The bucket store. Its arrays and record methods without `private` are shared with its codec
 * (codec.ts) and thread transfer (transfer.ts), in this folder only; everything else uses the methods.
 */
export class Tally {
  // Addresses are numbered in the order they come; each is kept as four 32-bit words (not a
  // string: a flood of a million addresses as strings in a Map is ~180 MB).
  private table = new WordTable();
  get words(): Int32Array {
    return this.table.words;
  }
  get count(): number {
    return this.table.size;
  }
  /** Per address index: its newest bucket (a record number in `pool`), or NONE. */
  heads = new Int32Array(64);
  pool: Int32Array<ArrayBufferLike> = new Int32Array(256 * STRIDE);
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
  userNames: string[] = [];
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
  /**
   * The addresses past `limit`, added up (compact): rows keyed by network (FOLD_PREFIX6), with
   * their counts per minute and, in FOLDED_ADDRESSES_SLOT, how many addresses each adds up. null: none.
   */
  folded: Tally | null = null;

  /**
   * @param limit past this many addresses, the quietest half is folded (compact): what bounds a
   *   tally's memory on any input. A tally of folded rows has a limit of its own, a tenth of it.
   * @param rows this is a tally of folded rows (its keys are networks, not addresses)
   */
  constructor(
    readonly limit: number = tallyBound.limit,
    readonly rows = false,
  ) {}

  /** How many addresses (and folded rows) it holds. */
  get size(): number {
    return this.count + (this.folded?.count ?? 0);
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
    if (!addressWords(event.address, SCRATCH, 0)) throw new Error(`tally: ${JSON.stringify(event.address.slice(0, 60))} is not an address`);
    this.addAt(SCRATCH, event.time, KIND_INDEX[event.kind], event.count ?? 1, event.unnamed === true, event.user);
  }

  /** add, for an event the parser's fast path read (parse-bytes.ts): the same counts. */
  addBytes(event: ByteEvent): void {
    this.addAt(event.words, event.time, event.kind, 1, event.unnamed, event.user);
  }

  /** Counts `count` events of kind `slot` at `time` for the address `words[0..3]`; `unnamed`: a message-level reject of an `unknown[ADDR]` client. */
  private addAt(words: Int32Array, time: number, slot: number, count: number, unnamed: boolean, user: string | undefined): void {
    const key = Math.floor(time / BUCKET_MS);
    const offset = time - key * BUCKET_MS;
    if (this.count >= this.limit) this.compact();
    const id = this.idOfWords(words, 0);
    const record = this.bucket(id, key, offset, offset, NONE);
    this.addToSlot(record, slot, count);
    if (unnamed) this.addToSlot(record, slot === MESSAGE_REJECT ? UNNAMED_MESSAGE_REJECT_SLOT : UNNAMED_RECIPIENT_REJECT_SLOT, 1);
    if (user !== undefined && (slot === SASL_FAILURE || slot === SASL_SUCCESS)) {
      const login = slot === SASL_SUCCESS;
      const r = this.userRecord(id, user, key, login); // first: making it may grow userPool
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
    this.copyFrom(other, max, null, false);
    if (other.folded !== null) this.foldedRows().combine(other.folded, max);
    if (this.count > this.limit) this.compact();
  }

  /**
   * Adds the counts (and usernames, unless `rows` or `fold`) of `other`'s addresses, each
   * under the key `route` writes (null: its own); an address `route` says false for is left
   * out. `fold`: the addresses are being added up into rows, each counted once in
   * FOLDED_ADDRESSES_SLOT of its newest minute.
   */
  private copyFrom(other: Tally, max: boolean, route: ((o: number, into: Int32Array) => boolean) | null, fold: boolean): void {
    for (let o = 0; o < other.count; o++) {
      if (route !== null && !route(o, ROUTED)) continue;
      const id = route === null ? this.idOfWords(other.words, o * 4) : this.idOfWords(ROUTED, 0);
      this.mergeChain(other, o, id, max, fold);
    }
    if (fold || this.rows) return;
    const up = other.userPool;
    for (let u = 0; u < other.userNames.length; u++) {
      const o = other.userAddress[u]!;
      if (route !== null && !route(o, ROUTED)) continue;
      const id = route === null ? this.idOfWords(other.words, o * 4) : this.idOfWords(ROUTED, 0);
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

  /**
   * Adds the buckets of address `o` of `other` to those of `id` here (as copyFrom does, which
   * see); `fold`: `o` is an address added up into row `id`, counted once in its newest minute.
   * `start`: a bucket of `id` where the search may start (bucket's `after`), or NONE. Returns the
   * bucket their newest went into (NONE: they have none).
   */
  private mergeChain(other: Tally, o: number, id: number, max: boolean, fold: boolean, start = NONE): number {
    if (this.heads[id] === NONE && !max) {
      // none here yet: its buckets as they are (and, folded, one address in its newest)
      this.copyChain(other, o, id);
      if (fold && this.heads[id] !== NONE) this.addToSlot(this.heads[id]!, FOLDED_ADDRESSES_SLOT, 1);
      return this.heads[id]!;
    }
    const theirs = other.pool;
    let newest = NONE;
    let cursor = start; // their chain runs newest first: each of their buckets lies after the one before
    for (let r = other.heads[o]!; r !== NONE; r = theirs[r * STRIDE + NEXT]!) {
      const from = r * STRIDE;
      const mine = this.bucket(id, theirs[from + KEY]!, theirs[from + FIRST]!, theirs[from + LAST]!, cursor);
      if (newest === NONE) {
        newest = mine;
        if (fold) this.addToSlot(mine, FOLDED_ADDRESSES_SLOT, 1);
      }
      cursor = mine;
      if (!max) {
        this.addCounts(mine, other, r);
        continue;
      }
      THEIR_COUNTS.fill(0);
      other.gather(r, THEIR_COUNTS);
      MY_COUNTS.fill(0);
      this.gather(mine, MY_COUNTS);
      for (let i = 0; i < SLOT_COUNT; i++) {
        const add = THEIR_COUNTS[i]! - MY_COUNTS[i]!;
        if (add > 0) this.addToSlot(mine, i, add);
      }
    }
    return newest;
  }

  /**
   * Gives address `id` (new here, no buckets yet) copies of the buckets of address `o` of
   * `other`: the counts bucket() and addCounts() would give it, record for record, without the
   * search (pairs in their order; a folded row's address count is added after them, not before).
   */
  private copyChain(other: Tally, o: number, id: number): void {
    const theirs = other.pool;
    let previous = NONE;
    for (let r = other.heads[o]!; r !== NONE; r = theirs[r * STRIDE + NEXT]!) {
      const made = this.copyRecord(theirs, r);
      if (previous === NONE) this.heads[id] = made;
      else this.pool[previous * STRIDE + NEXT] = made;
      previous = made;
    }
  }

  /** A copy of record `r` of `theirs` and the records holding its further pairs, with no next bucket: its number. */
  private copyRecord(theirs: Int32Array, r: number): number {
    const made = this.newRecord();
    const pool = this.pool; // newRecord may have grown it
    const at = made * STRIDE;
    for (let k = 0; k < STRIDE; k++) pool[at + k] = theirs[r * STRIDE + k]!;
    pool[at + NEXT] = NONE;
    const more = theirs[r * STRIDE + MORE]! - 1;
    if (more !== NONE) {
      const copy = this.copyRecord(theirs, more);
      this.pool[at + MORE] = copy + 1;
    }
    return made;
  }

  /** The tally of folded rows, made when missing. */
  foldedRows(): Tally {
    return (this.folded ??= Tally.ofRows(this.limit));
  }

  /** An empty tally of folded rows, for a tally of `limit` addresses. */
  static ofRows(limit: number = tallyBound.limit): Tally {
    return new Tally(Math.max(16, Math.floor(limit / 10)), true);
  }

  /**
   * Brings the tally back to half its limit: the addresses seen least lately are added up into
   * folded rows, per IPv6 /64 and one row for IPv4. Ranked above the rest, in this order:
   * clients that logged in (real accounts: a flood cannot make those), offenders (as many
   * events of the counted kinds as the lower threshold), clients that had mail accepted (they
   * spare their range). So an address keeps its exact count while fewer than half the limit of
   * addresses ranked above it, or of its rank and seen since its last event, are in the tally.
   * In a tally of rows, the half of the rows with the fewest events is added up one step wider
   * (/64 to /48, /48 to one row per family).
   */
  compact(): void {
    this.fold(false);
    // rows each in a network of its own stay as many one step wider: then the rest go into the family's row
    if (this.rows && this.count > this.limit) this.fold(true);
  }

  /** compact, once; `widest`: in a tally of rows, the quiet rows go straight into their family's row. */
  private fold(widest: boolean): void {
    const n = this.count;
    const keep = Math.max(1, Math.floor(this.limit / 2));
    if (n <= keep) return;
    const keys = new Float64Array(n);
    const pool = this.pool;
    const words = this.words;
    const offender = tallyBound.offender;
    let countedSlots = 0; // a bit per slot
    for (const kind of tallyBound.counted) countedSlots |= 1 << KIND_INDEX[kind];
    for (let id = 0; id < n; id++) {
      this.totalsOf(id, countedSlots);
      if (this.rows) {
        keys[id] = rowKey(words, id, TOTALS[0]!, n);
        continue;
      }
      const age = Math.floor((id / n) * 2 ** 20); // among equals, the newest first
      const tier = TOTALS[2]! > 0 ? 3 : TOTALS[1]! >= offender ? 2 : TOTALS[3]! > 0 ? 1 : 0; // logins, offenders, accepted mail
      const head = this.heads[id]!;
      const minute = head === NONE ? 0 : Math.max(0, pool[head * STRIDE + KEY]!); // its newest minute (2^26 minutes: to the year 2097)
      keys[id] = tier * 2 ** 46 + Math.min(minute, 2 ** 26 - 1) * 2 ** 20 + age;
    }
    const cut = kthSmallest(keys.slice(), n - keep);
    const old = this.emptied();
    const kept = (o: number, into: Int32Array) => {
      if (keys[o]! < cut) return false;
      for (let k = 0; k < 4; k++) into[k] = old.words[o * 4 + k]!;
      return true;
    };
    if (this.rows) {
      // every row stays, the quiet ones one step wider
      this.copyFrom(old, false, (o, into) => kept(o, into) || widerRow(old.words, o, into, widest), false);
    } else {
      this.copyFrom(old, false, kept, false);
      this.foldedRows().addFolded(old, (o) => keys[o]! < cut);
    }
    this.spare = { table: old.table, heads: old.heads, pool: old.pool };
  }

  /**
   * In a tally of rows: adds up the addresses of `from` that `folded` picks, each into its row
   * (rowOf), then compacts when the rows are too many. What that leaves is planned on the rows'
   * numbers and events first, and each address's buckets then go straight to the row they end
   * in: the rows a compaction would widen at once are never made (on a flood of many /64s, each
   * compaction made 100,000 /64 rows, to widen nine in ten of them to /48s and most of those to
   * the family's row, which took half the time the tally took). Rows, numbers and counts come
   * out as copyFrom and compact would leave them (test/fold.test.ts compares the two).
   */
  addFolded(from: Tally, folded: (o: number) => boolean): void {
    // the rows they go into, numbered as copyFrom numbers them: those held first
    const planned = new WordTable(this.count + 64); // (grown as needed: most floods fold into a few rows)
    for (let r = 0; r < this.count; r++) planned.idOf(this.words, r * 4);
    const rowOfAddress = new Int32Array(from.count).fill(-1);
    for (let o = 0; o < from.count; o++) if (folded(o) && rowOf(from, o, ROUTED)) rowOfAddress[o] = planned.idOf(ROUTED, 0);
    if (!foldRowsDirectly) {
      this.copyFrom(from, false, (o, into) => rowOfAddress[o] !== -1 && rowOf(from, o, into), true);
      if (this.count > this.limit) this.compact();
      return;
    }
    let rows = planned;
    const endsIn = Int32Array.from({ length: planned.size }, (_, r) => r);
    let held: Tally | null = null;
    if (planned.size > this.limit) {
      // compact() on numbers and events alone: fold(false), then fold(true) when still too many
      let events: Float64Array = new Float64Array(planned.size);
      for (let r = 0; r < this.count; r++) events[r] = this.eventsOf(r);
      for (let o = 0; o < from.count; o++) if (rowOfAddress[o] !== -1) events[rowOfAddress[o]!]! += from.eventsOf(o);
      for (const widest of [false, true]) {
        if (widest && rows.size <= this.limit) break;
        const step = this.planFold(rows, events, widest);
        for (let r = 0; r < endsIn.length; r++) endsIn[r] = step.into[endsIn[r]!]!;
        rows = step.rows;
        events = step.events;
      }
      // then the rows themselves, in that order, and into each the counts of the rows held that end in it
      held = this.emptied();
      for (let f = 0; f < rows.size; f++) this.idOfWords(rows.words, f * 4);
      for (let r = 0; r < held.count; r++) this.mergeChain(held, r, endsIn[r]!, false, false);
    } else {
      for (let f = this.count; f < rows.size; f++) this.idOfWords(rows.words, f * 4); // (no compaction: the rows held stay)
    }
    // each address into the row it ends in, the newest first, each row's search starting at the
    // minute the one before went into (a row that takes most of a flood holds a bucket for every
    // minute of it, and the search from its newest walked them for each address)
    const at = new Int32Array(rows.size).fill(NONE);
    for (let o = from.count - 1; o >= 0; o--) {
      if (rowOfAddress[o] === -1 || from.heads[o] === NONE) continue;
      const f = endsIn[rowOfAddress[o]!]!;
      at[f] = this.mergeChain(from, o, f, false, true, at[f]!);
    }
    if (held !== null) this.spare = { table: held.table, heads: held.heads, pool: held.pool };
  }

  /**
   * fold(widest) on rows known by their words and events alone: the rows it leaves (numbered as
   * fold numbers them), where each of `rows` goes, and the events of each row it leaves.
   */
  private planFold(rows: WordTable, events: Float64Array, widest: boolean): { rows: WordTable; into: Int32Array; events: Float64Array } {
    const n = rows.size;
    const keep = Math.max(1, Math.floor(this.limit / 2));
    const keys = new Float64Array(n);
    for (let r = 0; r < n; r++) keys[r] = rowKey(rows.words, r, events[r]!, n);
    const cut = kthSmallest(keys.slice(), n - keep);
    const left = new WordTable(Math.min(n, this.limit + 1));
    const into = new Int32Array(n);
    let sums = new Float64Array(Math.min(n, this.limit + 1));
    for (let r = 0; r < n; r++) {
      if (keys[r]! >= cut) ROUTED.set(rows.words.subarray(r * 4, r * 4 + 4));
      else widerRow(rows.words, r, ROUTED, widest);
      const f = left.idOf(ROUTED, 0);
      if (f === sums.length) sums = grown(sums, sums.length * 2);
      into[r] = f;
      sums[f]! += events[r]!;
    }
    return { rows: left, into, events: sums };
  }

  /** The events of address (or row) `id`, of every kind, as fold ranks rows. */
  private eventsOf(id: number): number {
    this.totalsOf(id, 0);
    return TOTALS[0]!;
  }

  /**
   * The totals of address (or row) `id` that fold ranks by, pair by pair, in TOTALS: its events
   * of every kind, of the kinds in `countedSlots` (a bit per slot), its logins and accepted mail.
   */
  private totalsOf(id: number, countedSlots: number): void {
    const pool = this.pool;
    let events = 0;
    let counted = 0;
    let logins = 0;
    let accepted = 0;
    for (let r = this.heads[id]!; r !== NONE; r = pool[r * STRIDE + NEXT]!) {
      pairs: for (let m = r; m !== NONE; m = pool[m * STRIDE + MORE]! - 1) {
        for (let p = m * STRIDE + PAIR0; p <= m * STRIDE + PAIR1; p++) {
          const v = pool[p]!;
          if (v === 0) break pairs;
          const slot = (v >>> COUNT_BITS) - 1;
          const count = v & COUNT_MAX;
          if (slot < EVENT_KINDS.length) events += count;
          if ((countedSlots >>> slot) & 1) counted += count;
          if (slot === SASL_SUCCESS) logins += count;
          else if (slot === ACCEPTED) accepted += count;
        }
      }
    }
    TOTALS[0] = events;
    TOTALS[1] = counted;
    TOTALS[2] = logins;
    TOTALS[3] = accepted;
  }

  /**
   * The arrays the last compaction emptied, for the next one to fill: on a flood a tally compacts
   * every half limit of new addresses, and fresh pages cost more than clearing used ones.
   */
  private spare: { table: WordTable; heads: Tally["heads"]; pool: Tally["pool"] } | null = null;

  /** Moves this tally's addresses, counts and usernames into a new tally, which it returns; this one is left empty (its folded rows stay). */
  private emptied(): Tally {
    const old = new Tally(this.limit, this.rows);
    // the last compaction's arrays, cleared; else sized for the limit it will hold again before
    // the next compaction (grown step by step, its arrays were copied a dozen times)
    const spare = this.spare;
    this.spare = null;
    const addresses = this.limit + 1;
    const records = Math.ceil((this.records / Math.max(1, this.count)) * addresses * 1.25);
    [old.table, this.table] = [this.table, spare?.table.cleared() ?? new WordTable(addresses)];
    [old.heads, this.heads] = [this.heads, spare?.heads ?? new Int32Array(addresses)];
    [old.pool, this.pool] = [this.pool, spare?.pool.fill(0) ?? new Int32Array(Math.max(256, records) * STRIDE)];
    [old.records, this.records] = [this.records, 0];
    [old.userMaps, this.userMaps] = [this.userMaps, []];
    [old.userAddress, this.userAddress] = [this.userAddress, new Int32Array(16)];
    [old.userNames, this.userNames] = [this.userNames, []];
    [old.userHeads, this.userHeads] = [this.userHeads, new Int32Array(16)];
    [old.userPool, this.userPool] = [this.userPool, new Int32Array(64 * U_STRIDE)];
    [old.userRecords, this.userRecords] = [this.userRecords, 0];
    return old;
  }

  /**
   * Takes `words` (the addresses of another tally, distinct, one per head) and their `heads` as
   * this empty tally's: the table is built once at its size, not grown from empty (transfer.ts).
   */
  takeAddresses(words: Int32Array, heads: Int32Array<ArrayBuffer>): void {
    if (this.count !== 0) throw new Error('tally: takeAddresses needs an empty tally');
    if (heads.length === 0) return;
    this.table = WordTable.of(words, heads.length);
    this.heads = heads;
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
   * into the minute) widen its span. `after`: a record of this address where the search may
   * start (it is the one when it holds `key`; from the head when it is older), or NONE.
   */
  private bucket(id: number, key: number, first: number, last: number, after: number): number {
    const pool = this.pool;
    if (after !== NONE) {
      const at = pool[after * STRIDE + KEY]!;
      if (at === key) return this.widened(after, first, last);
      if (at < key) after = NONE;
    }
    let previous = after;
    let r = after === NONE ? this.heads[id]! : pool[after * STRIDE + NEXT]!;
    while (r !== NONE && pool[r * STRIDE + KEY]! > key) {
      previous = r;
      r = pool[r * STRIDE + NEXT]!;
    }
    if (r !== NONE && pool[r * STRIDE + KEY] === key) return this.widened(r, first, last);
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

  /** Bucket `record`, its span widened to take `first` and `last` (ms into its minute). */
  private widened(record: number, first: number, last: number): number {
    const at = record * STRIDE;
    if (first < this.pool[at + FIRST]!) this.pool[at + FIRST] = first;
    if (last > this.pool[at + LAST]!) this.pool[at + LAST] = last;
    return record;
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

  /** Adds every count of bucket `record` of `other` to bucket `mine`, pair by pair. */
  private addCounts(mine: number, other: Tally, record: number): void {
    const theirs = other.pool;
    for (let r = record; r !== NONE; r = theirs[r * STRIDE + MORE]! - 1) {
      const a = theirs[r * STRIDE + PAIR0]!;
      if (a === 0) return;
      this.addToSlot(mine, (a >>> COUNT_BITS) - 1, a & COUNT_MAX);
      const b = theirs[r * STRIDE + PAIR1]!;
      if (b === 0) return;
      this.addToSlot(mine, (b >>> COUNT_BITS) - 1, b & COUNT_MAX);
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

  /**
   * Room for `records` buckets in all. The pool grows in place: its memory has address space for
   * POOL_MAX_BYTES set aside and pages used only as records are (a copy into a bigger array held
   * both for a moment, and left the old one for the collector: on a 30-day log that was the run's
   * peak).
   */
  reserve(records: number): void {
    const ints = records * STRIDE;
    if (ints <= this.pool.length) return;
    const grown = grownInPlace(this.pool, ints);
    if (grown !== null) {
      this.pool = grown;
      return;
    }
    // into a growable pool, once; past the space set aside, or with none to be had, a copy as before
    const pool = (ints * 4 <= POOL_MAX_BYTES ? growablePool(ints) : null) ?? new Int32Array(ints);
    pool.set(this.pool);
    this.pool = pool;
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
    // a copy of its own: the parser's is a slice of the log line, which it would keep alive
    const own = Buffer.from(user, 'utf8').toString('utf8');
    this.names.set(own, own);
    return own;
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
    const sums = new Float64Array(SLOT_COUNT);
    for (let id = 0; id < this.count; id++) if (this.windowSumOf(id, fromKey, toKey, sums)) visit(id, sums, this.windowFirst, this.windowLast);
  }

  /** windowSums for one address: whether it has events in the window; its counts in `sums`, its first and last event in windowFirst and windowLast. */
  windowSumOf(id: number, fromKey: number, toKey: number, sums: Float64Array): boolean {
    const pool = this.pool;
    let r = this.heads[id]!;
    while (r !== NONE && pool[r * STRIDE + KEY]! > toKey) r = pool[r * STRIDE + NEXT]!;
    if (r === NONE || pool[r * STRIDE + KEY]! < fromKey) return false;
    sums.fill(0);
    this.windowLast = pool[r * STRIDE + KEY]! * BUCKET_MS + pool[r * STRIDE + LAST]!;
    for (; r !== NONE && pool[r * STRIDE + KEY]! >= fromKey; r = pool[r * STRIDE + NEXT]!) {
      this.gather(r, sums);
      this.windowFirst = pool[r * STRIDE + KEY]! * BUCKET_MS + pool[r * STRIDE + FIRST]!;
    }
    return true;
  }

  /** The first and last event windowSumOf found. */
  windowFirst = 0;
  windowLast = 0;

  /** Counted events per minute of the window, for countPerHour (the folded rows' too). */
  perMinute(visit: (key: number, counts: Float64Array) => void): void {
    this.folded?.perMinute(visit);
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

/**
 * The k-th smallest of `a` (0-based), which it reorders: a quickselect for compact's cut (a full
 * sort of the keys cost more than the rest of it), with the median of three elements taken at
 * random as the pivot. A flood's sender chooses the order of the keys (when each address comes
 * back), and some orders make any fixed pivot rule quadratic (the first, middle and last element
 * ran out of rounds on a plain flood's nearly sorted keys); the answer does not depend on the
 * pivots. Past `rounds` rounds (2 log2(n) + 8) the rest of the range is sorted instead (n log n).
 */
export function kthSmallest(a: Float64Array, k: number, rounds = 2 * Math.ceil(Math.log2(a.length + 1)) + 8): number {
  let lo = 0;
  let hi = a.length - 1;
  for (; lo < hi; rounds--) {
    if (rounds === 0) {
      a.subarray(lo, hi + 1).sort();
      return a[k]!;
    }
    const span = hi - lo + 1;
    const x = a[lo + Math.floor(Math.random() * span)]!;
    const y = a[lo + Math.floor(Math.random() * span)]!;
    const z = a[lo + Math.floor(Math.random() * span)]!;
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : x < z ? x : y < z ? z : y;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i++] = a[j]!;
        a[j--] = t;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k]!;
  }
  return a[k]!;
}

/** A row's rank in fold: by its events (2^28 levels), the widest always kept; among equals, the newest first. */
function rowKey(words: Int32Array, id: number, events: number, n: number): number {
  return (words[id * 4 + 2] === 0 ? 2 ** 28 : Math.min(events, 2 ** 28 - 1)) * 2 ** 20 + Math.floor((id / n) * 2 ** 20);
}

/** The folded row address `id` of `tally` is added up into (see FOLD_PREFIX6), in `into`: always true. */
function rowOf(tally: Tally, id: number, into: Int32Array): boolean {
  const ipv6 = tally.isIpv6(id);
  into[0] = ipv6 ? tally.words[id * 4]! : 0;
  into[1] = ipv6 ? tally.words[id * 4 + 1]! : 0;
  into[2] = ipv6 ? FOLD_PREFIX6 : 0;
  into[3] = ipv6 ? 6 : 4;
  return true;
}

/** Folded row `id` of `words` one step wider (/64 to /48, /48 to the family's one row; `widest`: to that row), in `into`: always true. */
function widerRow(words: Int32Array, id: number, into: Int32Array, widest: boolean): boolean {
  const bits = widest ? 0 : words[id * 4 + 2]!;
  into[0] = bits === FOLD_PREFIX6 ? words[id * 4]! : 0;
  into[1] = bits === FOLD_PREFIX6 ? words[id * 4 + 1]! & (-1 << (64 - FOLD_NETWORK6)) : 0;
  into[2] = bits === FOLD_PREFIX6 ? FOLD_NETWORK6 : 0;
  into[3] = words[id * 4 + 3]!;
  return true;
}
