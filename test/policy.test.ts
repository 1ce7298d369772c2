import { describe, expect, it } from 'vitest';
import { EVENT_KINDS, type EventKind } from '../src/read/kinds.js';
import { readdirSync, readFileSync } from 'node:fs';
import { decideBlocks, MAX_BLOCK_ADDRESSES, type PolicyOptions } from '../src/decide/policy.js';
import type { AddressSummary } from '../src/count/summary.js';

const OPTIONS: PolicyOptions = {
  threshold: 5,
  threshold6: 3,
  countedKinds: ['saslFailure', 'reject'],
  ipv6Prefix: 64,
  ipv6Subnet: 48,
  ipv6SubnetPrefixes: 5,
  subnetHosts: 5,
  neverBlock: [
    { cidr: '127.0.0.0/8', source: 'loopback' },
    { cidr: '::1/128', source: 'loopback' },
  ],
  maxBlocks: 0,
};

interface Extra {
  /** recipientReject events logged as unknown[ADDR] (default: none). */
  unnamed?: number;
  /** messageReject events logged as unknown[ADDR] (default: none). */
  unnamedMessage?: number;
  /** username -> [failures naming it, logins as it] */
  users?: Record<string, [number, number]>;
  otherUsers?: number;
  /** Past --max-tracked: the range this summary adds up. */
  summarised?: { cidr: string; addresses: number };
}

function summary(address: string, events: Partial<Record<EventKind, number>>, extra: Extra = {}): AddressSummary {
  const all = Object.fromEntries(EVENT_KINDS.map((k) => [k, events[k] ?? 0])) as Record<EventKind, number>;
  const s: AddressSummary = { address, events: all, total: all.saslFailure + all.reject, firstSeen: 0, lastSeen: 0, unnamedRecipientRejects: extra.unnamed ?? 0, unnamedMessageRejects: extra.unnamedMessage ?? 0 };
  if (extra.users !== undefined) s.users = new Map(Object.entries(extra.users).map(([u, [failures, logins]]) => [u, { failures, logins }]));
  if (extra.otherUsers !== undefined) s.otherUserFailures = extra.otherUsers;
  if (extra.summarised !== undefined) s.summarised = extra.summarised;
  return s;
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
      addressCount: 5,
      reason: 'subnet',
      lastSeen: 0,
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
      { cidr: '2001:db8:1:2::/64', family: 6, addresses: ['2001:db8:1:2::a', '2001:db8:1:2::b'], addressCount: 2, total: 3, reason: 'prefix', lastSeen: 0 },
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
    expect(d.spared).toEqual([{ address: '192.0.2.50', kind: 'saslFailure', saslFailures: 9, users: [], loggedInAs: [], reason: 'logged in' }]);
  });

  it('still counts its rejects', () => {
    expect(cidrs([summary('192.0.2.50', { saslFailure: 9, reject: 5, saslSuccess: 1 })])).toEqual(['192.0.2.50/32']);
  });

  it('a /24 where a real user logged in is blocked whole, with the user as an exception (one login cannot multiply the blocks)', () => {
    const attackers = Array.from({ length: 5 }, (_, i) => summary(`203.0.113.${i + 1}`, { saslFailure: 6 }));
    const d = decide([...attackers, summary('203.0.113.77', { saslFailure: 2, saslSuccess: 1 })]);
    expect(d.blocks).toMatchObject([{ cidr: '203.0.113.0/24', reason: 'subnet', exceptions: ['203.0.113.77/32'] }]);
    expect(d.spared.map((s) => s.address)).toEqual(['203.0.113.77']);
  });

  it('an IPv6 prefix where someone logged in is blocked whole, the login as an exception', () => {
    const d = decide([summary('2001:db8:1:2::a', { saslSuccess: 1 }), summary('2001:db8:1:2::b', { reject: 2 }), summary('2001:db8:1:2::c', { reject: 3 })]);
    expect(d.blocks).toMatchObject([{ cidr: '2001:db8:1:2::/64', reason: 'prefix', exceptions: ['2001:db8:1:2::a/128'] }]);
  });

  it('a login from one address of a /64 spares the whole /64 (privacy addresses change)', () => {
    const d = decide([summary('2001:db8:1:2::a', { saslSuccess: 1 }), summary('2001:db8:1:2::b', { saslFailure: 9 })]);
    expect(d.blocks).toEqual([]);
    expect(d.spared.map((s) => s.address)).toEqual(['2001:db8:1:2::b']);
  });
});

