/**
 * Summaries: a tally cut to a window, per address (what the policy reads), bounded by
 * --max-tracked (past it, the fewest-event addresses are added up by prefix). Pure.
 */
import { wordsSortKey, wordsText } from '../address.js';
import { EVENT_KINDS, FOLDED_ADDRESSES_SLOT, KIND_INDEX, SLOT_COUNT, UNNAMED_MESSAGE_REJECT_SLOT, UNNAMED_RECIPIENT_REJECT_SLOT, type EventKind } from '../read/kinds.js';
import { Tally, BUCKET_MS, OTHER_USERS, type TimeWindow } from './tally.js';
import { WordTable, grown } from './words.js';

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

/** The addresses past --max-tracked, as a run reports them: not listed one by one (`Bounded` has the same numbers). */
export interface Summarised {
  /** Addresses past the bound (a row's addresses as it counts them: see tally.ts). */
  addresses: number;
  /** Their events of the counted kinds. */
  events: number;
  /** The IPv6 ranges they were added up into (each one summary). */
  ranges: number;
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
 * adds up to its /48, and per /48 when the prefixes are too many; past maxTracked /48s, those
 * with the fewest events are only counted. The tally's own folded rows (tally.ts compact) join
 * the same ranges: a /64 row its prefix, a /48 row its network (at most maxTracked of those).
 * Summaries: at most 3 x maxTracked + 1 while fewer than maxTracked addresses are never summarised
 * (offenders, logins, accepted mail), which are all listed; never more than those + 2 x maxTracked
 * + 1, and those are at most what the tally holds one by one (tally.ts: 10 x --max-tracked).
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
  // per address, from the pass that finds the cut: its score (ABSENT: no events in the window;
  // KEPT: never summarised) and counted events, so that the addresses past the cut (a flood's
  // nearly all) are not summed again
  let scoreOf: Float64Array | null = null;
  let totals: Float64Array | null = null;
  if (bound !== null && tally.size > bound.maxTracked) {
    // (no more addresses than the bound: nothing to cut, and no pass to find where)
    const scores: number[] = [];
    scoreOf = new Float64Array(tally.count).fill(ABSENT);
    totals = new Float64Array(tally.count);
    tally.windowSums(fromKey, toKey, (id, sums) => {
      const all = allOf(sums);
      if (all === 0) return;
      present++;
      const total = totalOf(sums);
      totals![id] = total;
      if (mustKeep(tally.isIpv6(id), sums, total, bound)) scoreOf![id] = KEPT;
      else scores.push((scoreOf![id] = total * 2 ** 24 + Math.min(all, 2 ** 24 - 1)));
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
  /** `summary`, whose address (or range's) words are `from[at..at+3]`: they give its sort key, not its text read again. */
  const push = (summary: AddressSummary, all: number, from: Int32Array, at: number) => {
    out.push(summary);
    alls.push(all);
    keys.push(wordsSortKey(from, at));
  };
  // past the bound, IPv6 is added up per prefix: first only each prefix's total, to know which
  // prefixes keep their own summary (a flood makes a million of them); prefixes numbered by their words
  const prefixes = new WordTable();
  const words = new Int32Array(4);
  let prefixTotals = new Float64Array(1024);
  const prefixOf = bound === null ? null : new Int32Array(tally.size).fill(-1);
  let summarised = 0;
  let summarisedEvents = 0;
  const sums = new Float64Array(SLOT_COUNT);
  for (let id = 0; id < tally.count; id++) {
    const score = scoreOf === null ? KEPT : scoreOf[id]!;
    if (score === ABSENT) continue;
    if (cut >= 0 && bound !== null && score !== KEPT && (score < cut || (score === cut && atCut-- <= 0))) {
      const total = totals![id]!;
      summarised++;
      summarisedEvents += total;
      if (tally.isIpv6(id)) {
        const g = prefixes.idOf(tally.prefixWords(id, bound.ipv6Prefix, words), 0);
        if (g === prefixTotals.length) prefixTotals = grown(prefixTotals, g * 2);
        prefixTotals[g]! += total;
        prefixOf![id] = g;
      }
      continue;
    }
    if (!tally.windowSumOf(id, fromKey, toKey, sums)) continue;
    const all = allOf(sums);
    if (all === 0) continue;
    const total = totalOf(sums);
    const summary = summaryOf(tally.nameOf(id), sums, total, tally.windowFirst, tally.windowLast);
    tally.usersInWindow(id, fromKey, toKey, (user, failures, logins) => {
      if (user === OTHER_USERS) summary.otherUserFailures = failures;
      else (summary.users ??= new Map()).set(user, { failures, logins });
    });
    push(summary, all, tally.words, id * 4);
  }
  // the addresses the tally itself folded past its limit (tally.ts compact): IPv4 and the widest
  // rows only counted; an IPv6 /64 row joins its prefix as the addresses past the bound do, a /48
  // row its network
  const rows = tally.folded;
  const rowGroup = rows === null ? null : new Int32Array(rows.count).fill(-1); // its prefix; -2: its network
  const rowWords = (f: number, bits: number) => {
    for (let k = 0; k < 2; k++) words[k] = maskWord(rows!.words[f * 4 + k]!, Math.min(bits, rows!.words[f * 4 + 2]!) - 32 * k);
    words[2] = 0;
    words[3] = 0;
    return words;
  };
  let wideRows = 0;
  rows?.windowSums(fromKey, toKey, (f, sums) => {
    const all = allOf(sums);
    if (all === 0) return;
    const total = totalOf(sums);
    summarised += rowAddresses(sums);
    summarisedEvents += total;
    const bits = rows.words[f * 4 + 2]!;
    // (a row wider than any range the policy may block is only counted)
    if (bound === null || rows.words[f * 4 + 3] !== 6 || bits === 0 || bits < Math.min(bound.ipv6Subnet, bound.ipv6Prefix)) return;
    if (bits >= bound.ipv6Prefix) {
      const g = prefixes.idOf(rowWords(f, bound.ipv6Prefix), 0);
      if (g === prefixTotals.length) prefixTotals = grown(prefixTotals, g * 2);
      prefixTotals[g]! += total;
      rowGroup![f] = g;
    } else {
      rowGroup![f] = -2;
      wideRows++;
    }
  });
  let summarisedRanges = 0;
  if (bound !== null && (prefixes.size > 0 || wideRows > 0)) {
    // too many prefixes for the room left: those with the fewest events are added up per ipv6Subnet network
    const room = Math.max(1, bound.maxTracked - out.length);
    const folded = new Uint8Array(prefixes.size); // 1: added up per ipv6Subnet network; 2: only counted
    if (prefixes.size > room && bound.ipv6Subnet < bound.ipv6Prefix) {
      const order = Array.from({ length: prefixes.size }, (_, g) => g).sort((a, b) => prefixTotals[b]! - prefixTotals[a]! || a - b);
      for (let k = room; k < order.length; k++) folded[order[k]!] = 1;
      // the networks they add up into have a room of their own, maxTracked: a flood spread over more
      // networks than that (a million /48s) keeps those with the most events, and the rest is only
      // counted, like IPv4 under its threshold. So the summaries stay under 2 x maxTracked + room by
      // construction, and no range wider than ipv6Subnet is ever made of a flood.
      const networks = new WordTable();
      let networkTotals = new Float64Array(1024);
      const networkOf = new Int32Array(prefixes.size).fill(-1);
      const wide = new Int32Array(4);
      for (let k = room; k < order.length; k++) {
        const g = order[k]!;
        for (let w = 0; w < 4; w++) wide[w] = maskWord(prefixes.words[g * 4 + w]!, bound.ipv6Subnet - 32 * w);
        const n = networks.idOf(wide, 0);
        if (n === networkTotals.length) networkTotals = grown(networkTotals, n * 2);
        networkTotals[n]! += prefixTotals[g]!;
        networkOf[g] = n;
      }
      if (networks.size > bound.maxTracked) {
        const byEvents = Array.from({ length: networks.size }, (_, n) => n).sort((a, b) => networkTotals[b]! - networkTotals[a]! || a - b);
        const counted = new Uint8Array(networks.size);
        for (let k = bound.maxTracked; k < byEvents.length; k++) counted[byEvents[k]!] = 1;
        for (let g = 0; g < prefixes.size; g++) if (networkOf[g] !== -1 && counted[networkOf[g]!] === 1) folded[g] = 2;
      }
    }
    // each prefix's own group (kept) or its network's (folded), made when its first address comes
    const groupOf = new Int32Array(prefixes.size).fill(-1);
    const kept = new Groups();
    const wider = new Groups();
    const subnets = new WordTable();
    /** Network group of the words at ipv6Subnet in `at`, made when new. */
    const networkGroup = (at: Int32Array, first: number, last: number) => {
      const w = subnets.idOf(at, 0);
      if (w === wider.size) wider.open(subnets.words, w * 4, first, last);
      return w;
    };
    /** Adds counts to prefix `g`'s group: its own (kept) or its network's (folded), made on its first address. */
    const addToPrefix = (g: number, atSubnet: () => Int32Array, sums: Float64Array, first: number, last: number, addresses: number) => {
      if (groupOf[g] === -1) groupOf[g] = folded[g] === 0 ? kept.open(prefixes.words, g * 4, first, last) : networkGroup(atSubnet(), first, last);
      (folded[g] === 0 ? kept : wider).add(groupOf[g]!, sums, first, last, addresses);
    };
    for (let id = 0; id < tally.count; id++) {
      const g = prefixOf![id]!;
      if (g === -1 || folded[g] === 2 || !tally.windowSumOf(id, fromKey, toKey, sums)) continue;
      addToPrefix(g, () => tally.prefixWords(id, bound.ipv6Subnet, words), sums, tally.windowFirst, tally.windowLast, 1);
    }
    rows?.windowSums(fromKey, toKey, (f, sums, firstSeen, lastSeen) => {
      const g = rowGroup![f]!;
      if (g === -1 || (g >= 0 && folded[g] === 2)) return;
      const addresses = rowAddresses(sums);
      if (g >= 0) addToPrefix(g, () => rowWords(f, bound.ipv6Subnet), sums, firstSeen, lastSeen, addresses);
      // a /48 row: into its ipv6Subnet network (as wide as the row or wider)
      else wider.add(networkGroup(rowWords(f, bound.ipv6Subnet), firstSeen, lastSeen), sums, firstSeen, lastSeen, addresses);
    });
    const one = new Float64Array(SLOT_COUNT);
    // a range is named by its words (its prefix's, or its network's: the addresses in it with the
    // rest zero), as networkOf would name it from one of its addresses
    const name = (groups: Groups, g: number, bits: number) => {
      const address = wordsText(groups.words, g * 4);
      const sums = groups.sumsOf(g, one);
      const summary = summaryOf(address, sums, totalOf(sums), groups.first[g]!, groups.last[g]!);
      summary.summarised = { cidr: `${address}/${bits}`, addresses: groups.addresses[g]! };
      push(summary, allOf(sums), groups.words, g * 4);
      summarisedRanges++;
    };
    for (let g = 0; g < kept.size; g++) name(kept, g, bound.ipv6Prefix);
    for (let g = 0; g < wider.size; g++) name(wider, g, bound.ipv6Subnet);
  }
  const order = Array.from({ length: out.length }, (_, i) => i);
  order.sort((a, b) => out[b]!.total - out[a]!.total || alls[b]! - alls[a]! || (keys[a]! < keys[b]! ? -1 : keys[a]! > keys[b]! ? 1 : 0));
  return { summaries: order.map((i) => out[i]!), summarised, summarisedEvents, summarisedRanges };
}

/**
 * The addresses a folded row with events in the window stands for: at least one (a row's
 * addresses are counted in the newest minute each had when folded, which may lie past the window).
 */
function rowAddresses(sums: Float64Array): number {
  return Math.max(1, sums[FOLDED_ADDRESSES_SLOT]!);
}

/** The summary of `address` itself, if it has one: a range added up past --max-tracked goes by its network address, and is not that address. */
export function summaryOfAddress(summaries: readonly AddressSummary[], address: string): AddressSummary | undefined {
  return summaries.find((s) => s.address === address && s.summarised === undefined);
}

/** summariseBounded's scores of addresses with no events in the window, and of those never summarised. */
const ABSENT = -1;
const KEPT = -2;

/** Ranges added up past the bound: per range its words (its addresses with the rest zero), counts, first and last event and addresses. */
class Groups {
  words = new Int32Array(256 * 4);
  sums = new Float64Array(256 * SLOT_COUNT);
  first = new Float64Array(256);
  last = new Float64Array(256);
  addresses = new Float64Array(256);
  size = 0;

  /** A new range, its words those at `from[at..at+3]`; its number. */
  open(from: Int32Array, at: number, first: number, last: number): number {
    const g = this.size++;
    if (g === this.first.length) this.grow();
    for (let k = 0; k < 4; k++) this.words[g * 4 + k] = from[at + k]!;
    this.first[g] = first;
    this.last[g] = last;
    return g;
  }

  /** Adds the counts of one address (or of `addresses` folded ones) to range `g`. */
  add(g: number, sums: Float64Array, first: number, last: number, addresses = 1): void {
    for (let i = 0; i < SLOT_COUNT; i++) this.sums[g * SLOT_COUNT + i]! += sums[i]!;
    if (first < this.first[g]!) this.first[g] = first;
    if (last > this.last[g]!) this.last[g] = last;
    this.addresses[g]! += addresses;
  }

  /** The counts of range `g`, in `into`. */
  sumsOf(g: number, into: Float64Array): Float64Array {
    into.set(this.sums.subarray(g * SLOT_COUNT, (g + 1) * SLOT_COUNT));
    return into;
  }

  private grow(): void {
    const n = this.first.length * 2;
    this.words = grown(this.words, n * 4);
    this.sums = grown(this.sums, n * SLOT_COUNT);
    this.first = grown(this.first, n);
    this.last = grown(this.last, n);
    this.addresses = grown(this.addresses, n);
  }
}

/** `word` with only its first `bits` bits (0..32; fewer than 0: none, more than 32: all). */
function maskWord(word: number, bits: number): number {
  if (bits <= 0) return 0;
  if (bits >= 32) return word;
  return word & (-1 << (32 - bits));
}

/** Never summarised away: offenders, and clients whose logins or accepted mail spare others. */
function mustKeep(ipv6: boolean, sums: Float64Array, total: number, bound: Bound): boolean {
  if (sums[KIND_INDEX.saslSuccess]! > 0 || sums[KIND_INDEX.accepted]! > 0) return true;
  return total >= (ipv6 ? bound.threshold6 : bound.threshold);
}

function summaryOf(address: string, sums: Float64Array, total: number, firstSeen: number, lastSeen: number): AddressSummary {
  return { address, events: eventsOf(sums), total, firstSeen, lastSeen, unnamedRecipientRejects: count(sums, UNNAMED_RECIPIENT_REJECT_SLOT), unnamedMessageRejects: count(sums, UNNAMED_MESSAGE_REJECT_SLOT) };
}

/**
 * The counts per kind as one object literal: every summary gets the same shape, its fields
 * in the object itself, and small integers (not boxed numbers). Built kind by kind, a
 * summary's counts took ~600 bytes; a flood makes 100,000 summaries.
 */
function eventsOf(sums: Float64Array): Record<EventKind, number> {
  return {
    saslFailure: count(sums, KIND_INDEX.saslFailure),
    reject: count(sums, KIND_INDEX.reject),
    tempReject: count(sums, KIND_INDEX.tempReject),
    saslSuccess: count(sums, KIND_INDEX.saslSuccess),
    authLost: count(sums, KIND_INDEX.authLost),
    rateLimit: count(sums, KIND_INDEX.rateLimit),
    pregreet: count(sums, KIND_INDEX.pregreet),
    dnsbl: count(sums, KIND_INDEX.dnsbl),
    hangup: count(sums, KIND_INDEX.hangup),
    pipelining: count(sums, KIND_INDEX.pipelining),
    nonSmtp: count(sums, KIND_INDEX.nonSmtp),
    bareNewline: count(sums, KIND_INDEX.bareNewline),
    commandLimit: count(sums, KIND_INDEX.commandLimit),
    recipientReject: count(sums, KIND_INDEX.recipientReject),
    accepted: count(sums, KIND_INDEX.accepted),
    authErrors: count(sums, KIND_INDEX.authErrors),
    authDisconnect: count(sums, KIND_INDEX.authDisconnect),
    messageReject: count(sums, KIND_INDEX.messageReject),
    improperPipelining: count(sums, KIND_INDEX.improperPipelining),
    tooManyErrors: count(sums, KIND_INDEX.tooManyErrors),
    lostConnection: count(sums, KIND_INDEX.lostConnection),
    timeout: count(sums, KIND_INDEX.timeout),
    hostnameMismatch: count(sums, KIND_INDEX.hostnameMismatch),
  };
}

/** A count as a small integer where it is one (a Float64Array holds them as doubles, which an object would box). */
function count(sums: Float64Array, slot: number): number {
  const n = sums[slot]!;
  return n <= 0x3fffffff ? n | 0 : n;
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
