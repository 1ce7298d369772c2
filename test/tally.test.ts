import { describe, expect, it } from 'vitest';
import type { EventKind } from '../src/kinds.js';
import { ALL_TIME, BUCKET_MS, summarise, Tally } from '../src/tally.js';

const T0 = Date.parse('2026-11-22T12:00:00Z');
const COUNTED: EventKind[] = ['saslFailure', 'reject'];

function tallyOf(events: Array<[EventKind, string, number]>): Tally {
  const tally = new Tally();
  for (const [kind, address, time] of events) tally.add({ kind, address, time });
  return tally;
}

describe('summarise', () => {
  it('counts per address and kind, with first and last seen', () => {
    const tally = tallyOf([
      ['saslFailure', '192.0.2.1', T0 + 5_000],
      ['saslFailure', '192.0.2.1', T0 + 3_600_000],
      ['reject', '192.0.2.1', T0],
      ['saslSuccess', '192.0.2.2', T0],
      ['pregreet', '192.0.2.3', T0],
    ]);
    const [first, ...rest] = summarise(tally, ALL_TIME, COUNTED);
    expect(first).toMatchObject({ address: '192.0.2.1', total: 3, firstSeen: T0, lastSeen: T0 + 3_600_000 });
    expect(first!.events).toMatchObject({ saslFailure: 2, reject: 1, saslSuccess: 0 });
    // addresses with only uncounted kinds are listed too, with total 0
    expect(rest.map((s) => [s.address, s.total])).toEqual([
      ['192.0.2.2', 0],
      ['192.0.2.3', 0],
    ]);
  });

  it('ranks by total, then by address numerically, IPv4 before IPv6', () => {
    const tally = tallyOf([
      ['reject', '192.0.2.10', T0],
      ['reject', '192.0.2.9', T0],
      ['reject', '2001:db8::1', T0],
      ['reject', '10.0.0.1', T0],
      ['saslFailure', '198.51.100.1', T0],
      ['saslFailure', '198.51.100.1', T0],
    ]);
    expect(summarise(tally, ALL_TIME, COUNTED).map((s) => s.address)).toEqual([
      '198.51.100.1',
      '10.0.0.1',
      '192.0.2.9',
      '192.0.2.10',
      '2001:db8::1',
    ]);
  });

  it('counts only the kinds asked for', () => {
    const tally = tallyOf([
      ['pregreet', '192.0.2.1', T0],
      ['saslFailure', '192.0.2.1', T0],
    ]);
    expect(summarise(tally, ALL_TIME, ['pregreet'])[0]!.total).toBe(1);
    expect(summarise(tally, ALL_TIME, ['pregreet', 'saslFailure'])[0]!.total).toBe(2);
  });

  it('cuts the window to the minute: a minute counts when it lies in the window', () => {
    const tally = tallyOf([
      ['saslFailure', '192.0.2.1', T0 - BUCKET_MS - 1], // the minute before the window
      ['saslFailure', '192.0.2.1', T0 - BUCKET_MS], // first minute of the window
      ['saslFailure', '192.0.2.1', T0 + 59_999], // the minute of `now`
      ['saslFailure', '192.0.2.1', T0 + BUCKET_MS], // after now
    ]);
    const window = { from: T0 - BUCKET_MS, to: T0 };
    const [s] = summarise(tally, window, COUNTED);
    expect(s).toMatchObject({ total: 2, firstSeen: T0 - BUCKET_MS, lastSeen: T0 + 59_999 });
    expect(summarise(tally, { from: T0 + 2 * BUCKET_MS, to: T0 + 3 * BUCKET_MS }, COUNTED)).toEqual([]);
    expect(summarise(tally, ALL_TIME, COUNTED)[0]!.total).toBe(4);
  });
});

describe('merging tallies', () => {
  it('addAll adds counts (files of one rotated log)', () => {
    const a = tallyOf([['saslFailure', '192.0.2.1', T0]]);
    a.addAll(tallyOf([['saslFailure', '192.0.2.1', T0 + 1000], ['reject', '192.0.2.2', T0]]));
    expect(summarise(a, ALL_TIME, COUNTED).map((s) => [s.address, s.total])).toEqual([
      ['192.0.2.1', 2],
      ['192.0.2.2', 1],
    ]);
  });

  it('maxAll counts copies once and keeps kinds only one side has (mail.log + mail.warn)', () => {
    const mailLog = tallyOf([
      ['saslFailure', '192.0.2.1', T0],
      ['saslFailure', '192.0.2.1', T0],
      ['reject', '192.0.2.1', T0],
    ]);
    const mailWarn = tallyOf([
      ['saslFailure', '192.0.2.1', T0],
      ['saslFailure', '192.0.2.1', T0],
      ['saslFailure', '192.0.2.3', T0 + 10 * BUCKET_MS], // only in mail.warn (mail.log rotated away)
    ]);
    mailLog.maxAll(mailWarn);
    const byAddress = Object.fromEntries(summarise(mailLog, ALL_TIME, COUNTED).map((s) => [s.address, s.events]));
    expect(byAddress['192.0.2.1']).toMatchObject({ saslFailure: 2, reject: 1 });
    expect(byAddress['192.0.2.3']).toMatchObject({ saslFailure: 1 });
  });
});
