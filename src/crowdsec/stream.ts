/**
 * The decision stream's bookkeeping (pure): what `GET /v1/decisions/stream` answered so far,
 * kept in the state directory between runs. The first pull asks `startup=true` (every
 * active decision); later pulls get only what was added and deleted since the last one.
 * A full pull again when there is no state, when the LAPI address or the filter changed
 * (decisions the old filter skipped were never kept), and once a day (a delta answer lost
 * on the way cannot leave a hole for long).
 */
import { canonicalRangeProblem, networkOf, unmapRange } from '../address.js';
import { controlCharacterProblem } from '../text.js';
import { isTime, MAX_TIME } from '../store/store-file.js';
import type { FleetDecision } from '../decide/fleet.js';

export const STREAM_VERSION = 1;
/** A full pull at least this often. */
export const RESYNC_MS = 24 * 3600e3;

/** Which decisions are taken: a scenario starting with one of `scenarios`, or one of `origins`. */
export interface StreamFilter {
  scenarios: readonly string[];
  origins: readonly string[];
  /** The widest range taken (prefix length, IPv4 and IPv6): a wider one is refused, whoever sends it. Default 24 and 48. */
  widest4?: number;
  widest6?: number;
}

/** Our own widest blocks: a /24, and a /48 (--ipv6-subnet's default). */
export const WIDEST4 = 24;
export const WIDEST6 = 48;

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
  JSON.stringify({
    scenarios: [...filter.scenarios].sort(),
    origins: [...filter.origins].map((o) => o.toLowerCase()).sort(),
    widest: [filter.widest4 ?? WIDEST4, filter.widest6 ?? WIDEST6],
  });

export function needsStartup(state: StreamState | null, url: string, filter: StreamFilter, now: number): boolean {
  return state === null || state.url !== url || state.filter !== filterKey(filter) || !(now - state.startup < RESYNC_MS) || now < state.startup;
}

export function selects(filter: StreamFilter, scenario: string, origin: string): boolean {
  return filter.scenarios.some((prefix) => scenario.startsWith(prefix)) || filter.origins.some((o) => o.toLowerCase() === origin.toLowerCase());
}

/**
 * The state after one answer: a startup answer replaces what was kept, a delta answer
 * removes the deleted ids and adds the new ones. Only `ban` decisions of scope Ip or Range
 * that pass the filter and have time left are kept. Fleet input is data, not orders:
 * `skipped` counts the decisions that do not validate (a field of the wrong type or form, a
 * duration longer than `maxDuration`, the longest ban our own settings give), `refused` names
 * the ranges wider than the filter's widest. Neither is kept.
 */
export function applyStreamAnswer(
  state: StreamState | null,
  answer: StreamAnswer,
  context: { startup: boolean; url: string; filter: StreamFilter; now: number; maxDuration?: number },
): { state: StreamState; skipped: number; refused: string[] } {
  const kept = new Map<number, FleetDecision & { id: number }>();
  if (!context.startup && state !== null) for (const d of state.decisions) kept.set(d.id, d);
  for (const d of Array.isArray(answer.deleted) ? answer.deleted : []) if (Number.isSafeInteger(d?.id)) kept.delete(d.id as number);
  let skipped = 0;
  const refused: string[] = [];
  const widest = { 4: context.filter.widest4 ?? WIDEST4, 6: context.filter.widest6 ?? WIDEST6 };
  for (const raw of Array.isArray(answer.new) ? answer.new : []) {
    const d = readDecision(raw, context.now, context.maxDuration ?? Infinity);
    if (d === 'malformed') skipped++;
    else if (d === null || !selects(context.filter, d.scenario, d.origin)) continue;
    else if (Number(d.cidr.slice(d.cidr.indexOf('/') + 1)) < widest[d.family]) refused.push(`${d.cidr} (${d.scenario || 'no scenario'} from ${d.origin || 'no origin'})`);
    else kept.set(d.id, d);
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
    refused,
  };
}

/** The decisions still running at `now`. */
export function liveDecisions(state: StreamState | null, now: number): Array<FleetDecision & { id: number }> {
  return (state?.decisions ?? []).filter((d) => d.until > now);
}

/** null: a decision smtpguard does not apply (not a ban, another scope, expired); 'malformed': not a decision at all. */
function readDecision(raw: LapiDecision, now: number, maxDuration: number): (FleetDecision & { id: number }) | null | 'malformed' {
  if (typeof raw !== 'object' || raw === null) return 'malformed';
  const { id, duration, origin, scenario, scope, type, value } = raw;
  if (!Number.isSafeInteger(id) || !isField(value, 64) || !isField(scope, 32) || !isField(type, 32)) return 'malformed';
  if ((scenario !== undefined && scenario !== null && !isField(scenario, 256)) || (origin !== undefined && origin !== null && !isField(origin, 256))) return 'malformed';
  if (type.toLowerCase() !== 'ban') return null;
  const kind = scope.toLowerCase();
  if (kind !== 'ip' && kind !== 'range') return null;
  const ms = typeof duration === 'string' && duration.length <= 64 ? parseGoDuration(duration) : null;
  if (ms === null || !Number.isFinite(ms)) return 'malformed';
  if (ms <= 0) return null;
  // longer than any ban we give ourselves, or past what a date can hold: not a decision we take
  if (ms > maxDuration || now + ms > MAX_TIME) return 'malformed';
  const cidr = canonicalCidr(value, kind);
  if (cidr === null) return 'malformed';
  return {
    id: id as number,
    cidr,
    family: cidr.includes(':') ? 6 : 4,
    scenario: typeof scenario === 'string' ? scenario : '',
    origin: typeof origin === 'string' ? origin : '',
    until: now + ms,
  };
}

/** A text field of a pulled decision: a string of at most `max` characters, no control characters (it is shown and kept). */
const isField = (value: unknown, max: number): value is string => typeof value === 'string' && value.length <= max && controlCharacterProblem(value) === null;

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
  const cidr = unmapRange(networkOf(address, length)); // IPv4-mapped: the IPv4 range, checked as such
  // an IPv6 range around the IPv4-mapped space (::ffff:0:0/96) would stand for all of IPv4
  if (cidr.includes(':') && length < 96 && networkOf('::ffff:0:0', length) === cidr) return null;
  return cidr;
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
        typeof d !== 'object' || d === null || !Number.isSafeInteger(d.id) || typeof d.cidr !== 'string' || !isTime(d.until) ||
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