describe('recipient rejects (a provider relaying typos vs a dictionary attack)', () => {
  const RECIPIENT: Partial<PolicyOptions> = { countedKinds: ['saslFailure', 'reject', 'recipientReject'] };

  it("a provider's named outbound hosts are never blocked for recipient rejects, nor is their /24", () => {
    const provider = Array.from({ length: 5 }, (_, i) => summary(`198.51.100.${i + 10}`, { recipientReject: 10 }));
    const d = decide(provider, RECIPIENT);
    expect(d.blocks).toEqual([]);
    expect(d.spared).toHaveLength(5);
    expect(d.spared[0]).toEqual({ address: '198.51.100.10', kind: 'recipientReject', recipientRejects: 10, reason: 'named client' });
  });

  it('an unknown client is blocked for a dictionary attack (50 random recipients, nothing accepted)', () => {
    expect(cidrs([summary('203.0.113.50', { recipientReject: 50 }, { unnamed: 50 })], RECIPIENT)).toEqual(['203.0.113.50/32']);
  });

  it('an address that had mail accepted is spared its recipient rejects, and this is shown', () => {
    const d = decide([summary('203.0.113.51', { recipientReject: 20, accepted: 1 }, { unnamed: 20 })], RECIPIENT);
    expect(d.blocks).toEqual([]);
    expect(d.spared).toEqual([{ address: '203.0.113.51', kind: 'recipientReject', recipientRejects: 20, reason: 'mail accepted' }]);
  });

  it('recipient-level evidence alone never makes a /24: five unknown spambots are blocked one by one', () => {
    const bots = Array.from({ length: 5 }, (_, i) => summary(`203.0.113.${i + 1}`, { recipientReject: 10 }, { unnamed: 10 }));
    expect(cidrs(bots, RECIPIENT)).toEqual(['203.0.113.1/32', '203.0.113.2/32', '203.0.113.3/32', '203.0.113.4/32', '203.0.113.5/32']);
    // with client-level evidence the same five make the /24
    const relayers = Array.from({ length: 5 }, (_, i) => summary(`203.0.113.${i + 1}`, { reject: 10 }));
    expect(cidrs(relayers, RECIPIENT)).toEqual(['203.0.113.0/24']);
  });

  it('recipient rejects are not counted when --kinds leaves recipientReject out', () => {
    expect(cidrs([summary('203.0.113.50', { recipientReject: 50 }, { unnamed: 50 })], { countedKinds: ['saslFailure', 'reject'] })).toEqual([]);
  });

  it('accepted mail is no sign of a real user: a /24 of spam bots that also got mail through is still blocked whole', () => {
    const attackers = Array.from({ length: 5 }, (_, i) => summary(`203.0.113.${i + 1}`, { reject: 10 }));
    expect(cidrs([...attackers, summary('203.0.113.99', { accepted: 3 })], RECIPIENT)).toEqual(['203.0.113.0/24']);
  });
});

