/**
 * Policy: per-address counts in the window -> what to block. Pure.
 *
 * - An IPv4 address is an offender when its counted events reach `threshold`;
 *   `subnetHosts` or more offenders in one /24 block the /24 instead.
 * - IPv6 is counted per prefix (`ipv6Prefix`, /64 by default): the events of all its
 *   addresses add up against `threshold6`, and the block is the prefix. Above that,
 *   `ipv6SubnetPrefixes` offending prefixes in one `ipv6Subnet` (/48), or that many
 *   times `threshold6` events spread over its prefixes that stay under threshold6, block the /48.
 * - Only client-level evidence aggregates into a /24, a prefix of many addresses or a /48:
 *   message-level rejects (recipient unknown, relay, sender: a typo, a stale list, or an
 *   attacker relaying through a provider) can make one address an offender, never a network.
 * - Message-level rejects count only for clients Postfix logged as `unknown[ADDR]` and that
 *   had no mail accepted in the window (bots): big providers' MTAs have names, and deliver.
 *   A block that rests on them is marked `messageLevel` and never pushed to the fleet.
 * - A login as a user spares the SASL failures that named that user and those that named
 *   none (for IPv6, a login from any address of the prefix): failures as other users count.
 * - Never blocked: the `neverBlock` ranges (special addresses, this host, mynetworks, --allow).
 *   A /24, IPv6 prefix or /48 that overlaps one is not aggregated: its offenders are blocked one by one.
 * - No login multiplies blocks: a range to block whole that holds addresses where someone
 *   logged in (and that are not offenders themselves) is blocked whole with those addresses as
 *   `exceptions` (the login's prefix, in a /48), up to `maxExceptions`. A range with more is a
 *   network of real users (a carrier NAT): its offenders are blocked one by one, at most
 *   `crowdedShare(maxBlocks)` of them, the worst first.
 * - `maxBlocks` keeps the blocks with the most events per address (so a flood of wide,
 *   thin ranges cannot push a real attacker out).
 *
 * Sizes: nothing here spreads or applies an array whose length comes from the input, and a
 * block lists at most MAX_BLOCK_ADDRESSES of its addresses (the worst), with the count.
 */
import { addressSortKey, cidrsOverlap, compareCidrs, inRange, networkOf, parseIp, parseRange, rangesOverlap, wordRange, wordRangesOverlap, type Range, type WordRange } from '../address.js';
import { CidrIndex } from './cidr-index.js';
import { MESSAGE_LEVEL_KINDS, type EventKind } from '../read/kinds.js';
import type { AddressSummary } from '../count/summary.js';
import { summaryOfAddress } from '../count/summary.js';

export interface NamedRange {
  /** An address or CIDR, e.g. `127.0.0.0/8`, `2001:db8::/32`, `192.0.2.7`. */
  cidr: string;
  /** Why it is never blocked: `loopback`, `this host`, `mynetworks`, `allow`. */
  source: string;
}

export interface PolicyOptions {
  threshold: number;
  threshold6: number;
  countedKinds: readonly EventKind[];
  ipv6Prefix: number;
  subnetHosts: number;
  /** IPv6 networks above the prefix: this length (48)... */
  ipv6Subnet: number;
  /** ...is blocked when this many of its prefixes offend (0: never). */
  ipv6SubnetPrefixes: number;
  neverBlock: readonly NamedRange[];
  /** 0: no limit. */
  maxBlocks: number;
  /** Spared addresses a range blocked whole may hold as exceptions; more make it a network of real users. Default 16. */
  maxExceptions?: number;
  /** Usernames that do not exist here: a failure naming one makes the client an offender (optional). */
  trapUsers?: readonly string[];
  /** Addresses to give a reason record for (explain): `Decision.reasons`. */
  explain?: readonly string[];
}

/** `subnet6`: an IPv6 network above the prefix; `manual`: made by `smtpguard block` (overrides.ts); `fleet`: a decision another server shared through CrowdSec (fleet.ts). */
export type BlockReason = 'host' | 'subnet' | 'prefix' | 'subnet6' | 'manual' | 'fleet';

/** A block names at most this many of its addresses (the worst); `addressCount` has them all. */
export const MAX_BLOCK_ADDRESSES = 256;

