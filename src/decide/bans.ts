/**
 * Ban memory: a block has a length and a history. Pure: the records come in and go out
 * as values, the time as `now`.
 *
 * - A block, once made, stays at least `banTime` after the last event that made it an
 *   offender, even when the window no longer shows those events.
 * - A block that ended and is decided again within `recidiveWindow` of its end gets the
 *   previous ban length x `banFactor`, up to `banTimeMax` (Infinity: forever).
 * - A /24 or /48 (any range) takes the history of the blocks inside it; a block decided
 *   inside a range that is still banned renews the range.
 * - A ban still running keeps its block, unless a never-block rule covers it now (an
 *   address allowed since stays allowed).
 * - Ended bans are remembered for `recidiveWindow`, then forgotten.
 */
import { cidrsOverlap, compareCidrs, parseRange, type Range } from '../address.js';
import { formatWindow } from '../duration.js';
import type { Block, Decision } from './policy.js';
import { CidrIndex } from './cidr-index.js';

export interface BanRecord {
  cidr: string;
  family: 4 | 6;
  /** The reason of the block when it was last decided (`host`, `subnet`, ...). */
  reason: string;
  /** When this range was first blocked (ms). */
  firstBlocked: number;
  /** The last event that made it an offender (ms). */
  lastEvent: number;
  /** When the ban ends (ms); null: never. */
  until: number | null;
  /** How many bans in a row (recidive) this is: 1 the first time. */
  times: number;
  /** The length of the current (or last) ban (ms); null: forever. */
  banMs: number | null;
  /** The offending addresses the block named (at most MAX_BLOCK_ADDRESSES): the access map keeps them while the ban runs. */
  addresses?: string[];
  /** Ended by `smtpguard unblock`: a return within the recidive window starts over at the first ban. */
  released?: boolean;
  /** A range's exceptions (addresses where someone logged in): kept with the ban, so a block the window no longer shows keeps them. */
  exceptions?: string[];
  /** The block rested on message-level rejects: kept, so it is never pushed to the fleet later either. */
  messageLevel?: true;
}

export interface BanOptions {
  /** --window: a block lasts at least while its events are in it (Infinity: `all`). */
  window: number;
  banTime: number;
  banFactor: number;
  /** Infinity: `forever`. */
  banTimeMax: number;
  recidiveWindow: number;
}

/** A block the bans changed: new (times 1), renewed after a pause (times > 1), or kept though its events left the window. */
export interface BanChange {
  cidr: string;
  times: number;
  banMs: number | null;
}

export interface BannedDecision {
  decision: Decision;
  records: BanRecord[];
  /** Blocks that start a ban this run (first time or again), with their length. */
  started: BanChange[];
}

/**
 * The decision with every running ban kept, each block's `until`/`times` set, and the
 * records to keep. `isNeverBlocked(range)`: a never-block rule overlaps it now.
 */
