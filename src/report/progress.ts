/**
 * Progress on stderr when it is a terminal: after a second of work, one line redrawn at most four
 * times a second (`reading the logs: 312 of 786 MB (40%), 180 MB/s, 3 s left`), cleared before
 * anything else is written. Never with --quiet, TERM=dumb, or when stderr is not a terminal (cron).
 */
import type { ProgressHook, ProgressReading } from '../progress.js';

const AFTER_MS = 1000;
const EVERY_MS = 250;

interface Terminal {
  isTTY?: boolean;
  columns?: number;
  write(text: string): boolean;
}

export class TerminalProgress implements ProgressHook {
  private source: (() => ProgressReading) | null = null;
  private since = 0;
  private lastDraw = 0;
  private drawn = false;
  private readonly timer: NodeJS.Timeout;

  private constructor(
    private readonly out: Terminal,
    private readonly now: () => number,
  ) {
    this.timer = setInterval(() => this.tick(), EVERY_MS);
    this.timer.unref();
  }

  /** A progress line on `out`, or null where there must be none. */
  static for(out: Terminal, env: Readonly<Record<string, string | undefined>>, quiet: boolean, now: () => number = () => performance.now()): TerminalProgress | null {
    if (quiet || out.isTTY !== true || env.TERM === 'dumb') return null;
    return new TerminalProgress(out, now);
  }

  watch(source: (() => ProgressReading) | null): void {
    if (source === null) this.clear();
    else if (this.source === null) this.since = this.now();
    this.source = source;
  }

  tick(): void {
    if (this.source === null) return;
    const now = this.now();
    if (now - this.since < AFTER_MS || now - this.lastDraw < EVERY_MS) return;
    this.lastDraw = now;
    const line = renderProgress(this.source(), (now - this.since) / 1000);
    const width = Math.max(20, (this.out.columns ?? 80) - 1);
    this.out.write(`\r${line.length > width ? line.slice(0, width) : line}\x1b[K`);
    this.drawn = true;
  }

  /** Erases the line (before a warning, the result, or the end). */
  clear(): void {
    if (!this.drawn) return;
    this.out.write('\r\x1b[K');
    this.drawn = false;
  }

  stop(): void {
    clearInterval(this.timer);
    this.source = null;
    this.clear();
  }
}

/** One line of progress, `seconds` into the work. Pure. */
export function renderProgress(r: ProgressReading, seconds: number): string {
  const rate = seconds > 0 ? r.done / seconds : 0;
  if (r.unit === 'steps') return `smtpguard: ${r.label}: ${r.step ?? ''} (${Math.min(r.done + 1, r.total ?? r.done + 1)} of ${r.total ?? '?'})`;
  if (r.unit === 'entries') return `smtpguard: ${r.label}: ${r.done.toLocaleString('en-US')} entries, ${Math.round(rate).toLocaleString('en-US')}/s`;
  const mb = (n: number) => (n / 1e6 >= 100 ? (n / 1e6).toFixed(0) : (n / 1e6).toFixed(1));
  if (r.total === null || r.total <= 0) return `smtpguard: ${r.label}: ${mb(r.done)} MB, ${mb(rate)} MB/s`;
  const share = Math.min(100, Math.floor((100 * r.done) / r.total));
  const left = rate > 0 ? Math.max(0, Math.ceil((r.total - r.done) / rate)) : null;
  return `smtpguard: ${r.label}: ${mb(r.done)} of ${mb(r.total)} MB (${share}%), ${mb(rate)} MB/s${left === null ? '' : `, ${left} s left`}`;
}
