import { describe, expect, it } from 'vitest';
import { EVENT_KINDS, type EventKind } from '../src/kinds.js';
import { decideBlocks, type PolicyOptions } from '../src/policy.js';
import type { AddressSummary } from '../src/tally.js';

const OPTIONS: PolicyOptions = {
  threshold: 5,
  threshold6: 3,
  countedKinds: ['saslFailure', 'reject'],
  ipv6Prefix: 64,
  subnetHosts: 5,
  neverBlock: [
    { cidr: '127.0.0.0/8', source: 'loopback' },
    { cidr: '::1/128', source: 'loopback' },
  ],
  maxBlocks: 0,
};

function summary(address: string, events: Partial<Record<EventKind, number>>): AddressSummary {
  const all = Object.fromEntries(EVENT_KINDS.map((k) => [k, events[k] ?? 0])) as Record<EventKind, number>;
  return { address, events: all, total: all.saslFailure + all.reject, firstSeen: 0, lastSeen: 0 };
}

const decide = (summaries: AddressSummary[], options: Partial<PolicyOptions> = {}) => decideBlocks(summaries, { ...OPTIONS, ...options });
const cidrs = (summaries: AddressSummary[], options: Partial<PolicyOptions> = {}) => decide(summaries, options).blocks.map((b) => b.cidr);

describe('threshold', () => {
  it.each([
    [4, []],
    [5, ['192.0.2.1/32']],
    [6, ['192.0.2.1/32']],
  ])('%i counted events against threshold 5 -> %j', (n, expected) => {
    expect(cidrs([summary('192.0.2.1', { saslFailure: n })])).toEqual(expected);
  });

  it('adds up the counted kinds and ignores the others', () => {
    expect(cidrs([summary('192.0.2.1', { saslFailure: 2, reject: 3 })])).toEqual(['192.0.2.1/32']);
    expect(cidrs([summary('192.0.2.1', { saslFailure: 2, pregreet: 10, tempReject: 10 })])).toEqual([]);
    expect(cidrs([summary('192.0.2.1', { pregreet: 5 })], { countedKinds: ['pregreet'] })).toEqual(['192.0.2.1/32']);
  });
});

describe('IPv4 /24 aggregation', () => {
  const hosts = (n: number, events = 5) => Array.from({ length: n }, (_, i) => summary(`198.51.100.${i + 1}`, { saslFailure: events }));

  it('4 offenders in a /24 are blocked one by one', () => {
    expect(cidrs(hosts(4))).toEqual(['198.51.100.1/32', '198.51.100.2/32', '198.51.100.3/32', '198.51.100.4/32']);
  });

  it('5 offenders in a /24 block the /24', () => {
    const [block, ...rest] = decide(hosts(5)).blocks;
    expect(rest).toEqual([]);
    expect(block).toEqual({
      cidr: '198.51.100.0/24',
      family: 4,
      addresses: ['198.51.100.1', '198.51.100.2', '198.51.100.3', '198.51.100.4', '198.51.100.5'],
      total: 25,
      reason: 'subnet',
    });
  });

  it('hosts under the threshold do not make a /24', () => {
    expect(cidrs([...hosts(4), summary('198.51.100.99', { saslFailure: 4 })])).toHaveLength(4);
  });

  it('a /24 holding an allowed address is not aggregated: its offenders are blocked one by one', () => {
    const allow = [...OPTIONS.neverBlock, { cidr: '198.51.100.200', source: 'allow' }];
    expect(cidrs(hosts(6), { neverBlock: allow })).toHaveLength(6);
    expect(cidrs(hosts(6), { neverBlock: allow }).every((c) => c.endsWith('/32'))).toBe(true);
  });

  it('an allowed network inside or around the /24 also stops aggregation', () => {
    expect(cidrs(hosts(6), { neverBlock: [{ cidr: '198.51.100.128/25', source: 'allow' }] })).toHaveLength(6);
    expect(cidrs(hosts(6), { neverBlock: [{ cidr: '198.51.0.0/16', source: 'allow' }] })).toEqual([]);
  });

  it('--subnet-hosts changes the boundary', () => {
    expect(cidrs(hosts(3), { subnetHosts: 3 })).toEqual(['198.51.100.0/24']);
  });
});

