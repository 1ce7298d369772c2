import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { normaliseAddress } from '../src/address.js';
import { LineParser } from '../src/read/parse.js';
import { describeEvent, NOW, scanEvents } from './helpers.js';

interface Case {
  expected: string;
  line: string;
  at: number;
}

/** test/fixtures/events.log: "# => EXPECTED" then the line it is about. */
function readFixture(): Case[] {
  const lines = readFileSync(new URL('./fixtures/events.log', import.meta.url), 'latin1').split('\n');
  const cases: Case[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^# => (.*)$/.exec(lines[i]!);
    if (m === null) continue;
    cases.push({ expected: m[1]!.trim(), line: lines[i + 1]!, at: i + 2 });
  }
  return cases;
}

const cases = readFixture();

/** "kind address time [count=N] ..." -> N times "kind address", as the tally counts it. */
function expectedEvents(expected: string): string[] {
  const count = Number(/ count=(\d+)/.exec(expected)?.[1] ?? 1);
  return new Array<string>(count).fill(expected.split(' ').slice(0, 2).join(' '));
}

describe('parser fixture (test/fixtures/events.log)', () => {
  it('has cases for every shape', () => {
    expect(cases.length).toBeGreaterThan(80);
    expect(cases.filter((c) => c.expected === 'none').length).toBeGreaterThan(25);
  });

  it.each(cases.map((c) => [c.at, c.expected, c] as const))('line %i -> %s', (_at, expected, c) => {
    const parser = new LineParser(NOW);
    expect(describeEvent(parser.parse(c.line))).toBe(expected);
    // the block scanner must find the same line (its byte patterns cover every shape)
    const scanned = scanEvents(c.line + '\n');
    expect(scanned).toEqual(expected === 'none' ? [] : expectedEvents(expected));
  });

  it('finds every event when the whole fixture is scanned as one log', () => {
    const text = readFileSync(new URL('./fixtures/events.log', import.meta.url));
    const expected = cases
      .filter((c) => c.expected !== 'none')
      .flatMap((c) => expectedEvents(c.expected))
      .sort();
    expect(scanEvents(text)).toEqual(expected);
    // and the same with tiny blocks, so lines straddle block boundaries everywhere
    expect(scanEvents(text, 64)).toEqual(expected);
  });
});

describe('year-less timestamps', () => {
  it('take the year of --now, or the year before when that would be in the future', () => {
    const parser = new LineParser(new Date('2027-01-02T00:00:00Z'));
    const line = (stamp: string) =>
      `${stamp} mx postfix/smtpd[1]: warning: unknown[192.0.2.1]: SASL LOGIN authentication failed: x`;
    expect(describeEvent(parser.parse(line('Dec 31 23:59:59')))).toBe('saslFailure 192.0.2.1 2026-12-31T23:59:59.000Z');
    expect(describeEvent(parser.parse(line('Jan  1 00:00:01')))).toBe('saslFailure 192.0.2.1 2027-01-01T00:00:01.000Z');
    expect(describeEvent(parser.parse(line('Jan 02 00:00:00')))).toBe('saslFailure 192.0.2.1 2027-01-02T00:00:00.000Z');
    expect(describeEvent(parser.parse(line('Jan 02 00:00:01')))).toBe('saslFailure 192.0.2.1 2026-01-02T00:00:01.000Z');
  });

  it('accept Feb 29 only in a leap year', () => {
    const line = 'Feb 29 10:00:00 mx postfix/smtpd[1]: warning: unknown[192.0.2.1]: SASL LOGIN authentication failed: x';
    expect(new LineParser(new Date('2028-03-01T00:00:00Z')).parse(line)?.time).toBe(Date.parse('2028-02-29T10:00:00Z'));
    expect(new LineParser(new Date('2026-03-01T00:00:00Z')).parse(line)).toBeNull();
  });

  it('judge each RFC 3339 stamp as Date.parse does, whatever stamp came before (hour 24 has one valid second)', () => {
    const at = (stamp: string) => `${stamp} mx postfix/smtpd[1]: warning: unknown[192.0.2.1]: SASL LOGIN authentication failed: x`;
    const parser = new LineParser(new Date('2026-12-01T00:00:00Z'));
    expect(parser.parse(at('2026-11-22T24:00:00Z'))?.time).toBe(Date.parse('2026-11-23T00:00:00Z'));
    expect(parser.parse(at('2026-11-22T24:00:01Z'))).toBeNull();
    expect(parser.parse(at('2026-11-22T23:59:59Z'))?.time).toBe(Date.parse('2026-11-22T23:59:59Z'));
  });
});

describe('normaliseAddress', () => {
  it.each([
    ['192.0.2.1', '192.0.2.1'],
    ['0.0.0.0', '0.0.0.0'],
    ['255.255.255.255', '255.255.255.255'],
    ['::ffff:192.0.2.1', '192.0.2.1'],
    ['::FFFF:C000:0201', '192.0.2.1'],
    ['2001:DB8::1', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['fe80::1%eth0', 'fe80::1'],
    ['::1', '::1'],
    ['::192.0.2.1', '::c000:201'], // IPv4-compatible, not mapped: not the IPv4 host
    ['64:ff9b::192.0.2.1', '64:ff9b::c000:201'],
    ['0:0:0:0:0:ffff:192.0.2.1', '192.0.2.1'],
  ])('%s -> %s', (raw, expected) => {
    expect(normaliseAddress(raw)).toBe(expected);
  });

  it.each(['unknown', '999.1.2.3', '192.0.2.1.5', '1.2.3', '01.2.3.4', '192.0.2.256', '', ':::', '2001:db8::1::2', '1.2.3.4/24', 'x', '::ffff:1.2.3', '::ffff:999.1.1.1'])(
    '%j is not an address',
    (raw) => {
      expect(normaliseAddress(raw)).toBeNull();
    },
  );
});
