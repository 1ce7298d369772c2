/**
 * The tally's codec: a compact binary form for the scan state's files (store/scan-state.ts),
 * whole or per UTC day, and its inverse, which treats the bytes as input like any other. Pure.
 */
import { SLOT_COUNT } from '../read/kinds.js';
import { FIRST, KEY, LAST, MINUTES_PER_DAY, NEXT, NONE, STRIDE, U_FAILURES, U_KEY, U_LOGINS, U_NEXT, U_STRIDE } from './layout.js';
import { BUCKET_MS, FOLD_NETWORK6, FOLD_PREFIX6, Tally } from './tally.js';
import { grown } from './words.js';

/**
 * The format of what this codec writes, and so of the scan state that keeps it (store/scan-state.ts
 * writes it as its version: a state of another version is read again from the logs).
 * 9: the addresses folded past the tally's limit, as rows after the usernames; 8: addresses as their bytes, not their text (a flood's million addresses made a million
 * strings on each write and read); 7: six more event kinds (the tally's slots moved); 6: a
 * log's tally is kept as day segments; 5: each address's minutes newest first, with their byte length.
 */
export const TALLY_FORMAT = 9;

/** An address in the data: a tag byte, then its 4 bytes (IPv4) or 16 (IPv6), big-endian. */
const TAG_IPV4 = 4;
const TAG_IPV6 = 6;

/**
 * A compact binary form, for the state file and the worker thread: the count of
 * addresses, then per address its bytes, the byte length of its buckets, their count and
 * the buckets newest first (minute, first and last event as ms into the minute, a bit
 * mask of the slots present and their counts); then per address and username, per
 * minute the failures and logins; then the folded rows (Tally.folded) as a section of the same
 * form, after its byte length (0: none). The byte length lets a reader skip the minutes it does not need.
 */
export function serializeTally(tally: Tally): Buffer {
  return serializeSection(tally, -Infinity, Infinity).data;
}

/** The UTC days (numbered from the epoch) that `tally` has events on, in order. */
export function tallyDays(tally: Tally): number[] {
  const pool = tally.pool;
  const days = new Set<number>();
  for (let r = 0; r < tally.records; r++) days.add(Math.floor(pool[r * STRIDE + KEY]! / MINUTES_PER_DAY));
  for (const day of tally.folded === null ? [] : tallyDays(tally.folded)) days.add(day);
  return [...days].sort((a, b) => a - b);
}

/**
 * The minutes of UTC day `day` of `tally`, serialized (a day segment; the scan state keeps a
 * log's tally per day, so a cron run reads only the days of its window and rewrites only the
 * days new lines fall on), with its first and last event. `whole`: the caller knows the tally
 * holds every minute of that day, though it was decoded from a horizon on (partial).
 */
export function serializeDay(tally: Tally, day: number, whole = false): { data: Buffer; first: number; last: number } {
  return serializeSection(tally, day * MINUTES_PER_DAY, (day + 1) * MINUTES_PER_DAY - 1, whole);
}

