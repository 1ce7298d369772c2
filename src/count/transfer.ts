/** A tally between threads (scan/jobs.ts): its arrays moved by postMessage, not re-encoded. Pure. */
import { STRIDE, U_STRIDE } from './layout.js';
import { adoptPoolMemory, poolMemoryOf, Tally } from './tally.js';

/** A tally's arrays, sent between threads (tallyToParts). */
export interface TallyParts {
  /** Per address: its four words (address.ts addressWords). */
  words: Int32Array<ArrayBuffer>;
  heads: Int32Array<ArrayBuffer>;
  /** Its own buffer, or a part of a memory shared with the thread it goes to (a pool that grew). */
  pool: Int32Array<ArrayBufferLike>;
  /** The memory the pool grows in (tally.ts poolMemoryOf), shared with the thread it goes to; null: none. */
  poolMemory: object | null;
  /** Per user chain: its address (an index), its username, its newest record. */
  userAddress: Int32Array<ArrayBuffer>;
  userNames: string[];
  userHeads: Int32Array<ArrayBuffer>;
  userPool: Int32Array<ArrayBuffer>;
  partial: boolean;
  /** Its folded rows (Tally.folded), if any. */
  folded: TallyParts | null;
}

/**
 * The tally's arrays as they are, for another thread: postMessage moves the arrays and copies the
 * usernames (no re-encoding). Views of the tally's own arrays, not copies: moving them leaves the
 * tally unusable, and a scan worker no longer holds its tally twice at the end (15 MiB less at
 * the peak of the 30-day event-heavy bench log). A pool that grew is shared, not moved (its memory
 * goes with it, to grow on there): the sender must drop the tally, or two tallies write one memory
 * (scan-worker.ts does; so does a structuredClone on one thread share it).
 */
export function tallyToParts(tally: Tally): TallyParts {
  const users = tally.userNames.length;
  return {
    words: tally.words.subarray(0, tally.count * 4) as Int32Array<ArrayBuffer>,
    heads: tally.heads.subarray(0, tally.count) as Int32Array<ArrayBuffer>,
    pool: tally.pool.subarray(0, tally.records * STRIDE),
    poolMemory: poolMemoryOf(tally.pool),
    userAddress: tally.userAddress.subarray(0, users) as Int32Array<ArrayBuffer>,
    userNames: tally.userNames,
    userHeads: tally.userHeads.subarray(0, users) as Int32Array<ArrayBuffer>,
    userPool: tally.userPool.subarray(0, tally.userRecords * U_STRIDE) as Int32Array<ArrayBuffer>,
    partial: tally.partial,
    folded: tally.folded === null ? null : tallyToParts(tally.folded),
  };
}

/** The inverse of tallyToParts, on the thread that received them (trusted: they never come from a file). */
export function tallyFromParts(parts: TallyParts, rows = false): Tally {
  const tally = rows ? Tally.ofRows() : new Tally();
  tally.takeAddresses(parts.words, parts.heads);
  if (parts.poolMemory !== null) adoptPoolMemory(parts.poolMemory);
  tally.pool = parts.pool.length > 0 ? parts.pool : tally.pool;
  tally.records = parts.pool.length / STRIDE;
  for (const [u, user] of parts.userNames.entries()) {
    const name = tally.interned(user); // a copy from the other thread: the same few names, once
    tally.addUserChain(parts.userAddress[u]!, name, u);
    tally.userNames.push(name);
  }
  tally.userAddress = parts.userAddress.length > 0 ? parts.userAddress : tally.userAddress;
  tally.userHeads = parts.userHeads.length > 0 ? parts.userHeads : tally.userHeads;
  tally.userPool = parts.userPool.length > 0 ? parts.userPool : tally.userPool;
  tally.userRecords = parts.userPool.length / U_STRIDE;
  tally.partial = parts.partial;
  if (parts.folded !== null) tally.folded = tallyFromParts(parts.folded, true);
  return tally;
}

/** The buffers of `parts` (its folded rows' too), for postMessage to move rather than copy (a shared one, a grown pool's, is shared instead). */
export function partsBuffers(parts: TallyParts): ArrayBuffer[] {
  const own = Object.values(parts).flatMap((part: unknown) => (ArrayBuffer.isView(part) && part.buffer instanceof ArrayBuffer ? [part.buffer] : []));
  return parts.folded === null ? own : [...own, ...partsBuffers(parts.folded)];
}
