/**
 * Manual blocks and unblocks (`smtpguard block`, `smtpguard unblock`), applied to a
 * Decision as a step of their own after the policy. Pure.
 *
 * - An unblock removes every block inside its range and keeps it out until `until`
 *   (null: for good). An unblocked address inside a larger block (a /24, an IPv6
 *   prefix) splits that block: the block goes, its other offenders stay blocked one by
 *   one.
 * - A manual block is a block with reason `manual`; it takes in the blocks inside it,
 *   and is left out (reported as ignored) when it overlaps a never-block range (this
 *   host, mynetworks, ALLOW) or lies inside a block already made.
 * - Entries whose `until` has passed do nothing.
 */
import { cidrsOverlap, compareCidrs, isValidRange, networkOf, parseRange, rangesOverlap } from '../address.js';
import { MAX_BLOCK_ADDRESSES, type Block, type Decision, type Ignored, type NamedRange } from './policy.js';
import { CidrIndex } from './cidr-index.js';

export interface Override {
  /** Always with a prefix length, canonical: `192.0.2.7/32`, `198.51.100.0/24`, `2001:db8:1:2::/64`. */
  cidr: string;
  kind: 'unblock' | 'block';
  /** ISO time it ends; null: for good. */
  until: string | null;
  comment: string | null;
  /** ISO time it was made. */
  created: string;
}

export interface OverrideContext {
  now: Date;
  neverBlock: readonly NamedRange[];
  /** Counted events per address in the window: the totals of blocks made by a split. */
  totals: ReadonlyMap<string, number>;
}

/** `192.0.2.7` -> `192.0.2.7/32`; a range keeps its length. A problem when the host bits are not zero. */
export function canonicalCidr(text: string): string | { problem: string } {
  const [ip, bits] = parseRange(text.trim());
  const address = ip.kind() === 'ipv4' ? ip.toString() : (ip as import('ipaddr.js').IPv6).toRFC5952String();
  const network = networkOf(address, bits);
  if (text.includes('/') && network !== `${address}/${bits}`) return { problem: `${text} has host bits set: did you mean ${network}?` };
  return network;
}

export const isActive = (o: Override, now: Date): boolean => o.until === null || Date.parse(o.until) > now.getTime();

export function describeUntil(o: Pick<Override, 'until'>): string {
  return o.until === null ? 'for good' : `until ${o.until}`;
}

export function applyOverrides(decision: Decision, overrides: readonly Override[], context: OverrideContext): Decision {
  const active = overrides.filter((o) => isActive(o, context.now));
  const unblocks = new CidrIndex(active.filter((o) => o.kind === 'unblock').map((o) => [o.cidr, o] as const));
  const ignored: Ignored[] = [...decision.ignored];
  const blocks = new CidrIndex<Block>();
  const hostBitsOf = (family: 4 | 6) => (family === 4 ? 32 : 128);

  for (const block of decision.blocks) {
    // the unblocks that hold the block, and those inside it
    const holding = unblocks.containing(block.cidr);
    const within = unblocks.size === 0 ? [] : unblocks.inside(block.cidr);
    if (holding.length === 0 && within.length === 0) {
      blocks.set(block.cidr, block);
      continue;
    }
    // the block goes; its offenders outside the unblocked ranges stay blocked one by one
    for (const address of block.addresses) {
      const hostBits = hostBitsOf(block.family);
      const hit = unblocks.containing(`${address}/${hostBits}`)[0]?.[1];
      const total = context.totals.get(address) ?? (block.addresses.length === 1 ? block.total : 0);
      if (hit !== undefined) ignored.push({ address, total, reason: `unblocked ${describeUntil(hit)} (${hit.cidr})` });
      else if (holding.length === 0) {
        // its own last event is not known here: the block's last event bounds it (a ban runs from there)
        const cidr = `${address}/${hostBits}`;
        blocks.set(cidr, { cidr, family: block.family, addresses: [address], addressCount: 1, total, reason: 'host', ...(block.lastSeen === undefined ? {} : { lastSeen: block.lastSeen }) });
      }
    }
  }

  const never = context.neverBlock.map((n) => ({ range: parseRange(n.cidr), label: `${n.source} ${n.cidr}` }));
  for (const o of active.filter((x) => x.kind === 'block')) {
    const range = parseRange(o.cidr);
    const guard = never.find((n) => rangesOverlap(range, n.range));
    if (guard !== undefined) {
      ignored.push({ address: o.cidr, total: 0, reason: `manual block overlaps ${guard.label}` });
      continue;
    }
    // a larger block holds it, unless it is one of that block's exceptions (settleExceptions then ends the exception)
    const exempted = (b: Block) => (b.exceptions ?? []).some((e) => cidrsOverlap(e, o.cidr));
    if (blocks.containing(o.cidr).some(([cidr, b]) => cidr !== o.cidr && !exempted(b))) continue;
    const covered = blocks.inside(o.cidr).map(([, b]) => b);
    const family = range[0].kind() === 'ipv4' ? 4 : 6;
    const addresses = range[1] === hostBitsOf(family) ? [o.cidr.slice(0, o.cidr.lastIndexOf('/'))] : [...new Set(covered.flatMap((b) => b.addresses))].slice(0, MAX_BLOCK_ADDRESSES);
    const addressCount = range[1] === hostBitsOf(family) ? 1 : covered.reduce((sum, b) => sum + b.addressCount, 0);
    for (const b of covered) blocks.delete(b.cidr);
    // a block --for ends with it (a firewall that keeps timeouts drops it then by itself)
    blocks.set(o.cidr, { cidr: o.cidr, family, addresses, addressCount, total: covered.reduce((sum, b) => sum + b.total, 0), reason: 'manual', ...(o.until === null ? {} : { until: o.until }) });
  }
  return { ...decision, blocks: [...blocks.values()].sort((a, b) => compareCidrs(a.cidr, b.cidr)), ignored };
}

/** `overrides.json`: `{"version": 1, "entries": [...]}`, or what is wrong with it. */
export function parseOverrides(text: string): Override[] | { problem: string } {
  let value: { version?: unknown; entries?: unknown };
  try {
    value = JSON.parse(text) as typeof value;
  } catch (error) {
    return { problem: (error as Error).message };
  }
  if (value?.version !== 1 || !Array.isArray(value.entries)) return { problem: 'expected {"version": 1, "entries": [...]}' };
  const overrides: Override[] = [];
  for (const [i, e] of (value.entries as unknown[]).entries()) {
    const o = e as Override;
    const ok =
      typeof o === 'object' && o !== null && typeof o.cidr === 'string' && (o.kind === 'unblock' || o.kind === 'block') &&
      (o.until === null || (typeof o.until === 'string' && !Number.isNaN(Date.parse(o.until)))) &&
      (o.comment === null || typeof o.comment === 'string') && typeof o.created === 'string';
    if (!ok) return { problem: `entry ${i + 1} is not {cidr, kind: "unblock"|"block", until, comment, created}` };
    if (!isValidRange(o.cidr) || canonicalCidr(o.cidr) !== o.cidr) return { problem: `entry ${i + 1}: ${o.cidr} is not a canonical address/prefix` };
    overrides.push({ cidr: o.cidr, kind: o.kind, until: o.until, comment: o.comment, created: o.created });
  }
  return overrides;
}

export function renderOverrides(overrides: readonly Override[]): string {
  return `${JSON.stringify({ version: 1, entries: overrides }, null, 1)}\n`;
}
