/** The follower's schedule (pure): coalescing, the reload interval, timers, with the clock as plain numbers. */
import { describe, expect, it } from 'vitest';
import { ApplySchedule, nextChange, RETRY_MAX_MS } from '../src/cli/follow/schedule.js';
import type { Block, Decision } from '../src/decide/policy.js';
import type { Override } from '../src/decide/overrides.js';

const SET = { reloadInterval: 10_000, firewallReloads: false, pullInterval: null };
const done = (over: Partial<{ reloaded: boolean; mapHeld: boolean; due: number; pulled: boolean }> = {}) => ({ reloaded: false, mapHeld: false, due: Infinity, pulled: false, ...over });

describe('ApplySchedule', () => {
  it('applies at once at start; then not before something arrives', () => {
    const s = new ApplySchedule(SET);
    expect(s.nextAt()).toBe(-Infinity);
    s.applied(1000, done());
    expect(s.nextAt()).toBe(Infinity);
    s.trigger();
    s.trigger(); // what arrives meanwhile is carried by one apply
    expect(s.nextAt()).toBe(-Infinity);
    s.applied(1200, done());
    expect(s.nextAt()).toBe(Infinity);
  });

  it('what arrives while an apply runs makes the next one due at once (it is not lost)', () => {
    const s = new ApplySchedule(SET);
    s.applied(0, done());
    s.trigger();
    const mark = s.mark; // an apply starts
    s.trigger(); // a line arrives while it runs
    s.applied(100, done(), mark);
    expect(s.nextAt()).toBe(-Infinity);
    const quiet = s.mark;
    s.applied(200, done(), quiet);
    expect(s.nextAt()).toBe(Infinity);
  });

  it('a set backend applies new events at once and holds the map until the reload interval has passed', () => {
    const s = new ApplySchedule(SET);
    s.applied(0, done({ reloaded: true }));
    s.trigger();
    expect(s.nextAt()).toBe(-Infinity);
    expect(s.holdMap(500)).toBe(true);
    s.applied(500, done({ mapHeld: true }));
    // the held map is owed: due when a reload is allowed again
    expect(s.nextAt()).toBe(10_000);
    expect(s.holdMap(10_000)).toBe(false);
    s.applied(10_000, done({ reloaded: true }));
    expect(s.nextAt()).toBe(Infinity);
  });

  it('with the rules backend (a change reloads ufw) new events wait for the reload interval', () => {
    const s = new ApplySchedule({ ...SET, firewallReloads: true });
    s.applied(0, done({ reloaded: true }));
    s.trigger();
    expect(s.nextAt()).toBe(10_000);
    // an apply that reloaded nothing does not push the next one back
    s.applied(10_000, done());
    s.trigger();
    expect(s.nextAt()).toBe(10_000);
  });

  it('wakes when the decision changes by itself, and on the pull interval', () => {
    const s = new ApplySchedule({ ...SET, pullInterval: 10_000 });
    expect(s.pullDue(0)).toBe(true);
    s.applied(0, done({ due: 45_000, pulled: true }));
    expect(s.pullDue(5_000)).toBe(false);
    expect(s.nextAt()).toBe(10_000);
    s.applied(10_000, done({ due: 45_000, pulled: true }));
    expect(s.nextAt()).toBe(20_000);
    const noPull = new ApplySchedule(SET);
    noPull.applied(0, done({ due: 45_000 }));
    expect(noPull.nextAt()).toBe(45_000);
    expect(noPull.pullDue(1e9)).toBe(false);
  });

  it('a failed apply is tried again after the reload interval, then twice as long each time (at most 5 min); new events wait for the retry', () => {
    const s = new ApplySchedule(SET);
    s.applied(3_000, null);
    expect(s.nextAt()).toBe(13_000);
    s.trigger();
    expect(s.nextAt()).toBe(13_000);
    s.applied(13_000, null);
    expect(s.nextAt()).toBe(33_000);
    s.applied(33_000, null);
    expect(s.nextAt()).toBe(73_000);
    for (let t = 73_000; t < 2e6; t += 10_000) s.applied(t, null);
    expect(s.nextAt() - 1_993_000).toBe(RETRY_MAX_MS);
    // it works again: back to at once
    s.applied(2e6, done());
    s.trigger();
    expect(s.nextAt()).toBe(-Infinity);
  });
});

describe('nextChange', () => {
  const block = (cidr: string, extra: Partial<Block> = {}): Block => ({ cidr, family: 4, addresses: [cidr.split('/')[0]!], addressCount: 1, total: 10, reason: 'host', ...extra }) as Block;
  const decision = (blocks: Block[]): Decision => ({ blocks, overLimit: [] }) as unknown as Decision;
  const now = Date.parse('2026-12-06T12:00:00Z');

  it('is the first end of a ban, a fleet decision or an override still to come', () => {
    const d = decision([
      block('192.0.2.1/32', { until: '2026-12-06T13:00:00Z' }),
      block('192.0.2.2/32', { until: '2026-12-06T11:00:00Z' }), // past: not a wake-up
      block('192.0.2.3/32', { until: null }),
      block('192.0.2.4/32', { reason: 'fleet', fleet: { scenario: 's', origin: 'o', until: '2026-12-06T12:30:00Z' } } as Partial<Block>),
    ]);
    expect(nextChange(d, [], now)).toBe(Date.parse('2026-12-06T12:30:00Z'));
    const unblockFor = { kind: 'unblock', cidr: '192.0.2.9/32', until: '2026-12-06T12:05:00Z', created: '2026-12-06T11:00:00Z' } as unknown as Override;
    expect(nextChange(d, [unblockFor], now)).toBe(Date.parse('2026-12-06T12:05:00Z'));
  });

  it('a block with no end of its own (it stands on the window alone) is looked at again in a minute; with nothing to end, never', () => {
    expect(nextChange(decision([block('192.0.2.1/32')]), [], now)).toBe(now + 60_000);
    expect(nextChange(decision([block('192.0.2.1/32', { reason: 'manual' })]), [], now)).toBe(Infinity);
    expect(nextChange(decision([]), [], now)).toBe(Infinity);
  });
});
