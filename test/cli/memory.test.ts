/**
 * Memory on a flood, as cron meets it: the built binary over 200,000 distinct addresses with one
 * reject each (and a real attacker among them), first run and next run, peak RSS read by
 * /usr/bin/time -v. A regression past the budget fails here; README "Memory" has the numbers at 1M.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, rejectLine, saslLines } from '../helpers.js';

/** Peak RSS of a scan of 200,000 flooding addresses, first run and next: 111-112 and 92-93 MiB on 2026-12-07 (235-255 before the codec wrote addresses as bytes). */
const BUDGET_MIB = 160;
const ADDRESSES = 200_000;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'smtpguard-memory-'));
  const lines: string[] = [];
  for (let i = 0; i < ADDRESSES; i++) {
    const a = `${11 + (i >>> 16)}.${(i >>> 8) & 255}.${i & 255}.${1 + (i % 200)}`;
    lines.push(rejectLine(a, Math.floor((i / ADDRESSES) * 59)).trimEnd());
    if (i % 6000 === 0) lines.push(saslLines('203.0.113.9', 1).trimEnd()); // the attacker, spread through the flood
  }
  writeFileSync(path.join(dir, 'mail.log'), `${lines.join('\n')}\n`);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A scan of `logDir`/mail.log over the window the flood's lines fall in, its peak RSS and its output. */
function scan(logDir: string, state: string, ...extra: string[]): { peakMiB: number; out: string } {
  const args = [BIN, 'scan', '--json', '--log', path.join(logDir, 'mail.log'), '--window', 'all', '--now', '2026-11-22T12:00:00Z', '--state-dir', path.join(logDir, state), ...extra];
  // the script itself, as cron and the unit run it: its #! line sets node's young generation, its
  // first lines the old generation's growth
  const r = spawnSync('/usr/bin/time', ['-v', ...args], { encoding: 'utf8', maxBuffer: 1 << 30 });
  expect(r.status).toBe(0);
  const peak = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr);
  expect(peak).not.toBeNull();
  return { peakMiB: Number(peak![1]) / 1024, out: r.stdout };
}

describe('memory on a flood of 200,000 addresses', () => {
  it(`first run and next run stay under ${BUDGET_MIB} MiB, the attacker exact and blocked, the state small`, () => {
    for (const run of ['first', 'next']) {
      const { peakMiB, out } = scan(dir, 'state');
      expect({ run, peakMiB: Math.round(peakMiB), overBudget: peakMiB > BUDGET_MIB }).toMatchObject({ run, overBudget: false });
      const json = JSON.parse(out) as { addresses: Array<{ address: string; total: number }>; blocks: Array<{ cidr: string }> };
      expect(json.addresses.find((a) => a.address === '203.0.113.9')?.total).toBe(Math.ceil(ADDRESSES / 6000));
      expect(json.blocks.map((b) => b.cidr)).toContain('203.0.113.9/32');
    }
    const state = readdirSync(path.join(dir, 'state')).reduce((sum, f) => sum + statSync(path.join(dir, 'state', f)).size, 0);
    expect(state).toBeLessThan(16e6); // 64 MB at 1M addresses
  });

  it('with --max-tracked 2000 the tally holds 20,000 addresses at most: the rest are folded, the attacker still exact, the state a tenth', () => {
    for (const run of ['first', 'next']) {
      const { peakMiB, out } = scan(dir, 'capped', '--max-tracked', '2000');
      expect({ run, peakMiB: Math.round(peakMiB), overBudget: peakMiB > BUDGET_MIB }).toMatchObject({ run, overBudget: false });
      const json = JSON.parse(out) as { addresses: Array<{ address: string; total: number }>; blocks: Array<{ cidr: string }> };
      expect(json.addresses.find((a) => a.address === '203.0.113.9')?.total).toBe(Math.ceil(ADDRESSES / 6000));
      expect(json.blocks.map((b) => b.cidr)).toEqual(['203.0.113.9/32']);
    }
    // 20,000 addresses at 5 bytes and a minute each, and one IPv4 row: measured 0.3 MB (2.8 MB uncapped)
    const state = readdirSync(path.join(dir, 'capped')).reduce((sum, f) => sum + statSync(path.join(dir, 'capped', f)).size, 0);
    expect(state).toBeLessThan(1e6);
  });
});

describe('memory on a flood of offenders, as many as the tally holds one by one', () => {
  // every address of this flood is over its threshold, so none is summarised away: the run lists,
  // decides on and prints each (bench/results.md: 199,000 of them at the default --max-tracked
  // peak at ~340 MiB). Here --max-tracked 5000 (a tally of 50,000), 49,000 IPv6 /64s with 6 rejects
  // each, one per /48 (so each is a block of its own), and a real attacker: 164-166 MiB on 2026-12-07,
  // 199-207 before the old generation's growth was held to 30% (bin/smtpguard.js)
  const OFFENDERS = 49_000;
  const OFFENDER_BUDGET_MIB = 190;
  let offenders: string;
  beforeAll(() => {
    offenders = mkdtempSync(path.join(tmpdir(), 'smtpguard-offenders-'));
    const lines: string[] = [saslLines('203.0.113.9', 40)];
    for (let i = 0; i < OFFENDERS; i++) lines.push(rejectLine(`2001:db8:${(0x1000 + i).toString(16)}:1::1`, Math.floor((i / OFFENDERS) * 59)).repeat(6));
    writeFileSync(path.join(offenders, 'mail.log'), lines.join(''));
  });
  afterAll(() => rmSync(offenders, { recursive: true, force: true }));

  it(`first run and next run stay under ${OFFENDER_BUDGET_MIB} MiB, every offender listed, the attacker blocked, --max-blocks holding the rest out`, () => {
    for (const run of ['first', 'next']) {
      const { peakMiB, out } = scan(offenders, 'state', '--max-tracked', '5000');
      expect({ run, peakMiB: Math.round(peakMiB), overBudget: peakMiB > OFFENDER_BUDGET_MIB }).toMatchObject({ run, overBudget: false });
      const json = JSON.parse(out) as { addresses: Array<{ address: string; total: number }>; blocks: Array<{ cidr: string }>; summarised: { addresses: number } };
      expect(json.addresses).toHaveLength(OFFENDERS + 1);
      expect(json.addresses.filter((a) => a.total === 6)).toHaveLength(OFFENDERS);
      expect(json.summarised.addresses).toBe(0);
      expect(json.blocks).toHaveLength(10_000); // --max-blocks
      expect(json.blocks.map((b) => b.cidr)).toContain('203.0.113.9/32');
    }
  });
});

describe('under a limit on address space (ulimit -v)', () => {
  // the tally's pool sets 1 GiB of address space aside to grow in place; under `ulimit -v` that
  // can fail, and the pool grows by copying instead. 1.8 GB: node and this scan run in it (they did
  // at 1.6), a second GiB set aside does not fit (without the fallback this scan failed at 2.0 GB
  // and below, and ran at 2.2)
  it('scans the flood as without the limit, when a pool cannot set its space aside', () => {
    const args = [BIN, 'scan', '--json', '--log', path.join(dir, 'mail.log'), '--window', 'all', '--now', '2026-11-22T12:00:00Z', '--no-state'];
    const free = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 30 });
    const limited = spawnSync('sh', ['-c', 'ulimit -v 1800000 && exec "$@"', 'sh', process.execPath, ...args], { encoding: 'utf8', maxBuffer: 1 << 30 });
    expect([limited.status, limited.stderr]).toEqual([0, '']);
    expect(free.status).toBe(0);
    expect(limited.stdout).toBe(free.stdout);
  });
});