/** The minutes fromKey..toKey of every address and username (those with none left out). */
function serializeSection(tally: Tally, fromKey: number, toKey: number, whole = false): { data: Buffer; first: number; last: number } {
  if (tally.partial && !whole) throw new Error('a tally decoded from a horizon on cannot be written back (its older minutes are missing)');
  const pool = tally.pool;
  /** The newest record of `id` at or before toKey, or NONE. */
  const startOf = (id: number) => {
    let r = tally.heads[id]!;
    while (r !== NONE && pool[r * STRIDE + KEY]! > toKey) r = pool[r * STRIDE + NEXT]!;
    return r !== NONE && pool[r * STRIDE + KEY]! >= fromKey ? r : NONE;
  };
  const counts = new Float64Array(SLOT_COUNT);
  let size = 8;
  // the addresses with minutes in the section (by number), and their newest such minute
  let ids = new Int32Array(1024);
  let starts = new Int32Array(1024);
  let present = 0;
  for (let id = 0; id < tally.count; id++) {
    const start = startOf(id);
    if (start === NONE) continue;
    if (present === ids.length) {
      ids = grown(ids, present * 2);
      starts = grown(starts, present * 2);
    }
    ids[present] = id;
    starts[present++] = start;
    size += addressBytes(tally, id) + 8;
    for (let r = start; r !== NONE && pool[r * STRIDE + KEY]! >= fromKey; r = pool[r * STRIDE + NEXT]!) {
      size += 12;
      counts.fill(0);
      tally.gather(r, counts);
      for (let i = 0; i < SLOT_COUNT; i++) if (counts[i] !== 0) size += 4;
    }
  }
  // the user chains with minutes in the section: their newest such minute (NONE: none), sized here and
  // written into the same buffer (a buffer per chain was two objects per address in a username flood)
  const up = tally.userPool;
  const userStarts = new Int32Array(tally.userNames.length).fill(NONE);
  let pairs = 0;
  for (let u = 0; u < tally.userNames.length; u++) {
    let start = tally.userHeads[u]!;
    while (start !== NONE && up[start * U_STRIDE + U_KEY]! > toKey) start = up[start * U_STRIDE + U_NEXT]!;
    let count = 0;
    for (let r = start; r !== NONE && up[r * U_STRIDE + U_KEY]! >= fromKey; r = up[r * U_STRIDE + U_NEXT]!) count++;
    if (count === 0) continue;
    pairs++;
    userStarts[u] = start;
    size += addressBytes(tally, tally.userAddress[u]!) + 2 + Buffer.byteLength(tally.userNames[u]!, 'utf8') + 4 + 12 * count;
  }
  // then the folded rows' own section (Tally.folded), after its byte length (0: none)
  const rows = tally.folded === null ? null : serializeSection(tally.folded, fromKey, toKey, whole);
  const rowBytes = rows === null || rows.first === Infinity ? 0 : rows.data.length;
  size += 4 + rowBytes;
  const out = Buffer.allocUnsafe(size);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  let first = rowBytes === 0 ? Infinity : rows!.first;
  let last = rowBytes === 0 ? -Infinity : rows!.last;
  let at = 0;
  view.setUint32(at, present, true);
  at += 4;
  for (let k = 0; k < present; k++) {
    const start = starts[k]!;
    at = writeAddress(tally, ids[k]!, out, at);
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
      tally.gather(r, counts);
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
  at += 4;
  for (let u = 0; u < userStarts.length; u++) {
    const start = userStarts[u]!;
    if (start === NONE) continue;
    at = writeAddress(tally, tally.userAddress[u]!, out, at);
    const lengthAt = at;
    at += 2 + out.write(tally.userNames[u]!, at + 2, 'utf8');
    out.writeUInt16LE(at - lengthAt - 2, lengthAt);
    const countAt = at;
    at += 4;
    let count = 0;
    for (let r = start; r !== NONE && up[r * U_STRIDE + U_KEY]! >= fromKey; r = up[r * U_STRIDE + U_NEXT]!) {
      at = out.writeInt32LE(up[r * U_STRIDE + U_KEY]!, at);
      at = out.writeUInt32LE(up[r * U_STRIDE + U_FAILURES]!, at);
      at = out.writeUInt32LE(up[r * U_STRIDE + U_LOGINS]!, at);
      count++;
    }
    out.writeUInt32LE(count, countAt);
  }
  at = out.writeUInt32LE(rowBytes, at);
  if (rowBytes > 0) at += rows!.data.copy(out, at);
  if (at !== size) throw new Error(`tally codec: wrote ${at} bytes of ${size}`); // the sizing pass out of step with the writing
  return { data: out, first, last };
}

/**
 * The inverse of serializeTally; throws on data that is not one, or that holds anything
 * but canonical addresses (a state file is input like any other). With `fromMs`, minutes
 * before it are skipped (a cron run needs only its window): such a tally answers for
 * its window but cannot be serialized again.
 */
export function deserializeTally(data: Buffer, fromMs = -Infinity): Tally {
  return deserializeSection(data, fromMs, false);
}

/** deserializeTally of a tally, or (`rows`) of its folded rows' section. */
function deserializeSection(data: Buffer, fromMs: number, rows: boolean): Tally {
  const tally = rows ? Tally.ofRows() : new Tally();
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
  for (let a = 0, skip = at; a < addresses && skip + 1 <= data.length; a++) {
    skip += 1 + (data[skip] === TAG_IPV4 ? 4 : 16);
    if (skip + 8 > data.length) break;
    buckets += view.getUint32(skip + 4, true);
    skip += 8 + view.getUint32(skip, true);
  }
  tally.reserve(Math.min(buckets, Math.floor(data.length / 12)));
  for (let a = 0; a < addresses; a++) {
    at = readAddress(data, at, words);
    if (rows) checkRow(words);
    const id = tally.idOfWords(words, 0);
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
  if (rows && pairs > 0) throw new Error('tally data has usernames in its folded rows');
  for (let p = 0; p < pairs; p++) {
    at = readAddress(data, at, words);
    let id = -1; // numbered when a minute is kept: an address with none in the window is not added
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
  need(at, 4);
  const rowBytes = view.getUint32(at, true);
  at += 4;
  if (rowBytes > 0) {
    if (rows) throw new Error('tally data has folded rows inside its folded rows');
    need(at, rowBytes);
    const folded = deserializeSection(data.subarray(at, at + rowBytes), fromMs, true);
    at += rowBytes;
    if (folded.partial) tally.partial = true;
    tally.folded = folded;
  }
  if (at !== data.length) throw new Error(`tally data has ${data.length - at} bytes too many`);
  if (tally.count > tally.limit) tally.compact(); // written under a higher limit
  return tally;
}

/** Throws unless `words` is a folded row's key as tally.ts writes one: a network (/64, /48 or none) and its family. */
function checkRow(words: Int32Array): void {
  const [w0, w1, bits, family] = words as unknown as [number, number, number, number];
  const ok =
    family === 6 ? (bits === FOLD_PREFIX6 || (bits === FOLD_NETWORK6 && (w1 & 0xffff) === 0) || (bits === 0 && w0 === 0 && w1 === 0)) : family === 4 && bits === 0 && w0 === 0 && w1 === 0;
  if (!ok) throw new Error(`tally data holds a folded row ${Array.from(words, (w) => (w >>> 0).toString(16)).join(':')}, which is not a network as written`);
}

/** Bytes address `id` takes in the data: its tag and its 4 or 16 bytes. */
function addressBytes(tally: Tally, id: number): number {
  return tally.isIpv6(id) ? 17 : 5;
}

/** Writes address `id` at `at` (tag, then its bytes, big-endian); returns where it ends. */
function writeAddress(tally: Tally, id: number, out: Buffer, at: number): number {
  const words = tally.words;
  if (!tally.isIpv6(id)) {
    out[at] = TAG_IPV4;
    return out.writeInt32BE(words[id * 4 + 3]!, at + 1);
  }
  out[at++] = TAG_IPV6;
  for (let k = 0; k < 4; k++) at = out.writeInt32BE(words[id * 4 + k]!, at);
  return at;
}

/** The address at `at` into `words`; where it ends. Throws unless it is one as writeAddress writes it. */
function readAddress(data: Buffer, at: number, words: Int32Array): number {
  const tag = data[at];
  if (tag !== TAG_IPV4 && tag !== TAG_IPV6) throw new Error(at >= data.length ? 'tally data ends too early' : `tally data holds an address tagged ${tag}, which is not an address`);
  const bytes = tag === TAG_IPV4 ? 4 : 16;
  if (at + 1 + bytes > data.length) throw new Error('tally data ends inside an address');
  if (tag === TAG_IPV4) {
    words[0] = 0;
    words[1] = 0;
    words[2] = 0xffff;
    words[3] = data.readInt32BE(at + 1);
  } else {
    for (let k = 0; k < 4; k++) words[k] = data.readInt32BE(at + 1 + 4 * k);
    // an IPv4 address is always written as one: this form is not what the tally writes
    if (words[0] === 0 && words[1] === 0 && words[2] === 0xffff) throw new Error(`tally data holds ::ffff:${(words[3]! >>> 0).toString(16)} as IPv6, which is not an address as written`);
  }
  return at + 1 + bytes;
}
