/**
 * What this server pushes to CrowdSec's Local API, and what it still owes (pure). One entry
 * per ban: a block made here, and when its decision ends (banEnd). An entry is queued when
 * the block appears, sent with the next successful push, and kept (sent) until its decision
 * ends: so a block that stays is pushed once, an unsent one is sent next run, and the pull
 * knows its own bans. A block that keeps getting events (its end moves later) is pushed again
 * when its end has moved by a quarter of the window (at most 6 hours): the fleet's decision
 * then runs as long as the local block.
 *
 * Each alert's message carries the ban's key (`[smtpguard-ban mx1 203.0.113.9/32 2026-...Z]`):
 * an alert whose answer was lost is found on LAPI before it is sent again (no duplicates).
 */
import { banEnd } from '../decide/fleet.js';
import type { Block } from '../decide/policy.js';

export const QUEUE_VERSION = 1;

export interface Ban {
  /** `MACHINE CIDR UNTIL-ISO`: one ban, never sent twice. */
  key: string;
  cidr: string;
  family: 4 | 6;
  /** The local block's reason: the scenario is `smtpguard/<reason>`. */
  reason: string;
  total: number;
  addressCount: number;
  firstSeen: number;
  lastSeen: number;
  until: number;
  /** false: queued. */
  sent: boolean;
  /** Tries so far (a try may have reached LAPI even when its answer did not come back). */
  attempts: number;
}

export interface PushQueue {
  version: number;
  bans: Ban[];
}

export const emptyQueue = (): PushQueue => ({ version: QUEUE_VERSION, bans: [] });

/** A local block with the span of its events. */
export interface SeenBlock {
  block: Block;
  firstSeen: number;
  lastSeen: number;
}

export function refreshMs(window: number): number {
  return Math.max(60e3, Math.min(6 * 3600e3, window / 4));
}

/**
 * The queue after this run's blocks: ended bans dropped, a new ban queued for each local
 * block without a running one (or whose end moved on by refreshMs). Fleet blocks are never
 * pushed: they are someone else's.
 */
export function queueBans(queue: PushQueue, blocks: readonly SeenBlock[], context: { machine: string; now: number; window: number }): { queue: PushQueue; queued: Ban[] } {
  const bans = queue.bans.filter((b) => b.until > context.now);
  const latest = new Map<string, number>();
  for (const b of bans) latest.set(b.cidr, Math.max(latest.get(b.cidr) ?? -Infinity, b.until));
  const queued: Ban[] = [];
  for (const { block, firstSeen, lastSeen } of blocks) {
    // the fleet's own blocks go back to nobody; a block resting on a bot's message rejects is local
    // evidence only; a range with exceptions (someone logged in there) would block that user elsewhere
    if (block.reason === 'fleet' || block.messageLevel === true || (block.exceptions?.length ?? 0) > 0) continue;
    const seen = Number.isFinite(lastSeen) ? lastSeen : context.now;
    const until = endOf(block, seen, context);
    if (until <= context.now) continue;
    const running = latest.get(block.cidr);
    if (running !== undefined && until - running < refreshMs(context.window)) continue;
    const ban: Ban = {
      key: `${context.machine} ${block.cidr} ${new Date(until).toISOString()}`,
      cidr: block.cidr,
      family: block.family,
      reason: block.reason,
      total: block.total,
      addressCount: block.addressCount,
      firstSeen: Number.isFinite(firstSeen) ? firstSeen : seen,
      lastSeen: seen,
      until,
      sent: false,
      attempts: 0,
    };
    queued.push(ban);
    latest.set(block.cidr, until);
  }
  return { queue: { version: QUEUE_VERSION, bans: [...bans, ...queued] }, queued };
}

/** A decision LAPI takes for "forever": ten years. */
export const FOREVER_MS = 10 * 365 * 24 * 3600e3;

/** When the ban of a block ends: its ban time when bans set one (`until`), else the window's end (banEnd). */
function endOf(block: Block, lastSeen: number, context: { now: number; window: number }): number {
  if (block.until === null) return context.now + FOREVER_MS;
  const until = block.until === undefined ? NaN : Date.parse(block.until);
  return Number.isNaN(until) ? banEnd(lastSeen, context.now, context.window) : until;
}

