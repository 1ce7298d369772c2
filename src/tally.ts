/**
 * Tally: events counted per client address, per kind, per one-minute bucket.
 * Pure. Buckets make a tally independent of the window asked for, so results can
 * be merged (files of one log family add up; copies of one event in mail.log and
 * mail.warn count once) and windows can be cut from them afterwards, to the minute.
 */
import { addressSortKey, normaliseAddress } from './address.js';
import { EVENT_KINDS, KIND_INDEX, SLOT_COUNT, UNNAMED_RECIPIENT_REJECT_SLOT, type EventKind } from './kinds.js';
import type { MailEvent } from './parse.js';

export const BUCKET_MS = 60_000;

export interface Bucket {
  /** Earliest and latest event time in this bucket (ms since the epoch). */
  first: number;
  last: number;
  /** Events per kind, indexed by KIND_INDEX, then the qualifying slots of kinds.ts (SLOT_COUNT in all). */
  /** A plain array: buckets are many, and small arrays cost far less to make than typed ones. */
  counts: number[];
}

/** Per minute: SASL failures that named this user, and logins as this user. */
type UserCounts = [failures: number, logins: number];

/**
 * Distinct usernames kept per address. Failures naming a further username are kept under
 * OTHER_USERS, which no login matches: they always count. Logins are always kept (they are
 * real accounts, so there are few).
 */
export const MAX_USERS_PER_ADDRESS = 64;
/** Not a username the parser can give (it cuts usernames at MAX_USERNAME characters, and this is longer). */
export const OTHER_USERS = '\u0000'.repeat(200);

export class Tally {
  /** address -> bucket number (time / BUCKET_MS, floored) -> bucket */
  readonly addresses = new Map<string, Map<number, Bucket>>();
  /** address -> username -> bucket number -> counts: only addresses whose SASL lines named a user. */
  readonly users = new Map<string, Map<string, Map<number, UserCounts>>>();

  add(event: MailEvent): void {
    const key = Math.floor(event.time / BUCKET_MS);
    const bucket = this.bucketFor(event.address, key, event.time, event.time);
    bucket.counts[KIND_INDEX[event.kind]]! += event.count ?? 1;
    if (event.unnamed === true) bucket.counts[UNNAMED_RECIPIENT_REJECT_SLOT]!++;
    if (event.user !== undefined) {
      if (event.kind === 'saslFailure') this.userCountsFor(event.address, event.user, key, false)[0]++;
      else if (event.kind === 'saslSuccess') this.userCountsFor(event.address, event.user, key, true)[1]++;
    }
  }

  /** Adds every count of `other` to this tally (files of one family, read one after the other). */
  addAll(other: Tally): void {
    this.combine(other, (mine, theirs) => mine + theirs);
  }

  /**
   * Keeps, per address, minute and kind, the larger count of this tally and `other`.
   * For logs that hold copies of the same lines (mail.log and mail.warn written by
   * one rsyslog), this counts each event once; for logs that split the kinds between
   * them (mail.info vs mail.warn), it keeps every kind from the file that has it.
   */
  maxAll(other: Tally): void {
    this.combine(other, (mine, theirs) => Math.max(mine, theirs));
  }

  private combine(other: Tally, pick: (mine: number, theirs: number) => number): void {
    for (const [address, buckets] of other.addresses) {
      for (const [key, theirs] of buckets) {
        const mine = this.bucketFor(address, key, theirs.first, theirs.last);
        for (let i = 0; i < mine.counts.length; i++) mine.counts[i] = pick(mine.counts[i]!, theirs.counts[i]!);
      }
    }
    for (const [address, users] of other.users) {
      for (const [user, buckets] of users) {
        for (const [key, theirs] of buckets) {
          const mine = this.userCountsFor(address, user, key, theirs[1] > 0);
          mine[0] = pick(mine[0], theirs[0]);
          mine[1] = pick(mine[1], theirs[1]);
        }
      }
    }
  }

  /** The counts of `user` at `address` in minute `key`; past the cap, a failure-only user is counted as OTHER_USERS. */
  private userCountsFor(address: string, user: string, key: number, login: boolean): UserCounts {
    let users = this.users.get(address);
    if (users === undefined) {
      users = new Map();
      this.users.set(address, users);
    }
    let buckets = users.get(user);
    if (buckets === undefined) {
      if (!login && user !== OTHER_USERS && users.size >= MAX_USERS_PER_ADDRESS) return this.userCountsFor(address, OTHER_USERS, key, false);
      buckets = new Map();
      users.set(user, buckets);
    }
    let counts = buckets.get(key);
    if (counts === undefined) {
      counts = [0, 0];
      buckets.set(key, counts);
    }
    return counts;
  }