describe('login sparing by username', () => {
  it('a login as alice spares failures as alice and failures that name no user, not those as bob', () => {
    // 3 as alice, 12 as bob, 2 naming nobody
    const s = summary('203.0.113.66', { saslFailure: 17, saslSuccess: 1 }, { users: { alice: [3, 1], bob: [12, 0] } });
    const d = decide([s]);
    expect(d.blocks.map((b) => b.cidr)).toEqual(['203.0.113.66/32']);
    expect(d.blocks[0]!.total).toBe(12);
    expect(d.spared).toEqual([{ address: '203.0.113.66', kind: 'saslFailure', saslFailures: 5, users: ['alice'], loggedInAs: ['alice'], reason: 'logged in' }]);
  });

  it('failures as the user it logged in as are all spared', () => {
    const d = decide([summary('203.0.113.66', { saslFailure: 3, saslSuccess: 1 }, { users: { alice: [3, 1] } })]);
    expect(d.blocks).toEqual([]);
    expect(d.spared[0]).toMatchObject({ saslFailures: 3, users: ['alice'], loggedInAs: ['alice'] });
  });

  it('failures past the username cap always count', () => {
    const d = decide([summary('203.0.113.67', { saslFailure: 9, saslSuccess: 1 }, { users: { alice: [1, 1] }, otherUsers: 8 })]);
    expect(d.blocks[0]).toMatchObject({ cidr: '203.0.113.67/32', total: 8 });
  });

  it('the same rule for an IPv6 prefix: a login as alice in the /64 does not spare failures as bob from another address', () => {
    const d = decide([
      summary('2001:db8:1:2::a', { saslSuccess: 1 }, { users: { alice: [0, 1] } }),
      summary('2001:db8:1:2::b', { saslFailure: 9 }, { users: { bob: [9, 0] } }),
      summary('2001:db8:1:2::c', { saslFailure: 4 }, { users: { alice: [4, 0] } }),
    ]);
    // the /64 is blocked for bob's guesses; alice's login and her spared address stay open
    expect(d.blocks).toMatchObject([{ cidr: '2001:db8:1:2::/64', exceptions: ['2001:db8:1:2::a/128', '2001:db8:1:2::c/128'] }]);
    expect(d.spared.map((s) => s.address)).toEqual(['2001:db8:1:2::c']);
  });
});

describe('IPv6 above /64', () => {
  const prefixes = (n: number, events: number, kind: EventKind = 'reject') =>
    Array.from({ length: n }, (_, i) => summary(`2001:db8:77:${(i + 1).toString(16)}::1`, { [kind]: events }));

  it('4 offending /64s of one /48 are blocked as /64s; the 5th makes it the /48', () => {
    expect(cidrs(prefixes(4, 3))).toEqual(['2001:db8:77:1::/64', '2001:db8:77:2::/64', '2001:db8:77:3::/64', '2001:db8:77:4::/64']);
    const [only, ...rest] = decide(prefixes(5, 3)).blocks;
    expect(rest).toEqual([]);
    expect(only).toMatchObject({ cidr: '2001:db8:77::/48', reason: 'subnet6', addressCount: 5, total: 15 });
  });

  it('a /48 whose prefixes add up to threshold6 x ipv6-subnet-prefixes is an offender though no /64 reaches threshold6', () => {
    expect(cidrs(prefixes(7, 2))).toEqual([]); // 14 < 3 x 5
    expect(cidrs(prefixes(8, 2))).toEqual(['2001:db8:77::/48']); // 16 >= 15
  });

  it('never over an allowed range; over a prefix where someone logged in, with that prefix as an exception', () => {
    expect(cidrs(prefixes(5, 3), { neverBlock: [{ cidr: '2001:db8:77:ff::/64', source: 'allow' }] })).toHaveLength(5);
    const withLogin = [...prefixes(5, 3), summary('2001:db8:77:ff::9', { saslSuccess: 1 })];
    expect(decide(withLogin).blocks).toMatchObject([{ cidr: '2001:db8:77::/48', exceptions: ['2001:db8:77:ff::/64'] }]);
    // a login in an offending prefix: that address alone is the exception (the prefix is blocked)
    const inside = [...prefixes(5, 3), summary('2001:db8:77:1::9', { saslSuccess: 1 })];
    expect(decide(inside).blocks).toMatchObject([{ cidr: '2001:db8:77::/48', exceptions: ['2001:db8:77:1::9/128'] }]);
  });

  it('recipient rejects alone do not make a /48', () => {
    const options: Partial<PolicyOptions> = { countedKinds: ['saslFailure', 'reject', 'recipientReject'] };
    const bots = Array.from({ length: 5 }, (_, i) => summary(`2001:db8:77:${i + 1}::1`, { recipientReject: 3 }, { unnamed: 3 }));
    expect(cidrs(bots, options)).toHaveLength(5);
  });

  it('--ipv6-subnet-prefixes 0 turns it off; --ipv6-subnet sets the length', () => {
    expect(cidrs(prefixes(8, 3), { ipv6SubnetPrefixes: 0 })).toHaveLength(8);
    expect(cidrs(prefixes(5, 3), { ipv6Subnet: 56 })).toEqual(['2001:db8:77::/56']);
  });
});