export interface Block {
  /** Always with a prefix length: `192.0.2.7/32`, `192.0.2.0/24`, `2001:db8:1:2::/64`. */
  cidr: string;
  family: 4 | 6;
  /** The offending addresses inside it, sorted; at most MAX_BLOCK_ADDRESSES, the ones with most events. */
  addresses: string[];
  /** How many addresses with counted events are inside it. */
  addressCount: number;
  /** Their counted events. */
  total: number;
  reason: BlockReason;
  /** The latest event (ms) of the addresses in it that counted: a ban runs from here. */
  lastSeen?: number;
  /** With ban times (bans.ts): when the block ends (ISO 8601; null: never), how many bans in a row it is, and this ban's length (`2d`, `forever`). */
  until?: string | null;
  times?: number;
  banFor?: string;
  /** Fleet blocks only: the decision's scenario, origin and end. */
  fleet?: { scenario: string; origin: string; until: string };
  /** Inside the range, never blocked (checked before it): addresses (or an IPv6 prefix) where someone logged in. CIDRs, sorted. */
  exceptions?: string[];
  /** It rests on message-level rejects (a bot's recipient, relay or sender rejects): never pushed to the fleet. */
  messageLevel?: true;
  /** A host block of a range too crowded with real users to block whole: the range (such blocks take a bounded share of maxBlocks). */
  crowded?: string;
}

export type Spared =
  | {
      address: string;
      kind: 'saslFailure';
      /** SASL failures not held against it. */
      saslFailures: number;
      /** The usernames those failures named (failures that named none are spared too, and add no name). */
      users: string[];
      /** The users it (or, for IPv6, its prefix) logged in as. */
      loggedInAs: string[];
      reason: 'logged in';
    }
  | {
      address: string;
      kind: 'recipientReject';
      recipientRejects: number;
      /** `mail accepted`: a queue file was made for its mail; `named client`: Postfix confirmed its hostname. */
      reason: 'mail accepted' | 'named client';
    }
  | {
      address: string;
      kind: 'messageReject';
      messageRejects: number;
      reason: 'mail accepted' | 'named client';
    };

export interface Ignored {
  address: string;
  total: number;
  /** e.g. `loopback 127.0.0.0/8`, `allow 192.0.2.0/24`. */
  reason: string;
}

export interface Decision {
  /** Sorted by address. */
  blocks: Block[];
  spared: Spared[];
  ignored: Ignored[];
  /** Blocks left out by maxBlocks (the least bad ones). */
  overLimit: Block[];
  /** Why each address of `PolicyOptions.explain` is or is not blocked (the policy's own numbers). */
  reasons?: Reason[];
  /** The clients closest to their threshold that the policy did not block, worst first (at most NEAR_MISSES). */
  nearMisses?: NearMiss[];
}

/** The numbers behind the policy's answer for one address: what `explain` prints, never recounted. */
export interface Reason {
  address: string;
  /** Its events of the counted kinds in the window; `counted` of them are held against it (the rest were spared). */
  events: number;
  counted: number;
  /** The part of `counted` about the client itself (not message-level rejects): only this adds up into a range. */
  clientLevel: number;
  /** THRESHOLD, or THRESHOLD6 (which its IPv6 prefix's counted events are measured against). */
  threshold: number;
  /** What was not held against it, and why. */
  spared: Spared[];
  /** The never-block range that holds it (`loopback 127.0.0.0/8`, `allow 192.0.2.0/24`). */
  neverBlock?: string;
  /** IPv4: its /24: the offenders there (at or over THRESHOLD), those on client-level evidence, and what came of it. */
  subnet?: { cidr: string; offenders: number; clientOffenders: number; needed: number; outcome: RangeOutcome };
  /** IPv6: its prefix: the counted events of its addresses, their client-level part, and what came of it. */
  prefix?: { cidr: string; counted: number; clientLevel: number; addresses: number; threshold: number; outcome: RangeOutcome };
  /** IPv6: its /48 (IPV6_SUBNET): offending prefixes, and the client-level events of the prefixes under THRESHOLD6. */
  subnet6?: { cidr: string; offendingPrefixes: number; neededPrefixes: number; spread: number; neededSpread: number; outcome: RangeOutcome };
  /** The policy's block that holds it (before bans, manual blocks and the fleet), or null. */
  block: string | null;
  /** A block of it left out by --max-blocks. */
  overLimit?: string;
}

/** What the policy made of a range: blocked whole, or why not. */
export type RangeOutcome = 'blocked whole' | 'too few offenders' | 'under the threshold' | 'holds a never-block range' | 'crowded with logins' | 'counted per address';

export interface NearMiss {
  /** An IPv4 address, or an IPv6 prefix (its events add up). */
  address: string;
  /** Its counted events, under `threshold`. */
  total: number;
  threshold: number;
}

/** Near misses the policy lists. */
export const NEAR_MISSES = 10;

interface Candidate {
  address: string;
  lastSeen: number;
  /** Counted events after sparing. */
  total: number;
  /** The part of `total` that is about the client itself (not message-level rejects): only this aggregates. */
  clientLevel: number;
  /** Addresses it stands for: more than 1 for a range added up past --max-tracked. */
  weight?: number;
}

interface Guard {
  range: Range;
  /** The range as numbers (null: only ipaddr.js reads it). */
  words: WordRange | null;
  label: string;
}

