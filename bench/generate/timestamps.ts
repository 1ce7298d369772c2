/** Timestamps: `TIMESTAMP HOST ` in each log format, UTC. */
import { DAY_MS, type LogFormat } from './options.js';

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const p2 = (n: number) => (n < 10 ? `0${n}` : String(n));

/** `Nov  2 09:05:07` (syslog) or `Nov 02 09:05:07` (Postfix maillog_file), UTC. */
export function traditionalStamp(d: Date, zeroPad: boolean): string {
  const day = d.getUTCDate();
  const dd = day < 10 ? (zeroPad ? `0${day}` : ` ${day}`) : String(day);
  return `${MONTHS[d.getUTCMonth()]} ${dd} ${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}:${p2(d.getUTCSeconds())}`;
}

/**
 * `TIMESTAMP HOST ` for a time in microseconds since the epoch, in UTC. Caches the
 * date part per day and the whole prefix per second: consecutive lines share them.
 */
export class StampFormatter {
  private day = NaN;
  private dayText = '';
  private second = NaN;
  private prefix = '';
  private readonly suffix: string;
  constructor(
    private readonly style: LogFormat = 'rfc3339',
    host = 'mx',
  ) {
    this.suffix = style === 'rfc3339' ? `+00:00 ${host} ` : ` ${host} `;
  }

  format(micros: number): string {
    const second = Math.floor(micros / 1_000_000);
    if (second !== this.second) {
      this.second = second;
      const day = Math.floor(second / 86_400);
      if (day !== this.day) {
        this.day = day;
        const d = new Date(day * DAY_MS);
        this.dayText = this.style === 'rfc3339' ? `${d.toISOString().slice(0, 10)}T` : traditionalStamp(d, this.style === 'maillog').slice(0, 7);
      }
      const s = second - day * 86_400;
      const clock = `${TWO_DIGITS[Math.floor(s / 3600)]}:${TWO_DIGITS[Math.floor(s / 60) % 60]}:${TWO_DIGITS[s % 60]}`;
      this.prefix = this.style === 'rfc3339' ? `${this.dayText}${clock}.` : `${this.dayText}${clock}${this.suffix}`;
    }
    if (this.style !== 'rfc3339') return this.prefix;
    const us = micros - second * 1_000_000;
    return `${this.prefix}${SIX_DIGITS_PAD.slice(0, 6 - digits(us))}${us}${this.suffix}`;
  }
}

const TWO_DIGITS = Array.from({ length: 60 }, (_, i) => p2(i));
const SIX_DIGITS_PAD = '000000';
const digits = (n: number): number => (n < 10 ? 1 : n < 100 ? 2 : n < 1000 ? 3 : n < 10_000 ? 4 : n < 100_000 ? 5 : 6);