/** The CIDRs whose pushed (or queued) decisions still run: the pull does not take them back. */
export function ownBans(queue: PushQueue, now: number): Set<string> {
  return new Set(queue.bans.filter((b) => b.until > now).map((b) => b.cidr));
}

/** Queued bans with time left, oldest first. */
export function unsent(queue: PushQueue, now: number): Ban[] {
  return queue.bans.filter((b) => !b.sent && b.until - now >= 1000).sort((a, b) => a.until - b.until || a.key.localeCompare(b.key));
}

export function markSent(queue: PushQueue, keys: ReadonlySet<string>): PushQueue {
  return { ...queue, bans: queue.bans.map((b) => (keys.has(b.key) ? { ...b, sent: true } : b)) };
}

export function markTried(queue: PushQueue, keys: ReadonlySet<string>): PushQueue {
  return { ...queue, bans: queue.bans.map((b) => (keys.has(b.key) ? { ...b, attempts: b.attempts + 1 } : b)) };
}

export const scopeOf = (cidr: string): { scope: 'Ip' | 'Range'; value: string } =>
  cidr.endsWith('/32') && !cidr.includes(':') ? { scope: 'Ip', value: cidr.slice(0, -3) } : cidr.endsWith('/128') ? { scope: 'Ip', value: cidr.slice(0, -4) } : { scope: 'Range', value: cidr };

export const banTag = (ban: Ban): string => `[smtpguard-ban ${ban.key}]`;

export const scenarioOf = (ban: Ban): string => `smtpguard/${ban.reason}`;

/** The decisions' origin: what CrowdSec's own log processors use, so `cscli decisions list` shows them by default. */
export const ORIGIN = 'crowdsec';

/** The alert for one ban (models.Alert): the decision's duration is the time left at sending. */
export function renderAlert(ban: Ban, context: { machine: string; now: number; version: string }) {
  const { scope, value } = scopeOf(ban.cidr);
  const scenario = scenarioOf(ban);
  const seconds = Math.max(1, Math.ceil((ban.until - context.now) / 1000));
  const addresses = ban.addressCount === 1 ? '1 address' : `${ban.addressCount} addresses`;
  return {
    scenario,
    scenario_hash: '',
    scenario_version: context.version,
    message: `smtpguard on ${context.machine} blocked ${ban.cidr} (${ban.reason}): ${ban.total} events from ${addresses} ${banTag(ban)}`,
    events_count: ban.total,
    start_at: new Date(ban.firstSeen).toISOString(),
    stop_at: new Date(ban.lastSeen).toISOString(),
    capacity: 0,
    leakspeed: '0',
    simulated: false,
    remediation: true,
    events: [],
    source: scope === 'Ip' ? { scope, value, ip: value } : { scope, value, range: value },
    decisions: [{ type: 'ban', scope, value, duration: `${seconds}s`, origin: ORIGIN, scenario }],
  };
}

export type Alert = ReturnType<typeof renderAlert>;

/** A queue read back from its file, or null when it is not one. */
export function parseQueue(text: string): PushQueue | null {
  try {
    const q = JSON.parse(text) as PushQueue;
    if (typeof q !== 'object' || q === null || q.version !== QUEUE_VERSION || !Array.isArray(q.bans)) return null;
    const ok = q.bans.every(
      (b) =>
        typeof b === 'object' && b !== null && typeof b.key === 'string' && typeof b.cidr === 'string' && (b.family === 4 || b.family === 6) &&
        typeof b.reason === 'string' && /^[a-z0-9]+$/.test(b.reason) &&
        [b.total, b.addressCount, b.firstSeen, b.lastSeen, b.until, b.attempts].every((n) => typeof n === 'number' && Number.isFinite(n)) &&
        typeof b.sent === 'boolean',
    );
    return ok ? q : null;
  } catch {
    return null;
  }
}