describe('no size kills a decision', () => {
  it('150,000 addresses in one /64: one block naming the worst MAX_BLOCK_ADDRESSES', () => {
    const flood = Array.from({ length: 150_000 }, (_, i) => summary(`2001:db8:68:1:1:1:${(Math.floor(i / 0xfff0) + 1).toString(16)}:${((i % 0xfff0) + 1).toString(16)}`, { reject: i === 7 ? 9 : 1 }));
    const d = decide([...flood, summary('203.0.113.9', { saslFailure: 20 })]);
    expect(d.blocks.map((b) => b.cidr)).toEqual(['203.0.113.9/32', '2001:db8:68:1::/64']);
    expect(d.blocks[1]).toMatchObject({ addressCount: 150_000, total: 150_008 });
    expect(d.blocks[1]!.addresses).toHaveLength(MAX_BLOCK_ADDRESSES);
    expect(d.blocks[1]!.addresses).toContain('2001:db8:68:1:1:1:1:8');
  });

  it('the source spreads no input-sized array into a call', () => {
    const dir = new URL('../src/', import.meta.url);
    const offenders: string[] = [];
    for (const file of readdirSync(dir, { recursive: true }) as string[]) {
      if (!file.endsWith('.ts')) continue;
      readFileSync(new URL(file, dir), 'utf8').split('\n').forEach((line, i) => {
        if (/(?:\.push|Math\.(?:min|max)|\.apply|\.unshift|\.splice)\((?:[^()[\]{}]*,\s*)?\.\.\./.test(line)) offenders.push(`${file}:${i + 1}: ${line.trim()}`);
      });
    }
    expect(offenders).toEqual([]);
  });
});

describe('--max-blocks', () => {
  it('a flood of thin /48s does not push out a concentrated attacker', () => {
    const flood = Array.from({ length: 20 }, (_, n) => Array.from({ length: 8 }, (_, i) => summary(`2001:db8:${(n + 1).toString(16)}:${i + 1}::1`, { reject: 2 }))).flat();
    const d = decide([...flood, summary('203.0.113.9', { saslFailure: 12 })], { maxBlocks: 5 });
    expect(d.blocks.map((b) => b.cidr)).toContain('203.0.113.9/32');
    expect(d.overLimit).toHaveLength(16);
  });

  it('a range added up past --max-tracked counts as its addresses, not as one loud address', () => {
    // what summariseBounded gives for a flood of 1M /64s: per /48, one summary standing for the addresses added up
    const ranges = Array.from({ length: 20 }, (_, n) =>
      summary(`2001:db8:${(n + 1).toString(16)}::`, { reject: 40 }, { summarised: { cidr: `2001:db8:${(n + 1).toString(16)}::/48`, addresses: 25 } }),
    );
    const d = decide([...ranges, summary('203.0.113.9', { saslFailure: 30 })], { maxBlocks: 5 });
    expect(d.blocks.map((b) => b.cidr)).toContain('203.0.113.9/32');
    expect(d.overLimit).toHaveLength(16);
    expect(d.blocks.find((b) => b.cidr.endsWith('/48'))?.addressCount).toBe(25);
  });

  it('a /48 of quiet prefixes added up past --max-tracked is blocked on what its prefixes would need (THRESHOLD6 x IPV6_SUBNET_PREFIXES), not on one prefix\'s THRESHOLD6', () => {
    // summariseBounded adds the quietest prefixes up per /48: six /64s with one failure each are no /48 to block
    const folded = (n: number) => summary('2001:db8:7::', { saslFailure: n }, { summarised: { cidr: '2001:db8:7::/48', addresses: n } });
    expect(cidrs([folded(6)])).toEqual([]);
    expect(cidrs([folded(14)])).toEqual([]); // 3 x 5 = 15 needed
    expect(cidrs([folded(15)])).toEqual(['2001:db8:7::/48']);
    // IPV6_SUBNET_PREFIXES=0 blocks no network whole ("0: never"), however loud the range added up
    expect(cidrs([folded(6)], { ipv6SubnetPrefixes: 0 })).toEqual([]);
    expect(cidrs([folded(500)], { ipv6SubnetPrefixes: 0 })).toEqual([]);
    // a prefix added up past --max-tracked (a /64) still needs THRESHOLD6
    expect(cidrs([summary('2001:db8:8::', { saslFailure: 3 }, { summarised: { cidr: '2001:db8:8::/64', addresses: 3 } })])).toEqual(['2001:db8:8::/64']);
  });

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

describe('--trap-users', () => {
  it('one failure naming a trap user makes the client an offender at once, and counts toward its /24', () => {
    const trapUsers = ['admin', 'test@example.org'];
    expect(cidrs([summary('203.0.113.5', { saslFailure: 1 }, { users: { 'Admin@example.org': [1, 0] } })], { trapUsers })).toEqual(['203.0.113.5/32']);
    expect(cidrs([summary('203.0.113.5', { saslFailure: 1 }, { users: { 'test@example.org': [1, 0] } })], { trapUsers })).toEqual(['203.0.113.5/32']);
    expect(cidrs([summary('203.0.113.5', { saslFailure: 1 }, { users: { 'test@example.com': [1, 0], alice: [1, 0] } })], { trapUsers })).toEqual([]);
    expect(cidrs([summary('2001:db8:1:2::5', { saslFailure: 1 }, { users: { admin: [1, 0] } })], { trapUsers })).toEqual(['2001:db8:1:2::/64']);
    const bots = Array.from({ length: 5 }, (_, i) => summary(`198.51.100.${i + 1}`, { saslFailure: 1 }, { users: { admin: [1, 0] } }));
    expect(cidrs(bots, { trapUsers })).toEqual(['198.51.100.0/24']);
    expect(cidrs(bots)).toEqual([]); // off by default
  });
});

describe('nothing an outsider can turn against you (issue 20)', () => {
  const counted: Partial<PolicyOptions> = { countedKinds: ['saslFailure', 'reject', 'recipientReject', 'messageReject'] };

  it('relay rejects through a big provider block nothing: named MTAs never count, and message rejects never make a /24', () => {
    // the probe's attack: one message with many recipients at a domain the attacker points at us,
    // sent through a provider; its named MTAs collect "Relay access denied" (messageReject)
    const provider = Array.from({ length: 5 }, (_, i) => summary(`209.85.129.${i + 10}`, { messageReject: 10 }));
    expect(decide(provider, counted).blocks).toEqual([]);
    // the same rejects from bots (unknown[ADDR], nothing accepted) block each bot, never the /24
    const bots = Array.from({ length: 5 }, (_, i) => summary(`198.51.100.${i + 10}`, { messageReject: 10 }, { unnamedMessage: 10 }));
    const d = decide(bots, counted);
    expect(d.blocks.map((b) => b.cidr)).toEqual(bots.map((b) => `${b.address}/32`));
    expect(d.blocks.every((b) => b.messageLevel === true)).toBe(true);
    // IPv6: one provider address with five relay rejects is no /64; a bot's is its /128, not the /64
    expect(decide([summary('2001:4860:4864:20::30', { messageReject: 5 })], counted).blocks).toEqual([]);
    expect(decide([summary('2001:db8:9:9::30', { messageReject: 5 }, { unnamedMessage: 5 })], counted).blocks).toMatchObject([{ cidr: '2001:db8:9:9::30/128', messageLevel: true }]);
    // many bots in one /64 add up to no /64 (a /64-of-many needs client-level evidence)
    const bots6 = Array.from({ length: 3 }, (_, i) => summary(`2001:db8:9:9::${i + 1}`, { messageReject: 2 }, { unnamedMessage: 2 }));
    expect(decide(bots6, counted).blocks).toEqual([]);
  });

  it('a client-level reject still counts toward its /24 and is not message-level', () => {
    const bots = Array.from({ length: 5 }, (_, i) => summary(`198.51.100.${i + 10}`, { reject: 6 }));
    expect(decide(bots, counted).blocks).toMatchObject([{ cidr: '198.51.100.0/24', reason: 'subnet' }]);
    expect(decide(bots, counted).blocks[0]!.messageLevel).toBeUndefined();
  });

  const flood = (logins: number) => {
    const s: AddressSummary[] = [];
    // 12,000 flooding addresses in one /64, each with 13 failures
    for (let i = 0; i < 12_000; i++) s.push(summary(`2001:db8:66:1::${(0x1000 + i).toString(16)}`, { saslFailure: 13 }, { users: { [`guess${i}`]: [13, 0] } }));
    // the spared logins: real users in the same /64
    for (let i = 0; i < logins; i++) s.push(summary(`2001:db8:66:1:1::${(i + 1).toString(16)}`, { saslSuccess: 1 }, { users: { [`user${i}`]: [0, 1] } }));
    // a brute-forcer elsewhere, with fewer failures than each flooding address
    s.push(summary('203.0.113.200', { saslFailure: 12 }));
    return s;
  };

  it('one login in a flooded /64: the /64 is blocked whole with the login as its one exception, and the brute-forcer too', () => {
    const d = decide(flood(1), { maxBlocks: 10_000 });
    expect(d.blocks.map((b) => b.cidr)).toEqual(['203.0.113.200/32', '2001:db8:66:1::/64']);
    expect(d.blocks[1]!.exceptions).toEqual(['2001:db8:66:1:1::1/128']);
    expect(d.overLimit).toEqual([]);
  });

  it('1,000 logins in a flooded /64 (a carrier NAT): not blocked whole, its hosts take at most 1% of --max-blocks, the brute-forcer is blocked', () => {
    const d = decide(flood(1000), { maxBlocks: 10_000 });
    expect(d.blocks.map((b) => b.cidr)).toContain('203.0.113.200/32');
    expect(d.blocks.some((b) => b.cidr === '2001:db8:66:1::/64')).toBe(false);
    const hosts = d.blocks.filter((b) => b.cidr.startsWith('2001:db8:66:1:'));
    expect(hosts).toHaveLength(100); // crowdedShare(10,000)
    expect(hosts.every((b) => b.crowded === '2001:db8:66:1::/64')).toBe(true);
    expect(hosts.some((b) => b.cidr.startsWith('2001:db8:66:1:1::'))).toBe(false); // no login is blocked
    expect(d.blocks).toHaveLength(101);
  });

  it('--max-exceptions sets where a range stops taking exceptions', () => {
    const attackers = Array.from({ length: 5 }, (_, i) => summary(`203.0.113.${i + 1}`, { saslFailure: 6 }));
    const users = Array.from({ length: 3 }, (_, i) => summary(`203.0.113.${i + 100}`, { saslSuccess: 1 }));
    expect(decide([...attackers, ...users], { maxExceptions: 3 }).blocks).toMatchObject([{ cidr: '203.0.113.0/24', exceptions: ['203.0.113.100/32', '203.0.113.101/32', '203.0.113.102/32'] }]);
    expect(decide([...attackers, ...users], { maxExceptions: 2 }).blocks.map((b) => b.cidr)).toEqual(attackers.map((a) => `${a.address}/32`));
  });
});
