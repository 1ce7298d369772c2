/**
 * The decision stream's bookkeeping (pure): what `GET /v1/decisions/stream` answered so far,
 * kept in the state directory between runs. The first pull asks `startup=true` (every
 * active decision); later pulls get only what was added and deleted since the last one.
 * A full pull again when there is no state, when the LAPI address or the filter changed
 * (decisions the old filter skipped were never kept), and once a day (a delta answer lost
 * on the way cannot leave a hole for long).
 */
import { canonicalRangeProblem, networkOf } from '../address.js';
import type { FleetDecision } from '../decide/fleet.js';

export const STREAM_VERSION = 1;
/** A full pull at least this often. */
export const RESYNC_MS = 24 * 3600e3;

/** Which decisions are taken: a scenario starting with one of `scenarios`, or one of `origins`. */
export interface StreamFilter {
  scenarios: readonly string[];
  origins: readonly string[];
}

export interface StreamState {
  version: number;
  url: string;
  /** filterKey() of the filter the kept decisions passed. */
  filter: string;
  /** The last full pull (ms). */
  startup: number;
  /** The last successful pull (ms). */
  pulled: number;
  decisions: Array<FleetDecision & { id: number }>;
}

/** A decision as LAPI sends it (models.Decision): checked field by field, nothing trusted. */
export interface LapiDecision {
  id?: unknown;
  duration?: unknown;
  origin?: unknown;
  scenario?: unknown;
  scope?: unknown;
  type?: unknown;
  value?: unknown;
}

export interface StreamAnswer {
  new?: LapiDecision[] | null;
  deleted?: LapiDecision[] | null;
}

export const filterKey = (filter: StreamFilter): string =>
  JSON.stringify({ scenarios: [...filter.scenarios].sort(), origins: [...filter.origins].map((o) => o.toLowerCase()).sort() });

export function needsStartup(state: StreamState | null, url: string, filter: StreamFilter, now: number): boolean {
  return state === null || state.url !== url || state.filter !== filterKey(filter) || !(now - state.startup < RESYNC_MS) || now < state.startup;
}

export function selects(filter: StreamFilter, scenario: string, origin: string): boolean {
  return filter.scenarios.some((prefix) => scenario.startsWith(prefix)) || filter.origins.some((o) => o.toLowerCase() === origin.toLowerCase());
}

/**
 * The state after one answer: a startup answer replaces what was kept, a delta answer
 * removes the deleted ids and adds the new ones. Only `ban` decisions of scope Ip or Range
 * that pass the filter and have time left are kept; `skipped` counts the malformed ones.
 */
export function applyStreamAnswer(
  state: StreamState | null,
  answer: StreamAnswer,
  context: { startup: boolean; url: string; filter: StreamFilter; now: number },
): { state: StreamState; skipped: number } {
  const kept = new Map<number, FleetDecision & { id: number }>();
  if (!context.startup && state !== null) for (const d of state.decisions) kept.set(d.id, d);
  for (const d of answer.deleted ?? []) if (typeof d?.id === 'number') kept.delete(d.id);
  let skipped = 0;
  for (const raw of answer.new ?? []) {
    const d = readDecision(raw, context.now);
    if (d === 'malformed') skipped++;
    else if (d !== null && selects(context.filter, d.scenario, d.origin)) kept.set(d.id, d);
  }
  const decisions = [...kept.values()].filter((d) => d.until > context.now).sort((a, b) => a.id - b.id);
  return {
    state: {
      version: STREAM_VERSION,
      url: context.url,
      filter: filterKey(context.filter),
      startup: context.startup || state === null ? context.now : state.startup,
      pulled: context.now,
      decisions,
    },
    skipped,
  };
}

/** The decisions still running at `now`. */
export function liveDecisions(state: StreamState | null, now: number): Array<FleetDecision & { id: number }> {
  return (state?.decisions ?? []).filter((d) => d.until > now);
}

