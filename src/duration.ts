/** `--window` values: `90s`, `15m`, `24h`, `7d`, `2w`, `1h30m`, or `all`. Pure. */
import { usageError } from './errors.js';

const UNIT_MS: Readonly<Record<string, number>> = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3 };
const DURATION = /^(?:\d+[smhdw])+$/;

/** Milliseconds, or Infinity for `all`; throws an Error saying what is wrong. */
export function parseWindow(text: string): number {
  const value = text.trim().toLowerCase();
  if (value === 'all') return Infinity;
  if (!DURATION.test(value)) throw new Error('not a duration: use a number and a unit (s, m, h, d, w), e.g. 15m, 24h, 7d, or "all"');
  let ms = 0;
  for (const [, amount, unit] of value.matchAll(/(\d+)([smhdw])/g)) ms += Number(amount) * UNIT_MS[unit!]!;
  if (ms === 0) throw new Error('use a duration longer than zero, or "all"');
  return ms;
}

/** 24h -> "24h", 7 days -> "7d", 90 s -> "90s": the largest unit that divides it (days from 2 days on). */
export function formatWindow(ms: number): string {
  if (ms === Infinity) return 'all';
  if (ms >= 2 * UNIT_MS.d! && ms % UNIT_MS.d! === 0) return `${ms / UNIT_MS.d!}d`;
  for (const unit of ['h', 'm', 's']) {
    const size = UNIT_MS[unit]!;
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms / 1000}s`;
}

/** `--now`: an ISO 8601 date-time (a date without a zone is local time). */
export function parseNow(text: string): Date {
  const time = /^\d{4}-\d\d-\d\d/.test(text) ? Date.parse(text) : NaN;
  if (Number.isNaN(time)) {
    throw usageError(`--now ${text} is not an ISO 8601 date-time`, 'write it like 2026-11-23T14:00:00Z or 2026-11-23T15:00:00+01:00');
  }
  return new Date(time);
}