export function decideBlocks(summaries: readonly AddressSummary[], options: PolicyOptions): Decision {
  const never: Guard[] = options.neverBlock.map((r) => ({ range: parseRange(r.cidr), words: wordRange(r.cidr), label: `${r.source} ${r.cidr}` }));
  // per candidate and range, by numbers where every never-block range reads as such (ipaddr.js made ~0.1 KB of garbage a check)
  const byWords = never.every((n) => n.words !== null);
  const neverOver = (cidr: string): Guard | undefined => {
    const words = byWords ? wordRange(cidr) : null;
    if (words !== null) return never.find((n) => wordRangesOverlap(words, n.words!));
    const range = parseRange(cidr);
    return never.find((n) => rangesOverlap(range, n.range));
  };
  const counted = new Set(options.countedKinds);
  const traps = new Set((options.trapUsers ?? []).map((u) => u.toLowerCase()));
  const prefixOf = (address: string) => networkOf(address, options.ipv6Prefix);
  const spared: Spared[] = [];
  const ignored: Ignored[] = [];
  const v4: Candidate[] = [];
  const v6 = new Map<string, Candidate[]>(); // prefix cidr -> its addresses
  const trace = new Trace(options.explain ?? [], options);

  // Addresses where someone logged in: exceptions in a range blocked whole. Logins per IPv6 prefix
  // also spare the prefix's failures as the same user (phones change addresses). (Accepted mail is
  // no such sign: spam from a botnet is accepted too; it only spares the address's message rejects.)
  const loginAddresses: string[] = [];
  const logins6 = new Map<string, Set<string | null>>(); // prefix -> users logged in as (null: no name logged)
  for (const s of summaries) {
    if (s.events.saslSuccess === 0) continue;
    loginAddresses.push(s.address);
    if (s.address.includes(':')) addLogins(logins6, prefixOf(s.address), s);
  }

  for (const s of summaries) {
    const family = s.address.includes(':') ? 6 : 4;
    const prefix = family === 6 && (logins6.size > 0 || s.summarised === undefined) ? prefixOf(s.address) : ''; // (a string a flood's summaries need only once)
    const logins = family === 4 ? loginsOf(s) : logins6.get(prefix);
    let clientLevel = 0;
    for (const kind of counted) if (kind !== 'saslFailure' && !isMessageLevel(kind)) clientLevel += s.events[kind];
    if (counted.has('saslFailure')) clientLevel += countSaslFailures(s, logins, spared);
    if (traps.size > 0 && triedTrap(s, traps)) clientLevel = Math.max(clientLevel, family === 4 ? options.threshold : options.threshold6);
    const message = countMessageRejects(s, counted, clientLevel, family === 4 ? options.threshold : options.threshold6, spared);
    const total = clientLevel + message;
    if (s.summarised === undefined) trace.counted(s.address, total, clientLevel); // a range's counts are not its network address's
    if (total === 0) continue;
    const guard = neverOver(s.address);
    if (guard !== undefined) {
      // reported only when it would have been blocked on its own
      if (total >= (family === 4 ? options.threshold : options.threshold6)) ignored.push({ address: s.summarised?.cidr ?? s.address, total, reason: guard.label });
      continue;
    }
    const candidate: Candidate = s.summarised === undefined ? { address: s.address, total, clientLevel, lastSeen: s.lastSeen } : { address: s.address, total, clientLevel, lastSeen: s.lastSeen, weight: s.summarised.addresses };
    if (family === 4) v4.push(candidate);
    else pushTo(v6, s.summarised?.cidr ?? prefix, candidate); // past --max-tracked: the range it adds up
  }

  const overlapsNever = (cidr: string) => neverOver(cidr) !== undefined;
  // the exceptions of a range blocked whole: where someone logged in, and where failures were spared for a login
  const users = new Set(loginAddresses);
  for (const sp of spared) if (sp.kind === 'saslFailure') users.add(sp.address);
  const logins = new LoginIndex([...users], options.maxExceptions ?? DEFAULT_MAX_EXCEPTIONS);
  const blocks = decideIpv4(v4, options, overlapsNever, logins, trace).concat(decideIpv6(v6, options, overlapsNever, logins, trace));

  const capped = capBlocks(blocks, options.maxBlocks);
  const decision: Decision = { blocks: capped.blocks, spared, ignored, overLimit: capped.overLimit, nearMisses: nearMisses(v4, v6, blocks, options) };
  if (options.explain !== undefined) decision.reasons = options.explain.map((a) => trace.reason(a, summaries, decision));
  return decision;
}

/**
 * The candidates the policy did not block, closest to their threshold first: IPv4 addresses,
 * and IPv6 prefixes (their addresses add up). Bounded: NEAR_MISSES, whatever the input.
 */
