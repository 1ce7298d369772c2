import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import type { EventKind } from '../src/read/kinds.js';
import { decideBlocks } from '../src/decide/policy.js';
import { ALL_TIME, BUCKET_MS, MAX_USERS_PER_ADDRESS, poolMemoryOf, Tally } from '../src/count/tally.js';
import { KEY } from '../src/count/layout.js';
import { summarise, summariseBounded } from '../src/count/summary.js';
import { deserializeTally, serializeTally } from '../src/count/codec.js';
import { tallyFromParts, tallyToParts } from '../src/count/transfer.js';

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

describe('buckets keep two counts inline and more in a further record', () => {
  it('one minute with every kind, and counts past 2^26, stay exact through merging and serialize', () => {
    const kinds = ['saslFailure', 'reject', 'tempReject', 'saslSuccess', 'authLost', 'pregreet', 'authDisconnect'] as const;
    const big = 2 ** 26 + 5;
    const build = () => {
      const t = new Tally();
      kinds.forEach((kind, i) => t.add({ kind, address: '192.0.2.1', time: T0 + i, count: i + 1 }));
      t.add({ kind: 'reject', address: '192.0.2.1', time: T0 + 10, count: big });
      t.add({ kind: 'recipientReject', address: '192.0.2.1', time: T0 + 20, unnamed: true });
      return t;
    };
    const want = { saslFailure: 1, reject: 2 + big, tempReject: 3, saslSuccess: 4, authLost: 5, pregreet: 6, authDisconnect: 7, recipientReject: 1 };
    const events = (t: Tally) => summarise(t, ALL_TIME, COUNTED)[0]!.events;
    const one = build();
    expect(events(one)).toMatchObject(want);
    expect(summarise(one, ALL_TIME, COUNTED)[0]!.unnamedRecipientRejects).toBe(1);
    const copy = deserializeTally(serializeTally(one));
    expect(events(copy)).toMatchObject(want);
    expect(serializeTally(copy).equals(serializeTally(one))).toBe(true);
    const doubled = build();
    doubled.addAll(build());
    expect(events(doubled)).toMatchObject(Object.fromEntries(Object.entries(want).map(([k, v]) => [k, 2 * v])));
    const same = build();
    same.maxAll(build());
    expect(events(same)).toMatchObject(want);
    const fromParts = tallyFromParts(structuredClone(tallyToParts(one)));
    expect(events(fromParts)).toMatchObject(want);
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

describe('usernames and recipient rejects', () => {
  it('keeps failures and logins per username, in the window, through serialize and merging', () => {
    const tally = new Tally();
    tally.add({ kind: 'saslFailure', address: '203.0.113.66', time: T0, user: 'alice' });
    tally.add({ kind: 'saslFailure', address: '203.0.113.66', time: T0, user: 'bob' });
    tally.add({ kind: 'saslFailure', address: '203.0.113.66', time: T0 + 2 * BUCKET_MS, user: 'bob' });
    tally.add({ kind: 'saslSuccess', address: '203.0.113.66', time: T0 + BUCKET_MS, user: 'alice' });
    tally.add({ kind: 'recipientReject', address: '203.0.113.66', time: T0, unnamed: true });
    tally.add({ kind: 'recipientReject', address: '203.0.113.66', time: T0 });
    const copy = deserializeTally(serializeTally(tally));
    for (const t of [tally, copy]) {
      const [s] = summarise(t, { from: T0, to: T0 + BUCKET_MS }, COUNTED);
      expect(s!.users).toEqual(new Map([['alice', { failures: 1, logins: 1 }], ['bob', { failures: 1, logins: 0 }]]));
      expect(s!.events.recipientReject).toBe(2);
      expect(s!.unnamedRecipientRejects).toBe(1);
    }
    const merged = new Tally();
    merged.addAll(copy);
    merged.addAll(copy);
    expect(summarise(merged, ALL_TIME, COUNTED)[0]!.users!.get('bob')).toEqual({ failures: 4, logins: 0 });
  });

  it(`keeps at most ${MAX_USERS_PER_ADDRESS} usernames per address; failures past that count under other users, logins are always kept`, () => {
    const tally = new Tally();
    for (let i = 0; i < MAX_USERS_PER_ADDRESS + 10; i++) tally.add({ kind: 'saslFailure', address: '192.0.2.1', time: T0, user: `u${i}` });
    tally.add({ kind: 'saslSuccess', address: '192.0.2.1', time: T0, user: 'alice' });
    const [s] = summarise(deserializeTally(serializeTally(tally)), ALL_TIME, COUNTED);
    expect(s!.users!.size).toBe(MAX_USERS_PER_ADDRESS + 1);
    expect(s!.users!.get('alice')).toEqual({ failures: 0, logins: 1 });
    expect(s!.otherUserFailures).toBe(10);
  });

  it('a user who logged in stays itself past the cap through merging and serialize, whichever minute comes first', () => {
    const build = () => {
      const t = new Tally();
      for (let i = 0; i < MAX_USERS_PER_ADDRESS; i++) t.add({ kind: 'saslFailure', address: '192.0.2.1', time: T0 + 10 * BUCKET_MS, user: `guess${i}` });
      t.add({ kind: 'saslSuccess', address: '192.0.2.1', time: T0 + 100 * BUCKET_MS, user: 'alice' });
      t.add({ kind: 'saslFailure', address: '192.0.2.1', time: T0 + 900 * BUCKET_MS, user: 'alice' });
      return t;
    };
    const alice = (t: Tally) => summarise(t, ALL_TIME, COUNTED)[0]!;
    expect(alice(build()).users!.get('alice')).toEqual({ failures: 1, logins: 1 });
    expect(alice(deserializeTally(serializeTally(build()))).users!.get('alice')).toEqual({ failures: 1, logins: 1 });
    expect(alice(deserializeTally(serializeTally(build()))).otherUserFailures).toBeUndefined();
    const merged = new Tally();
    merged.add({ kind: 'reject', address: '192.0.2.1', time: T0 });
    merged.addAll(build());
    expect(alice(merged).users!.get('alice')).toEqual({ failures: 1, logins: 1 });
  });

  it('refuses tally data that holds something other than an address', () => {
    const data = serializeTally(tallyOf([['reject', '192.0.2.1', T0]]));
    const bad = Buffer.from(data);
    bad[4] = 9; // the address's tag: neither IPv4 (4) nor IPv6 (6)
    expect(() => deserializeTally(bad)).toThrow(/not an address/);
    const mapped = Buffer.concat([data.subarray(0, 4), Buffer.from([6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1]), data.subarray(9)]);
    expect(() => deserializeTally(mapped)).toThrow(/not an address as written/); // IPv4 is never written as ::ffff:0:0/96
    const six = tallyOf([['reject', '2001:db8::1', T0], ['reject', '192.0.2.1', T0]]);
    expect(deserializeTally(serializeTally(six)).addressList().sort()).toEqual(['192.0.2.1', '2001:db8::1']);
    expect(() => deserializeTally(data.subarray(0, data.length - 3))).toThrow();
  });
});

describe('summariseBounded (--max-tracked)', () => {
  const bound = { maxTracked: 1000, threshold: 10, threshold6: 5, ipv6Prefix: 64, ipv6Subnet: 48 };
  const policy = { threshold: 10, threshold6: 5, countedKinds: COUNTED, ipv6Prefix: 64, ipv6Subnet: 48, ipv6SubnetPrefixes: 5, subnetHosts: 5, neverBlock: [], maxBlocks: 0 };

  it('below the bound it is summarise', () => {
    const tally = tallyOf([['reject', '192.0.2.1', T0], ['saslFailure', '2001:db8::1', T0]]);
    expect(summariseBounded(tally, ALL_TIME, COUNTED, bound)).toEqual({ summaries: summarise(tally, ALL_TIME, COUNTED), summarised: 0, summarisedEvents: 0, summarisedRanges: 0 });
  });

  it('an IPv4 flood: the attacker, the nearest to the threshold and every login are kept; the rest only counted', () => {
    const tally = new Tally();
    for (let i = 0; i < 5000; i++) tally.add({ kind: 'reject', address: `10.${(i >> 8) & 255}.${i & 255}.1`, time: T0 });
    for (let i = 0; i < 10; i++) tally.add({ kind: 'saslFailure', address: '203.0.113.9', time: T0 + i });
    for (let i = 0; i < 9; i++) tally.add({ kind: 'saslFailure', address: '203.0.113.10', time: T0 + i });
    tally.add({ kind: 'saslSuccess', address: '192.0.2.44', time: T0, user: 'alice' });
    const b = summariseBounded(tally, ALL_TIME, COUNTED, bound);
    expect(b.summaries).toHaveLength(1000);
    expect(b.summaries.slice(0, 2).map((s) => [s.address, s.total])).toEqual([['203.0.113.9', 10], ['203.0.113.10', 9]]);
    expect(b.summaries.some((s) => s.address === '192.0.2.44')).toBe(true);
    expect(b.summarised).toBe(5003 - 1000);
    expect(b.summarisedEvents).toBe(5003 - 1000);
    expect(b.summarisedRanges).toBe(0);
    expect(decideBlocks(b.summaries, policy).blocks.map((x) => x.cidr)).toEqual(['203.0.113.9/32']);
  });

  it('an IPv6 flood of addresses in one /64 adds up to that /64; of many /64s, to their /48; the real attacker stays itself', () => {
    for (const [address, expected] of [
      [(i: number) => `2001:db8:68:1::${(i + 1).toString(16)}`, ['2001:db8:68:1::/64', '2001:db8:77:1::/64']],
      [(i: number) => `2001:db8:68:${i.toString(16)}::1`, ['2001:db8:68::/48', '2001:db8:77:1::/64']],
    ] as const) {
      const tally = new Tally();
      for (let i = 0; i < 5000; i++) tally.add({ kind: 'reject', address: address(i), time: T0 + i });
      for (let i = 0; i < 5; i++) tally.add({ kind: 'saslFailure', address: '2001:db8:77:1::9', time: T0 + i });
      const b = summariseBounded(tally, ALL_TIME, COUNTED, bound);
      expect(b.summaries.filter((s) => s.summarised === undefined).length).toBeLessThanOrEqual(1000);
      expect(b.summarisedRanges).toBeLessThanOrEqual(2);
      expect(b.summarised).toBeGreaterThan(3000);
      const ranges = b.summaries.filter((s) => s.summarised !== undefined);
      expect(ranges.reduce((n, s) => n + s.summarised!.addresses, 0)).toBe(b.summarised);
      expect(ranges.reduce((n, s) => n + s.total, 0)).toBe(b.summarisedEvents);
      expect(b.summaries.find((s) => s.address === '2001:db8:77:1::9')?.total).toBe(5);
      expect(decideBlocks(b.summaries, policy).blocks.map((x) => x.cidr)).toEqual(expected);
      // the same decision as without the bound
      expect(decideBlocks(summarise(tally, ALL_TIME, COUNTED), policy).blocks.map((x) => x.cidr)).toEqual(expected);
    }
  });

  it('an IPv6 flood over more /48s than --max-tracked: the summaries stay bounded, the busiest /48s are kept, the rest only counted', () => {
    const tally = new Tally();
    // 5000 /48s with one address each, and one /48 with 30 prefixes of 1 event (the flood's loudest network)
    for (let i = 0; i < 5000; i++) tally.add({ kind: 'reject', address: `2001:${(0x1000 + i).toString(16)}:1::1`, time: T0 + i });
    for (let i = 0; i < 30; i++) tally.add({ kind: 'reject', address: `2001:db8:99:${i.toString(16)}::1`, time: T0 + i });
    for (let i = 0; i < 5; i++) tally.add({ kind: 'saslFailure', address: '2001:db8:77:1::9', time: T0 + i });
    const small = { ...bound, maxTracked: 1000 };
    const b = summariseBounded(tally, ALL_TIME, COUNTED, small);
    // 1000 addresses or prefixes of their own, at most 1000 networks: never one per /48 of the flood
    expect(b.summaries.length).toBeLessThanOrEqual(2 * small.maxTracked + 1);
    expect(b.summarisedRanges).toBeLessThanOrEqual(small.maxTracked + 1);
    expect(b.summarised).toBe(5030 - (b.summaries.filter((s) => s.summarised === undefined).length - 1));
    expect(b.summaries.find((s) => s.address === '2001:db8:77:1::9')?.total).toBe(5);
    expect(b.summaries.find((s) => s.summarised?.cidr === '2001:db8:99::/48')?.total).toBe(30);
    // no range wider than a /48 is made of a flood, and the loud /48 and the attacker are blocked
    expect(b.summaries.every((s) => s.summarised === undefined || Number(s.summarised.cidr.split('/')[1]) >= 48)).toBe(true);
    expect(decideBlocks(b.summaries, policy).blocks.map((x) => x.cidr)).toEqual(['2001:db8:77:1::/64', '2001:db8:99::/48']);
  });

  it('a tally read from a horizon on answers for its window and refuses to be written back', () => {
    const tally = tallyOf([['reject', '192.0.2.1', T0 - 3 * BUCKET_MS], ['reject', '192.0.2.1', T0], ['reject', '192.0.2.2', T0 - 3 * BUCKET_MS]]);
    const recent = deserializeTally(serializeTally(tally), T0 - BUCKET_MS);
    const window = { from: T0 - BUCKET_MS, to: T0 + BUCKET_MS };
    expect(summarise(recent, window, COUNTED)).toEqual(summarise(tally, window, COUNTED));
    expect(() => serializeTally(recent)).toThrow(/cannot be written back/);
  });
});

describe("the bucket pool grows in place", () => {
  /** 200 addresses x 60 minutes of one reject each: 12,000 buckets, past the first pool many times over. */
  const fill = (tally: Tally, from = 0) => {
    for (let minute = 0; minute < 60; minute++) {
      for (let a = from; a < from + 200; a++) tally.add({ kind: 'reject', address: `10.0.${a >> 8}.${a & 255}`, time: T0 + minute * BUCKET_MS });
    }
  };
  const rejects = (tally: Tally) => summarise(tally, ALL_TIME, COUNTED).reduce((sum, s) => sum + s.events.reject, 0);

  it('keeps one memory once it has grown: no copy, nothing held twice', () => {
    const tally = new Tally();
    fill(tally);
    const memory = poolMemoryOf(tally.pool);
    expect(memory).not.toBeNull();
    const before = tally.pool;
    fill(tally, 200);
    expect(tally.records).toBe(24_000);
    expect(tally.pool.length).toBeGreaterThan(before.length);
    expect(poolMemoryOf(tally.pool)).toBe(memory);
    // the records written before it grew are where they were: the pool before and after are one memory
    const saved = tally.pool[KEY]!;
    before[KEY] = saved + 1;
    expect(tally.pool[KEY]).toBe(saved + 1);
    before[KEY] = saved;
    expect(rejects(tally)).toBe(24_000);
  });

  it('is a plain buffer, not a resizable one (whose arrays V8 reads and writes at about half the speed)', () => {
    const tally = new Tally();
    fill(tally);
    const buffer = tally.pool.buffer as { resizable?: boolean; growable?: boolean };
    expect([buffer.resizable, buffer.growable]).not.toContain(true);
  });

  it('grows a pool received from another thread (a view of part of its buffer) without losing a count', () => {
    const tally = new Tally();
    fill(tally);
    const parts = structuredClone(tallyToParts(tally));
    const received = tallyFromParts(parts);
    expect(received.pool.buffer.byteLength).toBeGreaterThan(received.pool.length * 4); // the case: a view of part of its buffer
    fill(received, 200);
    expect(parts.poolMemory).not.toBeNull();
    expect(poolMemoryOf(received.pool)).toBe(parts.poolMemory); // grown in the memory that came with it, not copied into another
    expect(rejects(received)).toBe(24_000);
    expect(summarise(received, ALL_TIME, COUNTED)).toHaveLength(400);
  });
});

describe('the address table', () => {
  it('hashes with a seed of its own in each process, so colliding addresses cannot be chosen from outside', () => {
    const words = new URL('../dist/count/words.js', import.meta.url).pathname;
    const hashes = Array.from({ length: 3 }, () => {
      const child = spawnSync(process.execPath, ['--input-type=module', '-e', `import { hashWords } from ${JSON.stringify(words)}; console.log(hashWords(0, 0, 0xffff, 0xc0000201))`], { encoding: 'utf8' });
      expect(child.stderr).toBe('');
      return child.stdout.trim();
    });
    expect(hashes.every((h) => /^\d+$/.test(h))).toBe(true);
    expect(new Set(hashes).size).toBe(3); // the same address, three processes: three hashes (about 2^-30 odds of a false failure)
  });
});
