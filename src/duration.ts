/** `--window` values: `90s`, `15m`, `24h`, `7d`, `2w`, `1h30m`, or `all`. Pure. */
import { usageError } from './errors.js';

const UNIT_MS: Readonly<Record<string, number>> = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3 };
const DURATION = /^(?:\d+[smhdw])+$/;

/**
 * The word that turns each duration setting off (or makes it endless), one table for every
 * message: `--window all` (and `--for`), `--timeout none`, `forever` for the ban times
 * (`--ban-time`, `--ban-time-max`, `--recidive-window`).
 */
export const OFF_WORDS = { window: 'all', timeout: 'none', ban: 'forever' } as const;

/**
 * A duration (`90s`, `15m`, `24h`, `7d`, `2w`, `1h30m`) -> ms, or Infinity for the setting's
 * off word. Zero, in any unit or none (`0`, `0s`, `0m`), means nothing for any setting: refused
 * alike, with a hint that names this setting's own off word. Throws an Error saying what is wrong.
 */
export function parseDuration(text: string, off: string | null): number {
  const value = text.trim().toLowerCase();
  const or = off === null ? '' : `, or "${off}"`;
  if (off !== null && value === off) return Infinity;
  if (/^0+[smhdw]?$/.test(value)) throw new Error(`a duration of zero means nothing here: use one longer than zero, e.g. 15m, 24h, 7d${or}`);
  if (!DURATION.test(value)) throw new Error(`not a duration: use a number and a unit (s, m, h, d, w), e.g. 15m, 24h, 7d${or}`);
  let ms = 0;
  for (const [, amount, unit] of value.matchAll(/(\d+)([smhdw])/g)) ms += Number(amount) * UNIT_MS[unit!]!;
  if (ms === 0) throw new Error(`a duration of zero means nothing here: use one longer than zero, e.g. 15m, 24h, 7d${or}`);
  return ms;
}

/** `--window` (and `--for`): milliseconds, or Infinity for `all`. */
export const parseWindow = (text: string): number => parseDuration(text, OFF_WORDS.window);

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