function nearMisses(v4: readonly Candidate[], v6: ReadonlyMap<string, Candidate[]>, blocks: readonly Block[], options: PolicyOptions): NearMiss[] {
  // under its threshold, a candidate is blocked only inside a range blocked whole: its /24, or its prefix's /48
  let blocked: Set<string> | null = null;
  const misses: NearMiss[] = [];
  const offer = (miss: NearMiss, range: () => string) => {
    if (misses.length === NEAR_MISSES && miss.total <= misses.at(-1)!.total) return; // summaries come worst first: this is most of them
    blocked ??= new Set(blocks.map((b) => b.cidr));
    if (blocked.has(range())) return;
    misses.push(miss);
    misses.sort((x, y) => y.total - x.total);
    if (misses.length > NEAR_MISSES) misses.pop();
  };
  for (const c of v4) if (c.total < options.threshold) offer({ address: c.address, total: c.total, threshold: options.threshold }, () => networkOf(c.address, 24));
  for (const [prefix, members] of v6) {
    let total = 0;
    for (const m of members) total += m.total;
    if (total < options.threshold6) offer({ address: prefix, total, threshold: options.threshold6 }, () => networkOf(prefix.slice(0, prefix.indexOf('/')), options.ipv6Subnet));
  }
  return misses;
}

/**
 * At most `maxBlocks` blocks (0: no limit), those with the most events per address first (a
 * concentrated attacker before a diffuse flood of ranges); the rest are over the limit. The host
 * blocks of one crowded range (a network of real users) take at most crowdedShare(maxBlocks).
 * Both sorted by address. Used by the policy and again after the bans and overrides add theirs.
 */
export function capBlocks(all: readonly Block[], maxBlocks: number): { blocks: Block[]; overLimit: Block[] } {
  let blocks = [...all];
  let overLimit: Block[] = [];
  const density = (b: Block) => b.total / Math.max(1, b.addressCount);
  const worstFirst = (a: Block, b: Block) => density(b) - density(a) || b.total - a.total || compareCidrs(a.cidr, b.cidr);
  if (blocks.some((b) => b.crowded !== undefined)) {
    const share = crowdedShare(maxBlocks);
    const taken = new Map<string, number>();
    const kept: Block[] = [];
    for (const b of blocks.sort(worstFirst)) {
      const n = b.crowded === undefined ? 0 : (taken.get(b.crowded) ?? 0) + 1;
      if (b.crowded !== undefined) taken.set(b.crowded, n);
      if (n > share) overLimit.push(b);
      else kept.push(b);
    }
    blocks = kept;
  }
  if (maxBlocks > 0 && blocks.length > maxBlocks) {
    blocks.sort(worstFirst);
    overLimit = overLimit.concat(blocks.splice(maxBlocks));
  }
  overLimit.sort((a, b) => compareCidrs(a.cidr, b.cidr));
  blocks.sort((a, b) => compareCidrs(a.cidr, b.cidr));
  return { blocks, overLimit };
}

/**
 * The last word on exceptions, once every source of blocks has spoken (policy, bans, manual
 * blocks, the fleet): an exception stays only where every other block over it exempts it too.
 * A block inside an exception (a user's address now guessing as others, a manual block of it)
 * or a wider block over it without that exception (a fleet range) ends the exception, so every
 * backend blocks the same addresses (an ipset `nomatch` holds for the whole set, a RETURN only
 * ahead of its own range). Pure; a new decision when something changed.
 */
export function settleExceptions(decision: Decision): Decision {
  if (!decision.blocks.some((b) => (b.exceptions?.length ?? 0) > 0)) return decision;
  const index = new CidrIndex(decision.blocks.map((b) => [b.cidr, b] as const));
  const exempts = (b: Block, e: string) => (b.exceptions ?? []).some((x) => cidrsOverlap(x, e) && parseRange(x)[1] <= parseRange(e)[1]);
  const blocks = decision.blocks.map((b) => {
    if (b.exceptions === undefined) return b;
    const kept = b.exceptions.filter((e) => {
      const over = [...index.containing(e), ...index.inside(e)].map(([, other]) => other).filter((other) => other !== b);
      return over.every((other) => exempts(other, e));
    });
    if (kept.length === b.exceptions.length) return b;
    const settled: Block = { ...b };
    if (kept.length > 0) settled.exceptions = kept;
    else delete settled.exceptions;
    return settled;
  });
  return { ...decision, blocks };
}

/** Spared addresses a range blocked whole holds as exceptions, by default (--max-exceptions). */
export const DEFAULT_MAX_EXCEPTIONS = 16;

/** Host blocks one crowded range may take: 1% of --max-blocks, at least 16 (100 with no limit). */
export const crowdedShare = (maxBlocks: number): number => (maxBlocks > 0 ? Math.max(16, Math.floor(maxBlocks / 100)) : 100);

