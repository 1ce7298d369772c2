/**
 * Policy: per-address counts in the window -> what to block. Pure.
 *
 * - An IPv4 address is an offender when its counted events reach `threshold`;
 *   `subnetHosts` or more offenders in one /24 block the /24 instead.
 * - IPv6 is counted per prefix (`ipv6Prefix`, /64 by default): the events of all its
 *   addresses add up against `threshold6`, and the block is the prefix.
 * - Never blocked: the `neverBlock` ranges (loopback, this host, mynetworks, --allow).
 *   A /24 or IPv6 prefix that overlaps one, or where someone logged in, is not
 *   aggregated: its offenders are blocked one by one.
 * - A client that also logged in successfully is not blocked for its SASL failures
 *   (for IPv6, a login from any address of its prefix: phones change addresses).
 * - `maxBlocks` keeps the worst blocks.
 */
import { compareCidrs, compareIps, inRange, networkOf, parseIp, parseRange, rangesOverlap, type Ip } from './address.js';
import type { EventKind } from './kinds.js';
import type { AddressSummary } from './tally.js';

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
  neverBlock: readonly NamedRange[];
  /** 0: no limit. */
  maxBlocks: number;
}

/** `manual`: made by `smtpguard block` (overrides.ts). */
export type BlockReason = 'host' | 'subnet' | 'prefix' | 'manual';

export interface Block {
  /** Always with a prefix length: `192.0.2.7/32`, `192.0.2.0/24`, `2001:db8:1:2::/64`. */
  cidr: string;
  family: 4 | 6;
  /** The offending addresses inside it, sorted. */
  addresses: string[];
  /** Their counted events. */
  total: number;
  reason: BlockReason;
}

export interface Spared {
  address: string;
  /** SASL failures not held against it. */
  saslFailures: number;
  reason: 'logged in';
}

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
}

interface Candidate {
  address: string;
  ip: Ip;
  total: number;
}

export function decideBlocks(summaries: readonly AddressSummary[], options: PolicyOptions): Decision {
  const never = options.neverBlock.map((r) => ({ range: parseRange(r.cidr), label: `${r.source} ${r.cidr}` }));
  const counted = new Set(options.countedKinds);
  const spared: Spared[] = [];
  const ignored: Ignored[] = [];
  const v4: Candidate[] = [];
  const v6 = new Map<string, Candidate[]>(); // prefix cidr -> its addresses

  // Networks where someone logged in: never blocked whole (IPv4 /24, IPv6 prefix), and
  // for IPv6 the SASL failures of the whole prefix are spared (phones change addresses).
  const loggedIn24 = new Set<string>();
  const loggedIn6 = new Set<string>();
  for (const s of summaries) {
    if (s.events.saslSuccess === 0) continue;
    if (s.address.includes(':')) loggedIn6.add(networkOf(s.address, options.ipv6Prefix));
    else loggedIn24.add(networkOf(s.address, 24));
  }

  for (const s of summaries) {
    const ip = parseIp(s.address);
    const family = ip.kind() === 'ipv4' ? 4 : 6;
    const loggedIn = family === 4 ? s.events.saslSuccess > 0 : loggedIn6.has(networkOf(s.address, options.ipv6Prefix));
    let total = 0;
    for (const kind of counted) total += s.events[kind];
    if (loggedIn && counted.has('saslFailure') && s.events.saslFailure > 0) {
      total -= s.events.saslFailure;
      spared.push({ address: s.address, saslFailures: s.events.saslFailure, reason: 'logged in' });
    }
    if (total === 0) continue;
    const guard = never.find((n) => inRange(ip, n.range));
    if (guard !== undefined) {
      // reported only when it would have been blocked on its own
      if (total >= (family === 4 ? options.threshold : options.threshold6)) ignored.push({ address: s.address, total, reason: guard.label });
      continue;
    }
    const candidate = { address: s.address, ip, total };
    if (family === 4) v4.push(candidate);
    else pushTo(v6, networkOf(s.address, options.ipv6Prefix), candidate);
  }

  const blocks: Block[] = [];
  const overlapsNever = (cidr: string) => {
    const range = parseRange(cidr);
    return never.some((n) => rangesOverlap(range, n.range));
  };

  // IPv4: hosts over the threshold, grouped by /24.
  const subnets = new Map<string, Candidate[]>();
  for (const c of v4) if (c.total >= options.threshold) pushTo(subnets, networkOf(c.address, 24), c);
  for (const [subnet, offenders] of subnets) {
    if (offenders.length >= options.subnetHosts && !overlapsNever(subnet) && !loggedIn24.has(subnet)) {
      blocks.push(block(subnet, 4, offenders, 'subnet'));
    } else {
      for (const o of offenders) blocks.push(block(`${o.address}/32`, 4, [o], 'host'));
    }
  }

  // IPv6: the prefix adds up, unless it overlaps a never-block range.
  for (const [prefix, members] of v6) {
    if (overlapsNever(prefix) || loggedIn6.has(prefix) || options.ipv6Prefix === 128) {
      for (const m of members) if (m.total >= options.threshold6) blocks.push(block(`${m.address}/128`, 6, [m], 'host'));
    } else if (members.reduce((sum, m) => sum + m.total, 0) >= options.threshold6) {
      blocks.push(block(prefix, 6, members, 'prefix'));
    }
  }

  let overLimit: Block[] = [];
  if (options.maxBlocks > 0 && blocks.length > options.maxBlocks) {
    blocks.sort((a, b) => b.total - a.total || compareCidrs(a.cidr, b.cidr));
    overLimit = blocks.splice(options.maxBlocks).sort((a, b) => compareCidrs(a.cidr, b.cidr));
  }
  blocks.sort((a, b) => compareCidrs(a.cidr, b.cidr));
  return { blocks, spared, ignored, overLimit };
}

function block(cidr: string, family: 4 | 6, members: Candidate[], reason: BlockReason): Block {
  const sorted = [...members].sort((a, b) => compareIps(a.ip, b.ip));
  return { cidr, family, addresses: sorted.map((m) => m.address), total: sorted.reduce((sum, m) => sum + m.total, 0), reason };
}

function pushTo<T>(map: Map<string, T[]>, key: string, value: T): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else list.push(value);
}
