/**
 * Fleet: blocks other servers decided, merged into this server's decision. Pure.
 *
 * A pulled decision (from CrowdSec's Local API, see crowdsec/stream.ts) becomes a block with
 * reason `fleet` that keeps its origin and scenario. This server has the last word:
 * - a decision that touches any never-block range (loopback, this host, mynetworks, --allow,
 *   this host's unblocks: whatever the caller puts in `neverBlock`) is not applied, not even in part;
 * - a decision for a range this server pushed itself, while that push is live, is its own
 *   block coming back: not a second block;
 * - a decision already covered by a local block adds nothing;
 * - fleet blocks fill only the room --max-blocks leaves after the local blocks.
 */
import { cidrsOverlap, cidrSortKey, compareCidrs, ipv4Cidr, ipv4Overlap, networkOf, parseRange, sortByCidr, unmapRange } from '../address.js';
import { CidrIndex } from './cidr-index.js';
import { describeUntil, isActive, type Override } from './overrides.js';
import type { Block, Decision, NamedRange } from './policy.js';

export interface FleetDecision {
  /** Canonical CIDR with its length: `203.0.113.9/32`, `198.51.100.0/24`, `2001:db8::/64`. */
  cidr: string;
  family: 4 | 6;
  scenario: string;
  origin: string;
  /** When it expires (ms). */
  until: number;
}

export interface FleetOptions {
  neverBlock: readonly NamedRange[];
  /** CIDRs this server pushed and whose decisions still run: never pulled back. */
  ownBans: ReadonlySet<string>;
  now: number;
  /** 0: no limit. */
  maxBlocks: number;
}

export type FleetBlock = Block & { reason: 'fleet'; fleet: NonNullable<Block['fleet']> };

/** The decision with the applicable fleet blocks added (a new object; the input is not changed). */
export function mergeFleetBlocks(decision: Decision, pulled: readonly FleetDecision[], options: FleetOptions): Decision {
  // canonical first: mynetworks may say 10.0.0.0/08, which the IPv4 fast path would not read
  const never = options.neverBlock.map((r) => {
    const cidr = canonicalOr(r.cidr);
    return { cidr, v4: ipv4Cidr(cidr), label: `${r.source} ${r.cidr}` };
  });
  const never4 = never.filter((n) => n.v4 !== null);
  const neverOther = never.filter((n) => n.v4 === null); // IPv6, and anything not read as IPv4: the slow, sure way
  const isoOf = cachedIso();
  const local = new CidrIndex(decision.blocks.map((b) => [b.cidr, true] as const));
  const ignored = [...decision.ignored];
  const chosen = new Map<string, FleetBlock>();
  // the longest-running decision for a range wins; the order of the input does not matter
  const keyed = pulled.map((d) => ({ key: cidrSortKey(d.cidr), d }));
  keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0) || b.d.until - a.d.until || a.d.scenario.localeCompare(b.d.scenario));
  const sorted = keyed.map((k) => k.d);
  for (const d of sorted) {
    if (d.until <= options.now || chosen.has(d.cidr) || options.ownBans.has(d.cidr)) continue;
    // IPv4 (nearly every decision) by integers against the parsed never-block ranges
    const v4 = d.family === 4 ? ipv4Cidr(d.cidr) : null;
    const guard =
      v4 === null
        ? never.find((n) => cidrsOverlap(d.cidr, n.cidr))
        : (never4.find((n) => ipv4Overlap(v4, n.v4!)) ?? neverOther.find((n) => !n.cidr.includes(':') && cidrsOverlap(d.cidr, n.cidr)));
    if (guard !== undefined) {
      ignored.push({ address: d.cidr, total: 0, reason: `${guard.label} (fleet decision ${d.scenario} from ${d.origin})` });
      continue;
    }
    if (local.containing(d.cidr).length > 0) continue; // a local block holds it
    chosen.set(d.cidr, fleetBlock(d, isoOf));
  }
  let fleet = [...chosen.values()];
  let overLimit = decision.overLimit;
  if (options.maxBlocks > 0) {
    const room = Math.max(0, options.maxBlocks - decision.blocks.length);
    if (fleet.length > room) {
      // keep those that run longest; the rest waits like any offender over the cap
      fleet.sort((a, b) => Date.parse(b.fleet.until) - Date.parse(a.fleet.until) || compareCidrs(a.cidr, b.cidr));
      overLimit = [...overLimit, ...fleet.splice(room)].sort((a, b) => compareCidrs(a.cidr, b.cidr));
    }
  }
  const blocks = sortByCidr([...decision.blocks, ...fleet], (b) => b.cidr);
  return { ...decision, blocks, ignored, overLimit };
}

/** The canonical form of a range (`10.0.0.0/08` -> `10.0.0.0/8`), or the text as it was when it cannot be read. */
function canonicalOr(cidr: string): string {
  try {
    const [ip, bits] = parseRange(cidr);
    return networkOf(ip.kind() === 'ipv4' ? ip.toString() : (ip as import('ipaddr.js').IPv6).toRFC5952String(), bits);
  } catch {
    return cidr;
  }
}

/** ISO text of a time, each distinct time converted once (a pull's decisions mostly share their end). */
function cachedIso(): (ms: number) => string {
  const seen = new Map<number, string>();
  return (ms) => {
    let iso = seen.get(ms);
    if (iso === undefined) seen.set(ms, (iso = new Date(ms).toISOString()));
    return iso;
  };
}

function fleetBlock(d: FleetDecision, isoOf: (ms: number) => string = cachedIso()): FleetBlock {
  const host = d.cidr.endsWith(d.family === 4 ? '/32' : '/128');
  const until = isoOf(d.until);
  return {
    cidr: d.cidr,
    family: d.family,
    // a host is written to an indexed access map by its address; a range only by the firewall (and /24 and cidr maps)
    addresses: host ? [d.cidr.slice(0, d.cidr.indexOf('/'))] : [],
    addressCount: host ? 1 : 0,
    total: 0,
    reason: 'fleet',
    until,
    fleet: { scenario: d.scenario, origin: d.origin, until },
  };
}

/** This host's active unblocks (`smtpguard unblock`), as never-block ranges for the fleet's decisions. */
export function unblockedRanges(overrides: readonly Override[], now: Date): NamedRange[] {
  return overrides.filter((o) => o.kind === 'unblock' && isActive(o, now)).map((o) => ({ cidr: unmapRange(o.cidr), source: `unblocked ${describeUntil(o)}` }));
}

export const isFleetBlock = (b: Block): b is FleetBlock => b.reason === 'fleet';

/** Ban length when the window decides (no ban times yet): 24 hours for `--window all`. */
export const ALL_WINDOW_BAN_MS = 24 * 3600e3;

/**
 * When a block made here ends, and so when the decision pushed for it should end: the moment
 * its last event leaves the window (a block of `--window all` lasts while the logs hold it:
 * 24 hours from now, renewed while it stays). The one place ban times (issue 12) replace.
 */
export function banEnd(lastSeen: number, now: number, window: number): number {
  if (window === Infinity) return now + ALL_WINDOW_BAN_MS;
  return Math.max(now, lastSeen + window);
}