/** The addresses where someone logged in, found per network of a length. */
class LoginIndex {
  private readonly byLength = new Map<number, Map<string, string[]>>();

  constructor(
    private readonly addresses: readonly string[],
    readonly maxExceptions: number,
  ) {}

  /** The login addresses inside `cidr`. */
  inside(cidr: string): string[] {
    const slash = cidr.indexOf('/');
    const length = Number(cidr.slice(slash + 1));
    let networks = this.byLength.get(length);
    if (networks === undefined) {
      networks = new Map();
      const v6 = cidr.includes(':');
      for (const a of this.addresses) if (a.includes(':') === v6) pushTo(networks, networkOf(a, length), a);
      this.byLength.set(length, networks);
    }
    return networks.get(cidr) ?? [];
  }

  /** The exceptions to block `cidr` whole: its login addresses that are not offenders; 'crowded' past maxExceptions. */
  hostExceptions(cidr: string, offenders: readonly Candidate[]): string[] | 'crowded' {
    const inside = this.inside(cidr);
    if (inside.length === 0) return [];
    const host = cidr.includes(':') ? 128 : 32;
    const offending = new Set(offenders.map((o) => o.address));
    const exceptions = inside.filter((a) => !offending.has(a)).map((a) => `${a}/${host}`);
    return exceptions.length > this.maxExceptions ? 'crowded' : exceptions;
  }
}

/** IPv4: hosts over the threshold, grouped by /24; a /24 needs `subnetHosts` offenders on client-level evidence alone. */
function decideIpv4(v4: readonly Candidate[], options: PolicyOptions, overlapsNever: (cidr: string) => boolean, logins: LoginIndex, trace: Trace): Block[] {
  const blocks: Block[] = [];
  const subnets = new Map<string, Candidate[]>();
  for (const c of v4) if (c.total >= options.threshold) pushTo(subnets, networkOf(c.address, 24), c);
  for (const [subnet, offenders] of subnets) {
    let clientOffenders = 0;
    for (const o of offenders) if (o.clientLevel >= options.threshold) clientOffenders++;
    const never = overlapsNever(subnet);
    const exceptions = clientOffenders >= options.subnetHosts && !never ? logins.hostExceptions(subnet, offenders) : null;
    trace.range('subnet', subnet, () => ({
      cidr: subnet,
      offenders: offenders.length,
      clientOffenders,
      needed: options.subnetHosts,
      outcome: clientOffenders < options.subnetHosts ? 'too few offenders' : never ? 'holds a never-block range' : exceptions === 'crowded' ? 'crowded with logins' : 'blocked whole',
    }));
    if (exceptions !== null && exceptions !== 'crowded') {
      blocks.push(block(subnet, 4, offenders, 'subnet', { exceptions }));
    } else {
      for (const o of offenders) blocks.push(block(`${o.address}/32`, 4, [o], 'host', { threshold: options.threshold, ...(exceptions === 'crowded' ? { crowded: subnet } : {}) }));
    }
  }
  return blocks;
}

/**
 * What an IPv6 range key of decideIpv6 needs to be blocked whole: THRESHOLD6 for a prefix; for a
 * range wider than a prefix (summary.ts adds the quietest prefixes up per /48 past --max-tracked),
 * what its prefixes' spread needs to block that /48 (THRESHOLD6 x IPV6_SUBNET_PREFIXES).
 */
function wideRangeThreshold(cidr: string, options: Pick<PolicyOptions, 'threshold6' | 'ipv6Prefix' | 'ipv6SubnetPrefixes'>): number {
  const wide = Number(cidr.slice(cidr.indexOf('/') + 1)) < options.ipv6Prefix;
  // IPV6_SUBNET_PREFIXES=0: no network wider than a prefix is blocked whole, however it was added up
  if (wide) return options.ipv6SubnetPrefixes > 0 ? options.threshold6 * options.ipv6SubnetPrefixes : Infinity;
  return options.threshold6;
}

/**
 * IPv6: a prefix adds up the client-level evidence of its addresses (unless it overlaps a
 * never-block range: then its addresses one by one); prefixes add up into their /48. A prefix
 * or /48 blocked whole keeps the addresses where someone logged in as exceptions.
 */