export function applyBans(
  decision: Decision,
  previous: readonly BanRecord[],
  now: number,
  options: BanOptions,
  isNeverBlocked: (range: Range) => boolean,
  isUnblocked: (range: Range) => boolean = () => false,
): BannedDecision {
  const records = new CidrIndex<BanRecord>(previous.map((r) => [r.cidr, { ...r }]));
  const ranges = new Map(previous.map((r) => [r.cidr, parseRange(r.cidr)]));
  const active = (r: BanRecord) => r.until === null || r.until > now;
  const started: BanChange[] = [];
  const blocks: Block[] = [];

  // A running ban that a never-block rule now covers goes, with its memory; one that `smtpguard
  // unblock` touches ends now, its history kept but marked released (a return is no repeat
  // offence). A range ban (/24, /64, /48) is split first: its recorded offenders that the rule
  // does not cover stay banned one by one, as an unblock splits a decided block.
  for (const r of [...records.values()]) {
    if (!active(r) || records.get(r.cidr) !== r) continue;
    const range = ranges.get(r.cidr)!;
    const never = isNeverBlocked(range);
    if (!never && !isUnblocked(range)) continue;
    const hostBits = r.family === 4 ? 32 : 128;
    if (range[1] < hostBits) {
      for (const address of r.addresses ?? []) {
        const cidr = `${address}/${hostBits}`;
        const host = parseRange(cidr);
        if (records.has(cidr) || isNeverBlocked(host) || isUnblocked(host)) continue;
        const { exceptions: _none, ...rest } = r; // a host of a split range has no exceptions of its own
        records.set(cidr, { ...rest, cidr, reason: 'host', addresses: [address] });
        ranges.set(cidr, host);
      }
    }
    if (never) records.delete(r.cidr);
    else {
      r.until = now;
      r.released = true;
    }
  }

  for (const block of decision.blocks) {
    if (block.reason === 'manual') {
      blocks.push(block); // `smtpguard block` sets its own length
      continue;
    }
    const range = parseRange(block.cidr);
    const lastEvent = block.lastSeen !== undefined && Number.isFinite(block.lastSeen) ? block.lastSeen : now;
    // a wider range still banned: the block renews it (it is inside it)
    const wider = records.containing(block.cidr).find(([cidr, r]) => cidr !== block.cidr && active(r))?.[1];
    // a block inside one of the wider ban's exceptions (the user's address, now an offender itself) is a
    // block of its own, and that exception ends
    const exempted = wider?.exceptions?.filter((e) => cidrsOverlap(e, block.cidr)) ?? [];
    if (wider !== undefined && exempted.length > 0) {
      const rest = wider.exceptions!.filter((e) => !exempted.includes(e));
      if (rest.length > 0) wider.exceptions = rest;
      else delete wider.exceptions;
    } else if (wider !== undefined) {
      wider.lastEvent = Math.max(wider.lastEvent, lastEvent);
      wider.until = untilOf(wider.lastEvent, wider.banMs, wider.until, options);
      continue;
    }
    // its own history and that of the blocks inside it, the worst first
    const history = records.inside(block.cidr).map(([, r]) => r).sort((a, b) => b.times - a.times || (b.until ?? Infinity) - (a.until ?? Infinity));
    const prev = history[0];
    for (const r of history) records.delete(r.cidr);
    let record: BanRecord;
    if (prev !== undefined && active(prev)) {
      record = { ...prev, cidr: block.cidr, family: block.family, reason: block.reason, lastEvent: Math.max(prev.lastEvent, lastEvent), addresses: block.addresses };
      delete record.released;
      delete record.exceptions;
      record.until = untilOf(record.lastEvent, record.banMs, prev.until, options);
    } else {
      const again = prev !== undefined && prev.until !== null && prev.released !== true && now - prev.until <= options.recidiveWindow;
      const times = again ? prev.times + 1 : 1;
      const banMs = again ? grow(prev.banMs, options) : lengthOf(options.banTime, options);
      const firstBlocked = history.reduce((first, r) => Math.min(first, r.firstBlocked), now);
      record = { cidr: block.cidr, family: block.family, reason: block.reason, firstBlocked, lastEvent, until: untilOf(lastEvent, banMs, null, options), times, banMs, addresses: block.addresses };
      started.push({ cidr: block.cidr, times, banMs });
    }
    if (block.exceptions !== undefined) record.exceptions = block.exceptions;
    if (block.messageLevel === true) record.messageLevel = true;
    else delete record.messageLevel;
    records.set(record.cidr, record);
    ranges.set(record.cidr, range);
    blocks.push({ ...block, until: isoOrNull(record.until), times: record.times, banFor: lengthText(record.banMs) });
  }

  // bans still running whose events have left the window: their blocks stay
  const decided = new CidrIndex(blocks.map((b) => [b.cidr, b] as const));
  /** When a block ends (ms; null: never): a manual block --for ends with it, every other one lasts while the decision keeps it. */
  const endOf = (b: Block): number | null => (b.reason === 'manual' && typeof b.until === 'string' ? Date.parse(b.until) : null);
  for (const r of [...records.values()]) {
    if (decided.has(r.cidr) || !active(r)) continue;
    const range = ranges.get(r.cidr)!;
    if (isNeverBlocked(range)) {
      records.delete(r.cidr); // allowed since: the ban ends now, its memory too
      continue;
    }
    // a running ban inside a block made this run is covered by it, unless that block ends first
    // (a manual /24 --for 1h over a 7-day ban: a firewall that ends blocks by itself would open the address early)
    if (decided.containing(r.cidr).some(([cidr, b]) => cidr !== r.cidr && (endOf(b) === null || (r.until !== null && endOf(b)! >= r.until)))) continue;
    const addresses = r.addresses ?? [];
    blocks.push({
      cidr: r.cidr,
      family: r.family,
      addresses,
      addressCount: addresses.length,
      total: 0,
      reason: r.reason as Block['reason'],
      lastSeen: r.lastEvent,
      until: isoOrNull(r.until),
      times: r.times,
      banFor: lengthText(r.banMs),
      ...(r.exceptions === undefined ? {} : { exceptions: r.exceptions }),
      ...(r.messageLevel === true ? { messageLevel: true as const } : {}),
    });
  }
  // ended bans are remembered for the recidive window
  for (const [cidr, r] of [...records]) if (!active(r) && now - r.until! > options.recidiveWindow) records.delete(cidr);

  blocks.sort((a, b) => compareCidrs(a.cidr, b.cidr));
  return {
    decision: { ...decision, blocks },
    records: [...records.values()].sort((a, b) => compareCidrs(a.cidr, b.cidr)),
    started,
  };
}

/**
 * The ban ends `banMs` after the last event, or when that event leaves the window if that
 * is later (the window alone would keep the block that long), never before an end already
 * set; null: forever.
 */
function untilOf(lastEvent: number, banMs: number | null, previous: number | null, options: BanOptions): number | null {
  if (banMs === null || !Number.isFinite(options.window)) return null;
  const until = lastEvent + Math.max(banMs, options.window);
  return previous === null ? until : Math.max(until, previous);
}

const isoOrNull = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** `4d`, `36h`, `forever`. */
export const lengthText = (ms: number | null): string => (ms === null ? 'forever' : formatWindow(ms));

function lengthOf(ms: number, options: BanOptions): number | null {
  const capped = Math.min(ms, options.banTimeMax);
  return Number.isFinite(capped) ? capped : null;
}

function grow(banMs: number | null, options: BanOptions): number | null {
  if (banMs === null) return null;
  return lengthOf(banMs * options.banFactor, options);
}

/** `1st`, `2nd`, `3rd`, `4th`, `11th`, `21st`. */
export function ordinal(n: number): string {
  const tens = n % 100;
  const suffix = tens >= 11 && tens <= 13 ? 'th' : ['th', 'st', 'nd', 'rd'][n % 10] ?? 'th';
  return `${n}${suffix}`;
}
