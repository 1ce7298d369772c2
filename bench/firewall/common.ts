/**
 * What the parts of npm run bench:firewall share: where the repository is, the knobs (main.ts
 * describes them), small helpers, and a deterministic stream of addresses to block.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../..', import.meta.url)); // dist-bench/bench/firewall -> repo
export const BIN = path.join(ROOT, 'bin', 'smtpguard.js');
export const RESULTS = path.join(ROOT, 'bench', 'results.md');
export const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 3));
export const list = (name: string, fallback: string) => (process.env[name] ?? fallback).split(',').map((s) => s.trim()).filter((s) => s !== '');
export const SIZES = list('BENCH_SIZES', '0,1000,10000,100000').map(Number);
export const MAP_SIZES = list('BENCH_MAP_SIZES', '1000,10000,100000').map(Number);
export const PART = process.env.BENCH_PART ?? 'all';

/** Set on SIGINT and SIGTERM (main.ts): from then on no command starts but those of the cleanup. */
export let interrupted = false;
export function interrupt(): void {
  interrupted = true;
}

export const sh = (p: string) => `'${p.replace(/'/g, `'\\''`)}'`;
export const seconds = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;
export const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
export const percentile = (xs: readonly number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN;
};
export const fmt = (x: number, digits = 3) => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');
export const log = (text: string) => console.error(`[bench:firewall ${new Date().toISOString().slice(11, 19)}] ${text}`);

/** A deterministic stream of distinct 10.0.0.0/8 hosts (mulberry32). */
export class Addresses {
  private state: number;
  private readonly seen = new Set<string>();
  constructor(seed: number) {
    this.state = seed;
  }
  private next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = Math.imul(this.state ^ (this.state >>> 15), 1 | this.state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** A host not handed out before, as `10.a.b.c/32` (never .0 or .255). */
  take(): string {
    for (;;) {
      const x = this.next();
      const last = x & 255;
      if (last === 0 || last === 255) continue;
      const cidr = `10.${(x >>> 16) & 255}.${(x >>> 8) & 255}.${last}/32`;
      if (this.seen.has(cidr)) continue;
      this.seen.add(cidr);
      return cidr;
    }
  }
  /** `n` random picks of `from` (a partial Fisher-Yates on a copy). */
  pick<T>(from: readonly T[], n: number): T[] {
    const a = [...from];
    for (let i = 0; i < n && i < a.length; i++) {
      const j = i + (this.next() % (a.length - i));
      [a[i], a[j]] = [a[j]!, a[i]!];
    }
    return a.slice(0, n);
  }
}