function decideIpv6(v6: ReadonlyMap<string, Candidate[]>, options: PolicyOptions, overlapsNever: (cidr: string) => boolean, logins: LoginIndex, trace: Trace): Block[] {
  const blocks: Block[] = [];
  const aggregate = options.ipv6SubnetPrefixes > 0 && options.ipv6Subnet < options.ipv6Prefix && options.ipv6Prefix < 128;
  // per /48: its prefix blocks, whether it may be blocked whole, and its client-level evidence
  // (`blocked` made on its first prefix: a flood of offenders spread one /64 a /48 has a /48 each)
  const subnets = new Map<string, { blocks: Block[]; members: Candidate[]; offending: number; spread: number; whole: boolean; blocked: Set<string> | null }>();
  for (const [prefix, members] of v6) {
    const alone = overlapsNever(prefix) || options.ipv6Prefix === 128;
    const mine: Block[] = [];
    let clientLevel = 0;
    for (const m of members) clientLevel += m.clientLevel;
    // a range added up past --max-tracked is no address: it can be blocked as its range only; one
    // wider than a prefix (the quietest prefixes of a /48, added up) needs what would block that /48
    // from its prefixes' spread (THRESHOLD6 x IPV6_SUBNET_PREFIXES), not one prefix's THRESHOLD6
    const threshold = wideRangeThreshold(prefix, options);
    const offenders = members.filter((m) => m.total >= options.threshold6 && m.weight === undefined);
    const exceptions = !alone && clientLevel >= threshold ? logins.hostExceptions(prefix, offenders) : null;
    trace.range('prefix', prefix, () => {
      let counted = 0;
      let addresses = 0;
      for (const m of members) {
        counted += m.total;
        addresses += m.weight ?? 1;
      }
      const outcome: RangeOutcome =
        options.ipv6Prefix === 128 ? 'counted per address' : overlapsNever(prefix) ? 'holds a never-block range' : clientLevel < threshold ? 'under the threshold' : exceptions === 'crowded' ? 'crowded with logins' : 'blocked whole';
      return { cidr: prefix, counted, clientLevel, addresses, threshold, outcome };
    });
    if (exceptions !== null && exceptions !== 'crowded') {
      mine.push(block(prefix, 6, members, 'prefix', { exceptions }));
    } else {
      // message-level evidence alone, or a crowded prefix: the offending addresses one by one
      for (const m of offenders) mine.push(block(`${m.address}/128`, 6, [m], 'host', { threshold: options.threshold6, ...(exceptions === 'crowded' ? { crowded: prefix } : {}) }));
    }
    if (!aggregate) {
      for (const b of mine) blocks.push(b);
      continue;
    }
    const subnet = networkOf(members[0]!.address, options.ipv6Subnet);
    let entry = subnets.get(subnet);
    if (entry === undefined) subnets.set(subnet, (entry = { blocks: [], members: [], offending: 0, spread: 0, whole: !overlapsNever(subnet), blocked: null }));
    for (const b of mine) entry.blocks.push(b);
    for (const m of members) entry.members.push(m);
    if (mine.length > 0) (entry.blocked ??= new Set()).add(prefix);
    if (alone || exceptions === 'crowded') entry.whole = false;
    else if (clientLevel >= threshold) entry.offending++;
    else entry.spread += clientLevel; // only what no prefix blocks on its own: one loud /64 is not a /48
  }
  for (const [subnet, entry] of subnets) {
    const over = entry.offending >= options.ipv6SubnetPrefixes || entry.spread >= options.threshold6 * options.ipv6SubnetPrefixes;
    const exceptions = entry.whole && over ? subnetExceptions(subnet, entry, options, logins) : null;
    trace.range('subnet6', subnet, () => ({
      cidr: subnet,
      offendingPrefixes: entry.offending,
      neededPrefixes: options.ipv6SubnetPrefixes,
      spread: entry.spread,
      neededSpread: options.threshold6 * options.ipv6SubnetPrefixes,
      outcome: !over ? 'too few offenders' : !entry.whole ? 'holds a never-block range' : exceptions === 'crowded' ? 'crowded with logins' : 'blocked whole',
    }));
    if (exceptions !== null && exceptions !== 'crowded') blocks.push(block(subnet, 6, entry.members, 'subnet6', { exceptions }));
    else for (const b of entry.blocks) blocks.push(b);
  }
  return blocks;
}

/**
 * The exceptions of a /48 blocked whole: a login's prefix where nothing else is blocked (a phone
 * changes its address within its /64), else the login's address; 'crowded' past maxExceptions.
 */
function subnetExceptions(subnet: string, entry: { members: readonly Candidate[]; blocked: ReadonlySet<string> | null }, options: PolicyOptions, logins: LoginIndex): string[] | 'crowded' {
  const offenders = new Set(entry.members.filter((m) => m.total >= options.threshold6).map((m) => m.address));
  const exceptions = new Set<string>();
  for (const a of logins.inside(subnet)) {
    if (offenders.has(a)) continue;
    const prefix = networkOf(a, options.ipv6Prefix);
    exceptions.add(entry.blocked?.has(prefix) === true ? `${a}/128` : prefix);
  }
  return exceptions.size > logins.maxExceptions ? 'crowded' : [...exceptions].sort(compareCidrs);
}

