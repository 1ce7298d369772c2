import { describe, expect, it } from 'vitest';
import { applyOverrides, canonicalCidr, parseOverrides, renderOverrides, type Override } from '../src/decide/overrides.js';
import type { Decision } from '../src/decide/policy.js';

const NOW = new Date('2026-11-23T12:00:00Z');
const decision: Decision = {
  blocks: [
    { cidr: '198.51.100.0/24', family: 4, addresses: ['198.51.100.1', '198.51.100.2', '198.51.100.3'], addressCount: 3, total: 36, reason: 'subnet' },
    { cidr: '2001:db8:1:2::/64', family: 6, addresses: ['2001:db8:1:2::a', '2001:db8:1:2::b'], addressCount: 2, total: 6, reason: 'prefix' },
  ],
  spared: [],
  ignored: [],
  overLimit: [],
};
const totals = new Map([['198.51.100.1', 10], ['198.51.100.2', 12], ['198.51.100.3', 14], ['2001:db8:1:2::a', 4], ['2001:db8:1:2::b', 2]]);
const o = (cidr: string, kind: Override['kind'], until: string | null = null): Override => ({ cidr, kind, until, comment: null, created: '2026-11-23T11:00:00.000Z' });
const context = { now: NOW, neverBlock: [{ cidr: '192.0.2.0/28', source: 'allow' }], totals };

describe('applyOverrides', () => {
  it('an unblocked address splits its /24: the other offenders stay blocked one by one', () => {
    const out = applyOverrides(decision, [o('198.51.100.2/32', 'unblock', '2026-11-24T00:00:00.000Z')], context);
    expect(out.blocks.map((b) => [b.cidr, b.total, b.reason])).toEqual([
      ['198.51.100.1/32', 10, 'host'],
      ['198.51.100.3/32', 14, 'host'],
      ['2001:db8:1:2::/64', 6, 'prefix'],
    ]);
    expect(out.ignored).toEqual([{ address: '198.51.100.2', total: 12, reason: 'unblocked until 2026-11-24T00:00:00.000Z (198.51.100.2/32)' }]);
  });

  it.each([
    ['an unblock that covers the whole block removes it', [o('2001:db8:1::/48', 'unblock')], ['198.51.100.0/24']],
    ['an expired unblock does nothing', [o('198.51.100.0/24', 'unblock', '2026-11-23T11:59:59.000Z')], ['198.51.100.0/24', '2001:db8:1:2::/64']],
    ['a manual block takes in the blocks inside it', [o('198.51.100.0/23', 'block')], ['198.51.100.0/23', '2001:db8:1:2::/64']],
    ['a manual block inside a block adds nothing', [o('198.51.100.2/32', 'block')], ['198.51.100.0/24', '2001:db8:1:2::/64']],
    ['a manual block overlapping a never-block range is left out', [o('192.0.2.0/24', 'block')], ['198.51.100.0/24', '2001:db8:1:2::/64']],
  ])('%s', (_name, overrides, cidrs) => {
    expect(applyOverrides(decision, overrides, context).blocks.map((b) => b.cidr)).toEqual(cidrs);
  });

  it('manual blocks have reason manual; the file round-trips and bad entries are refused', () => {
    const out = applyOverrides(decision, [o('203.0.113.9/32', 'block')], context);
    expect(out.blocks.find((b) => b.cidr === '203.0.113.9/32')).toEqual({ cidr: '203.0.113.9/32', family: 4, addresses: ['203.0.113.9'], addressCount: 1, total: 0, reason: 'manual' });
    const entries = [o('203.0.113.9/32', 'block'), o('198.51.100.2/32', 'unblock', '2026-11-24T00:00:00.000Z')];
    expect(parseOverrides(renderOverrides(entries))).toEqual(entries);
    expect(parseOverrides('{"version":1,"entries":[{"cidr":"203.0.113.9/24","kind":"block","until":null,"comment":null,"created":"x"}]}')).toEqual({ problem: 'entry 1: 203.0.113.9/24 is not a canonical address/prefix' });
    expect(parseOverrides('{"version":1,"entries":[{"cidr":"not an address","kind":"block","until":null,"comment":null,"created":"x"}]}')).toEqual({ problem: 'entry 1: not an address is not a canonical address/prefix' });
    expect(parseOverrides('{"version":1,')).toHaveProperty('problem');
    expect(canonicalCidr('2001:DB8:0:0::1')).toBe('2001:db8::1/128');
    expect(canonicalCidr('198.51.100.7/24')).toEqual({ problem: '198.51.100.7/24 has host bits set: did you mean 198.51.100.0/24?' });
  });
});