/** null: a decision smtpguard does not apply (not a ban, another scope, expired); 'malformed': not a decision at all. */
function readDecision(raw: LapiDecision, now: number): (FleetDecision & { id: number }) | null | 'malformed' {
  if (typeof raw !== 'object' || raw === null) return 'malformed';
  const { id, duration, origin, scenario, scope, type, value } = raw;
  if (typeof id !== 'number' || typeof value !== 'string' || typeof scope !== 'string' || typeof type !== 'string') return 'malformed';
  if (type.toLowerCase() !== 'ban') return null;
  const kind = scope.toLowerCase();
  if (kind !== 'ip' && kind !== 'range') return null;
  const ms = typeof duration === 'string' ? parseGoDuration(duration) : null;
  if (ms === null) return 'malformed';
  if (ms <= 0) return null;
  const cidr = canonicalCidr(value, kind);
  if (cidr === null) return 'malformed';
  return {
    id,
    cidr,
    family: cidr.includes(':') ? 6 : 4,
    scenario: typeof scenario === 'string' ? scenario : '',
    origin: typeof origin === 'string' ? origin : '',
    until: now + ms,
  };
}

/**
 * `203.0.113.9` (Ip) -> `203.0.113.9/32`; `198.51.100.0/24` (Range) as it is; IPv4-mapped
 * IPv6 as IPv4. Only canonical text: a range with host bits set, an IPv4 range wider than /8
 * or an IPv6 range wider than /16 is refused (null), not guessed at.
 */
export function canonicalCidr(value: string, scope: 'ip' | 'range'): string | null {
  const text = value.trim();
  if (scope === 'ip' && text.includes('/')) return null;
  if (canonicalRangeProblem(text) !== null) return null;
  const slash = text.indexOf('/');
  const address = slash === -1 ? text : text.slice(0, slash);
  const v6 = address.includes(':');
  const length = slash === -1 ? (v6 ? 128 : 32) : Number(text.slice(slash + 1));
  if (length < (v6 ? 16 : 8)) return null;
  if (v6 && /^::ffff:/i.test(address) && length === 128) {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
    if (mapped !== null) return `${mapped[1]}/32`;
  }
  return networkOf(address, length);
}

const GO_UNITS: Readonly<Record<string, number>> = { ns: 1e-6, us: 1e-3, µs: 1e-3, μs: 1e-3, ms: 1, s: 1e3, m: 60e3, h: 3600e3 };

/** A Go time.Duration string (`1h59m56.056929935s`, `-1.03s`, `3600s`, `0s`) -> ms, or null. */
export function parseGoDuration(text: string): number | null {
  const m = /^([+-]?)((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$/.exec(text);
  if (m === null) return text === '0' ? 0 : null;
  let ms = 0;
  for (const [, amount, unit] of text.matchAll(/(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g)) ms += Number(amount) * GO_UNITS[unit!]!;
  return m[1] === '-' ? -ms : ms;
}

/** A stream state read back from its file, or null when it is not one. */
export function parseStreamState(text: string): StreamState | null {
  try {
    const s = JSON.parse(text) as StreamState;
    if (
      typeof s !== 'object' || s === null || s.version !== STREAM_VERSION || typeof s.url !== 'string' || typeof s.filter !== 'string' ||
      typeof s.startup !== 'number' || typeof s.pulled !== 'number' || !Array.isArray(s.decisions)
    ) {
      return null;
    }
    for (const d of s.decisions) {
      if (
        typeof d !== 'object' || d === null || typeof d.id !== 'number' || typeof d.cidr !== 'string' || typeof d.until !== 'number' ||
        typeof d.scenario !== 'string' || typeof d.origin !== 'string' || (d.family !== 4 && d.family !== 6) ||
        canonicalCidr(d.cidr, 'range') !== d.cidr
      ) {
        return null;
      }
    }
    return s;
  } catch {
    return null;
  }
}