/** SASL failures that count: all, unless it logged in; then those naming users it did not log in as. */
function countSaslFailures(s: AddressSummary, logins: ReadonlySet<string | null> | undefined, spared: Spared[]): number {
  const failures = s.events.saslFailure;
  if (failures === 0 || logins === undefined || logins.size === 0) return failures;
  let named = s.otherUserFailures ?? 0;
  let sparedFailures = 0;
  const sparedUsers: string[] = [];
  for (const [user, counts] of s.users ?? []) {
    named += counts.failures;
    if (counts.failures > 0 && logins.has(user)) {
      sparedFailures += counts.failures;
      sparedUsers.push(user);
    }
  }
  sparedFailures = Math.min(failures, sparedFailures + Math.max(0, failures - named)); // + those that named no user
  if (sparedFailures > 0) {
    const loggedInAs = [...logins].filter((u): u is string => u !== null).sort();
    spared.push({ address: s.address, kind: 'saslFailure', saslFailures: sparedFailures, users: sparedUsers.sort(), loggedInAs, reason: 'logged in' });
  }
  return failures - sparedFailures;
}

const isMessageLevel = (kind: EventKind): boolean => (MESSAGE_LEVEL_KINDS as readonly EventKind[]).includes(kind);

/**
 * Message-level rejects that count (recipientReject, messageReject, those of `counted`): those
 * of an `unknown[ADDR]` client that had no mail accepted. Spared ones are reported when mail was
 * accepted, or when they alone would have made it an offender.
 */
function countMessageRejects(s: AddressSummary, counted: ReadonlySet<EventKind>, clientLevel: number, threshold: number, spared: Spared[]): number {
  let counting = 0;
  for (const kind of MESSAGE_LEVEL_KINDS) {
    const all = counted.has(kind) ? s.events[kind] : 0;
    if (all === 0) continue;
    const spare = (n: number, reason: 'mail accepted' | 'named client') =>
      spared.push(kind === 'recipientReject' ? { address: s.address, kind, recipientRejects: n, reason } : { address: s.address, kind, messageRejects: n, reason });
    if (s.events.accepted > 0 || s.events.saslSuccess > 0) {
      spare(all, 'mail accepted');
      continue;
    }
    const unnamed = Math.min(all, kind === 'recipientReject' ? s.unnamedRecipientRejects : s.unnamedMessageRejects);
    if (unnamed < all && clientLevel + counting + unnamed < threshold && clientLevel + counting + all >= threshold) spare(all - unnamed, 'named client');
    counting += unnamed;
  }
  return counting;
}

/** Whether a SASL failure named a trap user (`admin` also matches `admin@example.org`). Usernames are only compared. */
function triedTrap(s: AddressSummary, traps: ReadonlySet<string>): boolean {
  for (const [user, counts] of s.users ?? []) {
    if (counts.failures === 0) continue;
    const name = user.toLowerCase();
    const at = name.lastIndexOf('@');
    if (traps.has(name) || (at > 0 && traps.has(name.slice(0, at)))) return true;
  }
  return false;
}

/** The users an IPv4 address logged in as (null: a login whose line named no user). */
function loginsOf(s: AddressSummary): Set<string | null> | undefined {
  if (s.events.saslSuccess === 0) return undefined;
  return addLogins(new Map(), '', s).get('');
}

function addLogins(map: Map<string, Set<string | null>>, key: string, s: AddressSummary): Map<string, Set<string | null>> {
  let users = map.get(key);
  if (users === undefined) map.set(key, (users = new Set()));
  let named = 0;
  for (const [user, counts] of s.users ?? []) {
    if (counts.logins === 0) continue;
    users.add(user);
    named += counts.logins;
  }
  if (named < s.events.saslSuccess) users.add(null);
  return map;
}

/**
 * What explain asks about: the ranges holding its addresses record what the policy made of them
 * (a lookup per range, nothing more when explain asks nothing), and reason() puts an address's
 * record together from them and from the candidates.
 */
class Trace {
  private readonly watched = new Set<string>();
  private readonly ranges = new Map<string, unknown>();
  private readonly counts = new Map<string, { counted: number; clientLevel: number } | null>();

  constructor(
    addresses: readonly string[],
    private readonly options: PolicyOptions,
  ) {
    for (const a of addresses) {
      this.counts.set(a, null);
      if (a.includes(':')) this.watched.add(networkOf(a, options.ipv6Prefix)).add(networkOf(a, options.ipv6Subnet));
      else this.watched.add(networkOf(a, 24));
    }
  }

  counted(address: string, counted: number, clientLevel: number): void {
    if (this.counts.has(address)) this.counts.set(address, { counted, clientLevel });
  }