  /** The earliest and latest event, or null when there is none. */
  span(): { first: number; last: number } | null {
    let first = Infinity;
    let last = -Infinity;
    for (const buckets of this.addresses.values()) {
      for (const bucket of buckets.values()) {
        if (bucket.first < first) first = bucket.first;
        if (bucket.last > last) last = bucket.last;
      }
    }
    return first === Infinity ? null : { first, last };
  }

  /**
   * A compact binary form, for the state file and the worker thread: per address its
   * text, then per bucket the minute, the first and last event as offsets into the
   * minute, a bit mask of the slots present and their counts; then per address and
   * username, per minute the failures and logins.
   */
  serialize(): Buffer {
    const parts: Buffer[] = [];
    const header = Buffer.alloc(4);
    header.writeUInt32LE(this.addresses.size);
    parts.push(header);
    for (const [address, buckets] of this.addresses) {
      let size = 2 + address.length + 4;
      for (const bucket of buckets.values()) size += 16 + 4 * countNonZero(bucket.counts);
      const out = Buffer.alloc(size);
      let at = out.writeUInt16LE(address.length, 0);
      at += out.write(address, at, 'latin1');
      at = out.writeUInt32LE(buckets.size, at);
      for (const [key, bucket] of buckets) {
        at = out.writeInt32LE(key, at);
        at = out.writeUInt32LE(bucket.first - key * BUCKET_MS, at);
        at = out.writeUInt32LE(bucket.last - key * BUCKET_MS, at);
        let mask = 0;
        for (let i = 0; i < bucket.counts.length; i++) if (bucket.counts[i]! > 0) mask |= 1 << i;
        at = out.writeUInt32LE(mask >>> 0, at);
        for (let i = 0; i < bucket.counts.length; i++) if (bucket.counts[i]! > 0) at = out.writeUInt32LE(bucket.counts[i]!, at);
      }
      parts.push(out);
    }
    let pairs = 0;
    for (const users of this.users.values()) pairs += users.size;
    const usersHeader = Buffer.alloc(4);
    usersHeader.writeUInt32LE(pairs);
    parts.push(usersHeader);
    for (const [address, users] of this.users) {
      for (const [user, buckets] of users) {
        const userBytes = Buffer.from(user, 'utf8');
        const out = Buffer.alloc(2 + address.length + 2 + userBytes.length + 4 + 12 * buckets.size);
        let at = out.writeUInt16LE(address.length, 0);
        at += out.write(address, at, 'latin1');
        at = out.writeUInt16LE(userBytes.length, at);
        at += userBytes.copy(out, at);
        at = out.writeUInt32LE(buckets.size, at);
        for (const [key, counts] of buckets) {
          at = out.writeInt32LE(key, at);
          at = out.writeUInt32LE(counts[0], at);
          at = out.writeUInt32LE(counts[1], at);
        }
        parts.push(out);
      }
    }
    return Buffer.concat(parts);
  }

  /**
   * The inverse of serialize(); throws on data that is not one, or that holds anything
   * but canonical addresses (a state file is input like any other).
   */
  static deserialize(data: Buffer): Tally {
    const tally = new Tally();
    let at = 0;
    const addresses = data.readUInt32LE(at);
    at += 4;
    for (let a = 0; a < addresses; a++) {
      const length = data.readUInt16LE(at);
      const address = readAddress(data, at + 2, length);
      at += 2 + length;
      const count = data.readUInt32LE(at);
      at += 4;
      const buckets = new Map<number, Bucket>();
      for (let b = 0; b < count; b++) {
        const key = data.readInt32LE(at);
        const first = key * BUCKET_MS + data.readUInt32LE(at + 4);
        const last = key * BUCKET_MS + data.readUInt32LE(at + 8);
        const mask = data.readUInt32LE(at + 12);
        at += 16;
        if (mask >= 2 ** SLOT_COUNT) throw new Error('tally data names an unknown event kind');
        const counts = newCounts();
        for (let i = 0; i < counts.length; i++) {
          if ((mask & (1 << i)) === 0) continue;
          counts[i] = data.readUInt32LE(at);
          at += 4;
        }
        buckets.set(key, { first, last, counts });
      }
      tally.addresses.set(address, buckets);
    }
    const pairs = data.readUInt32LE(at);
    at += 4;
    for (let p = 0; p < pairs; p++) {
      const length = data.readUInt16LE(at);
      const address = readAddress(data, at + 2, length);
      at += 2 + length;
      const userLength = data.readUInt16LE(at);
      const user = data.toString('utf8', at + 2, at + 2 + userLength);
      at += 2 + userLength;
      const count = data.readUInt32LE(at);
      at += 4;
      const buckets = new Map<number, UserCounts>();
      for (let b = 0; b < count; b++) {
        buckets.set(data.readInt32LE(at), [data.readUInt32LE(at + 4), data.readUInt32LE(at + 8)]);
        at += 12;
      }
      let users = tally.users.get(address);
      if (users === undefined) tally.users.set(address, (users = new Map()));
      users.set(user, buckets);
    }
    if (at !== data.length) throw new Error(`tally data has ${data.length - at} bytes too many`);
    return tally;
  }