describe('IPv6 prefixes', () => {
  it('two addresses of one /64 add up and block the /64', () => {
    const d = decide([summary('2001:db8:1:2::a', { saslFailure: 2 }), summary('2001:db8:1:2::b', { saslFailure: 1 })]);
    expect(d.blocks).toEqual([
      { cidr: '2001:db8:1:2::/64', family: 6, addresses: ['2001:db8:1:2::a', '2001:db8:1:2::b'], total: 3, reason: 'prefix' },
    ]);
  });

  it('addresses of different /64s do not add up', () => {
    expect(cidrs([summary('2001:db8:1:2::a', { saslFailure: 2 }), summary('2001:db8:1:3::a', { saslFailure: 2 })])).toEqual([]);
  });

  it('--ipv6-prefix 48 groups wider; 128 blocks hosts', () => {
    const s = [summary('2001:db8:1:2::a', { saslFailure: 2 }), summary('2001:db8:1:3::a', { saslFailure: 2 })];
    expect(cidrs(s, { ipv6Prefix: 48 })).toEqual(['2001:db8:1::/48']);
    expect(cidrs([summary('2001:db8:1:2::a', { saslFailure: 3 })], { ipv6Prefix: 128 })).toEqual(['2001:db8:1:2::a/128']);
  });

  it('a /64 overlapping an allowed range falls back to hosts over threshold6', () => {
    const allow = [{ cidr: '2001:db8:1:2::1', source: 'allow' }];
    const s = [summary('2001:db8:1:2::a', { saslFailure: 3 }), summary('2001:db8:1:2::b', { saslFailure: 2 })];
    expect(cidrs(s, { neverBlock: allow })).toEqual(['2001:db8:1:2::a/128']);
  });
});

describe('never block', () => {
  it('ignores loopback and allowed addresses, saying why', () => {
    const d = decide(
      [summary('127.0.0.1', { saslFailure: 50 }), summary('::1', { reject: 9 }), summary('203.0.113.7', { reject: 9 })],
      { neverBlock: [...OPTIONS.neverBlock, { cidr: '203.0.113.0/24', source: 'allow' }] },
    );
    expect(d.blocks).toEqual([]);
    expect(d.ignored).toEqual([
      { address: '127.0.0.1', total: 50, reason: 'loopback 127.0.0.0/8' },
      { address: '::1', total: 9, reason: 'loopback ::1/128' },
      { address: '203.0.113.7', total: 9, reason: 'allow 203.0.113.0/24' },
    ]);
  });
});

describe('sparing real users', () => {
  it('does not block a client that also logged in for its SASL failures, and reports it', () => {
    const d = decide([summary('192.0.2.50', { saslFailure: 9, saslSuccess: 1 })]);
    expect(d.blocks).toEqual([]);
    expect(d.spared).toEqual([{ address: '192.0.2.50', saslFailures: 9, reason: 'logged in' }]);
  });

  it('still counts its rejects', () => {
    expect(cidrs([summary('192.0.2.50', { saslFailure: 9, reject: 5, saslSuccess: 1 })])).toEqual(['192.0.2.50/32']);
  });

  it('a /24 where a real user logged in is not blocked whole: its offenders are blocked one by one', () => {
    const attackers = Array.from({ length: 5 }, (_, i) => summary(`203.0.113.${i + 1}`, { saslFailure: 6 }));
    const d = decide([...attackers, summary('203.0.113.77', { saslFailure: 2, saslSuccess: 1 })]);
    expect(d.blocks.map((b) => b.cidr)).toEqual(['203.0.113.1/32', '203.0.113.2/32', '203.0.113.3/32', '203.0.113.4/32', '203.0.113.5/32']);
    expect(d.spared.map((s) => s.address)).toEqual(['203.0.113.77']);
  });

  it('an IPv6 prefix where someone logged in is not blocked whole for the rejects of another address', () => {
    const d = decide([summary('2001:db8:1:2::a', { saslSuccess: 1 }), summary('2001:db8:1:2::b', { reject: 2 }), summary('2001:db8:1:2::c', { reject: 3 })]);
    expect(d.blocks.map((b) => b.cidr)).toEqual(['2001:db8:1:2::c/128']);
  });

  it('a login from one address of a /64 spares the whole /64 (privacy addresses change)', () => {
    const d = decide([summary('2001:db8:1:2::a', { saslSuccess: 1 }), summary('2001:db8:1:2::b', { saslFailure: 9 })]);
    expect(d.blocks).toEqual([]);
    expect(d.spared.map((s) => s.address)).toEqual(['2001:db8:1:2::b']);
  });
});

describe('--max-blocks', () => {
  it('keeps the worst offenders and reports the rest', () => {
    const d = decide(
      [summary('192.0.2.1', { saslFailure: 5 }), summary('192.0.2.2', { saslFailure: 50 }), summary('203.0.113.9', { saslFailure: 7 })],
      { maxBlocks: 2 },
    );
    expect(d.blocks.map((b) => b.cidr)).toEqual(['192.0.2.2/32', '203.0.113.9/32']);
    expect(d.overLimit.map((b) => b.cidr)).toEqual(['192.0.2.1/32']);
  });
});

it('is deterministic: the same input in another order gives the same blocks', () => {
  const s = [
    summary('2001:db8::1', { reject: 3 }),
    ...Array.from({ length: 6 }, (_, i) => summary(`198.51.100.${i + 1}`, { saslFailure: 6 })),
    summary('192.0.2.9', { saslFailure: 5 }),
  ];
  expect(decide([...s].reverse())).toEqual(decide(s));
  expect(cidrs(s)).toEqual(['192.0.2.9/32', '198.51.100.0/24', '2001:db8::/64']);
});