  /** What the policy made of a range of `kind` (a prefix past --max-tracked may be a /48: the kind tells it from the /48 above prefixes). */
  range(kind: 'subnet' | 'prefix' | 'subnet6', cidr: string, record: () => NonNullable<Reason['subnet'] | Reason['prefix'] | Reason['subnet6']>): void {
    if (this.watched.has(cidr)) this.ranges.set(`${kind} ${cidr}`, record());
  }

  reason(address: string, summaries: readonly AddressSummary[], decision: Decision): Reason {
    const o = this.options;
    const ipv6 = address.includes(':');
    const s = summaryOfAddress(summaries, address);
    const counts = this.counts.get(address) ?? { counted: 0, clientLevel: 0 };
    const ip = parseIp(address);
    const holding = (blocks: readonly Block[]) => blocks.find((b) => inRange(ip, parseRange(b.cidr)));
    const never = o.neverBlock.find((n) => inRange(ip, parseRange(n.cidr)));
    const reason: Reason = {
      address,
      events: s?.total ?? 0,
      counted: counts.counted,
      clientLevel: counts.clientLevel,
      threshold: ipv6 ? o.threshold6 : o.threshold,
      spared: decision.spared.filter((x) => x.address === address),
      block: holding(decision.blocks)?.cidr ?? null,
    };
    if (never !== undefined) reason.neverBlock = `${never.source} ${never.cidr}`;
    const over = holding(decision.overLimit);
    if (over !== undefined) reason.overLimit = over.cidr;
    if (ipv6) {
      // its prefix, or the wider range its prefix was added up into past --max-tracked
      const folded = networkOf(address, o.ipv6Subnet);
      const prefix = !this.ranges.has(`prefix ${networkOf(address, o.ipv6Prefix)}`) && this.ranges.has(`prefix ${folded}`) ? folded : networkOf(address, o.ipv6Prefix);
      // every prefix with counted events is recorded as decideIpv6 meets it: none recorded, none counted
      reason.prefix = (this.ranges.get(`prefix ${prefix}`) as Reason['prefix']) ?? { cidr: prefix, counted: 0, clientLevel: 0, addresses: 0, threshold: o.threshold6, outcome: 'under the threshold' };
      const subnet = this.ranges.get(`subnet6 ${folded}`) as Reason['subnet6'];
      if (subnet !== undefined) reason.subnet6 = subnet;
    } else {
      const subnet = networkOf(address, 24);
      reason.subnet = (this.ranges.get(`subnet ${subnet}`) as Reason['subnet']) ?? { cidr: subnet, offenders: 0, clientOffenders: 0, needed: o.subnetHosts, outcome: 'too few offenders' };
    }
    return reason;
  }
}

interface BlockExtra {
  exceptions?: string[];
  crowded?: string;
  /** A host block: the threshold it was measured against (below it on client-level evidence: messageLevel). */
  threshold?: number;
}

function block(cidr: string, family: 4 | 6, members: readonly Candidate[], reason: BlockReason, extra: BlockExtra = {}): Block {
  let total = 0;
  let clientLevel = 0;
  let lastSeen = -Infinity;
  let addressCount = 0; // a range added up past --max-tracked counts as its addresses: --max-blocks ranks by events per address
  for (const m of members) {
    total += m.total;
    clientLevel += m.clientLevel;
    addressCount += m.weight ?? 1;
    if (m.lastSeen > lastSeen) lastSeen = m.lastSeen;
  }
  // a range added up past --max-tracked is named by its network address, which no log line named:
  // never one of the block's addresses (the access map would reject it as a client)
  let named = members.filter((m) => m.weight === undefined);
  if (named.length > 1) {
    // by address (each address's sort key made once: a candidate keeps no parsed address, which a
    // flood of offenders would hold 200,000 of)
    const keys = new Map(named.map((m) => [m, addressSortKey(m.address)]));
    const byAddress = (a: Candidate, b: Candidate) => (keys.get(a)! < keys.get(b)! ? -1 : keys.get(a)! > keys.get(b)! ? 1 : 0);
    if (named.length > MAX_BLOCK_ADDRESSES) named = named.sort((a, b) => b.total - a.total || byAddress(a, b)).slice(0, MAX_BLOCK_ADDRESSES);
    named.sort(byAddress);
  }
  const made: Block = { cidr, family, addresses: named.map((m) => m.address), addressCount, total, reason, lastSeen };
  if (extra.exceptions !== undefined && extra.exceptions.length > 0) made.exceptions = extra.exceptions;
  if (extra.crowded !== undefined) made.crowded = extra.crowded;
  if (extra.threshold !== undefined && clientLevel < extra.threshold) made.messageLevel = true;
  return made;
}

function pushTo<T>(map: Map<string, T[]>, key: string, value: T): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else list.push(value);
}