  private bucketFor(address: string, key: number, first: number, last: number): Bucket {
    let buckets = this.addresses.get(address);
    if (buckets === undefined) {
      buckets = new Map();
      this.addresses.set(address, buckets);
    }
    let bucket = buckets.get(key);
    if (bucket === undefined) {
      bucket = { first, last, counts: newCounts() };
      buckets.set(key, bucket);
    } else {
      if (first < bucket.first) bucket.first = first;
      if (last > bucket.last) bucket.last = last;
    }
    return bucket;
  }
}

const ZERO_COUNTS: readonly number[] = new Array<number>(SLOT_COUNT).fill(0);
const newCounts = (): number[] => ZERO_COUNTS.slice();

function readAddress(data: Buffer, from: number, length: number): string {
  if (from + length > data.length) throw new Error('tally data ends inside an address');
  const address = data.toString('latin1', from, from + length);
  if (normaliseAddress(address) !== address) throw new Error(`tally data holds ${JSON.stringify(address.slice(0, 60))}, which is not an address`);
  return address;
}

function countNonZero(counts: readonly number[]): number {
  let n = 0;
  for (const c of counts) if (c > 0) n++;
  return n;
}

/** A time range, both ends included, in ms since the epoch; infinite ends for `--window all`. */
export interface TimeWindow {
  from: number;
  to: number;
}

export const ALL_TIME: TimeWindow = { from: -Infinity, to: Infinity };

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
  /** SASL usernames named in the window: failures naming each, logins as each (absent: none named). */
  users?: Map<string, { failures: number; logins: number }>;
  /** SASL failures naming usernames past MAX_USERS_PER_ADDRESS: no login spares them. */
  otherUserFailures?: number;
}

/**
 * Per address, the events inside `window` (to the minute: a bucket counts when its
 * minute lies in the window), with `total` the sum of the `counted` kinds.
 * Every address with at least one event of any kind in the window is returned,
 * worst first (highest total, then most events, then by address).
 */
export function summarise(tally: Tally, window: TimeWindow, counted: readonly EventKind[]): AddressSummary[] {
  const fromKey = Math.floor(window.from / BUCKET_MS);
  const toKey = Math.floor(window.to / BUCKET_MS);
  const countedIndexes = counted.map((kind) => KIND_INDEX[kind]);
  const out: Array<AddressSummary & { all: number; key: string }> = [];
  for (const [address, buckets] of tally.addresses) {
    const sums = newCounts();
    let firstSeen = Infinity;
    let lastSeen = -Infinity;
    for (const [key, bucket] of buckets) {
      if (key < fromKey || key > toKey) continue;
      for (let i = 0; i < sums.length; i++) sums[i]! += bucket.counts[i]!;
      if (bucket.first < firstSeen) firstSeen = bucket.first;
      if (bucket.last > lastSeen) lastSeen = bucket.last;
    }
    if (firstSeen === Infinity) continue;
    const events = {} as Record<EventKind, number>;
    let all = 0;
    for (let i = 0; i < EVENT_KINDS.length; i++) {
      events[EVENT_KINDS[i]!] = sums[i]!;
      all += sums[i]!;
    }
    if (all === 0) continue;
    let total = 0;
    for (const i of countedIndexes) total += sums[i]!;
    const summary: AddressSummary & { all: number; key: string } = {
      address, events, total, firstSeen, lastSeen, unnamedRecipientRejects: sums[UNNAMED_RECIPIENT_REJECT_SLOT]!, all, key: addressSortKey(address),
    };
    const users = tally.users.get(address);
    if (users !== undefined) summariseUsers(summary, users, fromKey, toKey);
    out.push(summary);
  }
  out.sort((a, b) => b.total - a.total || b.all - a.all || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return out.map(({ all: _all, key: _key, ...summary }) => summary);
}

function summariseUsers(summary: AddressSummary, users: Map<string, Map<number, UserCounts>>, fromKey: number, toKey: number): void {
  for (const [user, buckets] of users) {
    let failures = 0;
    let logins = 0;
    for (const [key, counts] of buckets) {
      if (key < fromKey || key > toKey) continue;
      failures += counts[0];
      logins += counts[1];
    }
    if (failures === 0 && logins === 0) continue;
    if (user === OTHER_USERS) summary.otherUserFailures = failures;
    else (summary.users ??= new Map()).set(user, { failures, logins });
  }
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
  for (const buckets of tally.addresses.values()) {
    for (const [key, bucket] of buckets) {
      const slot = Math.floor((key * BUCKET_MS) / HOUR) - (last - hours + 1);
      if (slot < 0 || slot >= hours) continue;
      for (const i of indexes) out[slot]! += bucket.counts[i]!;
    }
  }
  return out;
}
