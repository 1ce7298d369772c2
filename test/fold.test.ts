/** The tally's own bound (count/tally.ts compact): past its limit, the quietest addresses are folded into rows. */
import { describe, expect, it } from 'vitest';
import { EVENT_KINDS, FOLDED_ADDRESSES_SLOT, SLOT_COUNT, type EventKind } from '../src/read/kinds.js';
import { ALL_TIME, BUCKET_MS, kthSmallest, setFoldRowsDirectly, Tally } from '../src/count/tally.js';
import { summarise, summariseBounded, type Bound } from '../src/count/summary.js';
import { deserializeTally, serializeDay, serializeTally, tallyDays } from '../src/count/codec.js';
import { tallyFromParts, tallyToParts } from '../src/count/transfer.js';
import { decideBlocks } from '../src/decide/policy.js';

const T0 = Date.parse('2026-11-22T12:00:00Z');
const COUNTED: EventKind[] = ['saslFailure', 'reject'];
const BOUND: Bound = { maxTracked: 50, threshold: 5, threshold6: 5, ipv6Prefix: 64, ipv6Subnet: 48 };
const POLICY = { threshold: 5, threshold6: 5, countedKinds: COUNTED, ipv6Prefix: 64, ipv6Subnet: 48, ipv6SubnetPrefixes: 5, subnetHosts: 5, neverBlock: [], maxBlocks: 0 };

/** Every count of `tally` (its rows' too) per kind: what folding must never lose. */
function totals(tally: Tally): Float64Array {
  const out = new Float64Array(SLOT_COUNT);
  tally.perMinute((_, counts) => counts.forEach((n, i) => (out[i]! += n)));
  return out;
}

/**
 * `count` quiet addresses with one reject each, a second apart, and `attackers` with 30 SASL
 * failures each: one each after every `every` quiet addresses, from the start.
 */
function flood(tally: Tally, quiet: (i: number) => string, count: number, attackers: string[], every = 40): void {
  let t = T0;
  for (let i = 0; i < count; i++) {
    tally.add({ kind: 'reject', address: quiet(i), time: (t += 1000) });
    if (i % every === 0 && i / every < 30) for (const a of attackers) tally.add({ kind: 'saslFailure', address: a, time: t });
  }
}

const summaryOf = (tally: Tally, address: string) => summariseBounded(tally, ALL_TIME, COUNTED, BOUND).summaries.find((s) => s.address === address);

describe('a tally past its limit', () => {
  it('keeps the attackers exact and every login, holds at most its limit, and loses no count', () => {
    const tally = new Tally(200);
    tally.add({ kind: 'saslSuccess', address: '192.0.2.200', time: T0 });
    flood(tally, (i) => `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`, 3000, ['203.0.113.9', '203.0.113.10']);
    expect(tally.count).toBeLessThanOrEqual(200);
    expect(tally.folded!.count).toBe(1); // IPv4: one row, only counted
    const all = totals(tally);
    expect(all[EVENT_KINDS.indexOf('reject')]).toBe(3000);
    expect(all[EVENT_KINDS.indexOf('saslFailure')]).toBe(60);
    expect(all[EVENT_KINDS.indexOf('saslSuccess')]).toBe(1);
    // the addresses the row stands for, and those kept, are all of them
    expect(all[FOLDED_ADDRESSES_SLOT]! + tally.count).toBe(3003);
    for (const a of ['203.0.113.9', '203.0.113.10']) expect(summaryOf(tally, a)?.events.saslFailure).toBe(30);
    expect(summaryOf(tally, '192.0.2.200')?.events.saslSuccess).toBe(1);
    const bounded = summariseBounded(tally, ALL_TIME, COUNTED, BOUND);
    expect(bounded.summarised).toBe(3003 - bounded.summaries.length);
    expect(decideBlocks(bounded.summaries, POLICY).blocks.map((b) => b.cidr)).toEqual(['203.0.113.9/32', '203.0.113.10/32']);
  });

  it('ranks logins first, then offenders by the counted kinds only, then accepted mail: a flood of other kinds or of accepted spam folds none of them', () => {
    const tally = new Tally(100);
    tally.add({ kind: 'saslSuccess', address: '192.0.2.200', time: T0 });
    for (let i = 0; i < 30; i++) tally.add({ kind: 'saslFailure', address: '203.0.113.9', time: T0 + i });
    // 150 bots with 5 events each of a kind that does not count, and 150 that had spam accepted
    for (let i = 0; i < 150; i++) for (let k = 0; k < 5; k++) tally.add({ kind: 'lostConnection', address: `10.0.0.${i}`, time: T0 + 60_000 + i });
    for (let i = 0; i < 150; i++) tally.add({ kind: 'accepted', address: `10.0.1.${i}`, time: T0 + 120_000 + i });
    const all = summarise(tally, ALL_TIME, COUNTED);
    expect(all.find((x) => x.address === '203.0.113.9')?.events.saslFailure).toBe(30);
    expect(all.find((x) => x.address === '192.0.2.200')?.events.saslSuccess).toBe(1);
    expect(totals(tally)[EVENT_KINDS.indexOf('lostConnection')]).toBe(750);
  });

  it('counts an address one by one while fewer than half the limit come between its events; past that, its earlier events are in its row', () => {
    const tally = new Tally(100);
    tally.add({ kind: 'reject', address: '192.0.2.1', time: T0 });
    for (let i = 0; i < 49; i++) tally.add({ kind: 'reject', address: `10.0.0.${i}`, time: T0 + 60_000 * (i + 1) });
    tally.add({ kind: 'reject', address: '192.0.2.1', time: T0 + 60_000 * 50 });
    for (let i = 0; i < 200; i++) tally.add({ kind: 'reject', address: `10.0.1.${i}`, time: T0 + 60_000 * (i + 51) });
    tally.add({ kind: 'reject', address: '192.0.2.1', time: T0 + 60_000 * 300 });
    expect(summarise(tally, ALL_TIME, COUNTED).find((x) => x.address === '192.0.2.1')?.events.reject).toBe(1); // 200 others came between: its first two are in the IPv4 row
    expect(totals(tally)[EVENT_KINDS.indexOf('reject')]).toBe(252);
  });

  it('adds IPv6 up per /64, so a flood from one /64 is still blocked as that /64', () => {
    const tally = new Tally(100);
    flood(tally, (i) => `2001:db8:1:2::${i.toString(16)}`, 2000, ['2001:db8:77:1::9']);
    const rows = tally.folded!;
    expect(rows.count).toBe(1);
    expect(rows.nameOf(0)).toBe('2001:db8:1:2:0:40:0:6'); // the row's key: the /64's words, its length (64 = 0x40) and its family
    const range = summaryOf(tally, '2001:db8:1:2::');
    expect(range?.summarised?.cidr).toBe('2001:db8:1:2::/64');
    expect(range!.summarised!.addresses + tally.count - 1).toBeGreaterThanOrEqual(2000); // the rest are listed one by one (or in it)
    expect(summaryOf(tally, '2001:db8:77:1::9')?.events.saslFailure).toBe(30);
    const blocks = decideBlocks(summariseBounded(tally, ALL_TIME, COUNTED, BOUND).summaries, POLICY).blocks.map((b) => b.cidr);
    expect(blocks).toContain('2001:db8:1:2::/64');
    expect(blocks).toContain('2001:db8:77:1::/64');
  });

  it('folds its rows wider when they are too many: /64s into /48s, then one row; counts stay', () => {
    const tally = new Tally(160); // rows: at most 16
    flood(tally, (i) => `2001:db8:${(i % 7).toString(16)}:${i.toString(16)}::1`, 3000, []);
    const rows = tally.folded!;
    expect(rows.count).toBeLessThanOrEqual(rows.limit);
    expect(rows.limit).toBe(16);
    expect(totals(tally)[EVENT_KINDS.indexOf('reject')]).toBe(3000);
    const lengths = new Set(Array.from({ length: rows.count }, (_, f) => rows.words[f * 4 + 2]));
    expect([...lengths].every((bits) => bits === 64 || bits === 48 || bits === 0)).toBe(true);
    expect(lengths.has(48) || lengths.has(0)).toBe(true);
  });

  it('folds rows as planned exactly as it would make them first and compact them after (rows, numbers, counts)', () => {
    // a small random flood of every shape: many /64s in few /48s and in many, one busy /64, IPv4,
    // several kinds and minutes per address, returning addresses; then two such tallies merged
    const run = (seed: number, direct: boolean): Buffer[] => {
      setFoldRowsDirectly(direct);
      try {
        let x = seed;
        const random = (n: number) => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 8) % n;
        const made = [new Tally(120), new Tally(120)];
        for (const tally of made) {
          for (let i = 0; i < 4000; i++) {
            const shape = random(10);
            const address =
              shape < 4 ? `2001:db8:${random(3).toString(16)}:${random(5000).toString(16)}::${random(3)}`
              : shape < 7 ? `2001:db8:${random(4000).toString(16)}:${random(9).toString(16)}::1`
              : shape < 8 ? `2001:db8:ffff:1::${random(60000).toString(16)}`
              : `198.51.${random(256)}.${random(256)}`;
            const kind = (['reject', 'reject', 'saslFailure', 'hangup', 'accepted'] as const)[random(5)]!;
            tally.add({ kind, address, time: T0 + i * 3000 + random(5) * BUCKET_MS });
          }
        }
        made[0]!.addAll(made[1]!);
        return [...made.map((t) => serializeTally(t)), Buffer.from(String(made[0]!.folded!.count))];
      } finally {
        setFoldRowsDirectly(true);
      }
    };
    for (const seed of [1, 2, 3]) {
      const direct = run(seed, true);
      expect(direct).toEqual(run(seed, false));
      expect(Number(direct[2]!.toString())).toBeGreaterThan(1); // rows were folded, not one row
    }
  });

  it('keeps its rows through serialize (whole and per day), thread transfer and merging', () => {
    const a = new Tally(100);
    flood(a, (i) => `198.51.${i >> 8}.${i & 255}`, 500, ['203.0.113.9'], 16);
    a.add({ kind: 'reject', address: '2001:db8:5::1', time: T0 + 2 * 86_400_000 });
    for (let i = 0; i < 300; i++) a.add({ kind: 'reject', address: `2001:db8:6::${i.toString(16)}`, time: T0 + 2 * 86_400_000 + i * BUCKET_MS });
    const want = totals(a);
    expect(totals(deserializeTally(serializeTally(a)))).toEqual(want);
    expect(totals(tallyFromParts(structuredClone(tallyToParts(a))))).toEqual(want);
    // per day: the days of the rows are days of the tally, and the day files add up to it
    const days = tallyDays(a);
    expect(days.length).toBe(2);
    const sum = new Tally(100);
    for (const day of days) sum.addAll(deserializeTally(serializeDay(a, day).data));
    expect(totals(sum)).toEqual(want);
    expect(summaryOf(sum, '203.0.113.9')?.events.saslFailure).toBe(30);
    // two folded tallies merged: counts add, the limit holds
    const b = deserializeTally(serializeTally(a));
    b.addAll(a);
    expect(b.count).toBeLessThanOrEqual(100);
    expect(totals(b)).toEqual(want.map((n) => 2 * n));
    expect(summaryOf(b, '203.0.113.9')?.events.saslFailure).toBe(60);
  });

  it('refuses tally data whose folded rows are not networks as written', () => {
    const tally = new Tally(16);
    for (let i = 0; i < 40; i++) tally.add({ kind: 'reject', address: `2001:db8::${i + 1}`, time: T0 + i });
    const data = serializeTally(tally);
    const rowKey = Buffer.from([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0, 0, 6]);
    const at = data.indexOf(rowKey);
    expect(at).toBeGreaterThan(0);
    expect(() => deserializeTally(data)).not.toThrow();
    const bad = Buffer.from(data);
    bad[at + 11] = 56; // a /56 row: not one the tally makes
    expect(() => deserializeTally(bad)).toThrow(/folded row .* not a network as written/);
  });
});

describe("compact's cut (kthSmallest)", () => {
  /** Key orders a flood's sender can make (when each address comes back), and the usual ones. */
  const shapes: Record<string, (n: number) => Float64Array> = {
    random: (n) => Float64Array.from({ length: n }, (_, i) => (i * 2654435761) % 1000003),
    'few values': (n) => Float64Array.from({ length: n }, (_, i) => (i * 7919) % 5),
    sorted: (n) => Float64Array.from({ length: n }, (_, i) => i),
    reversed: (n) => Float64Array.from({ length: n }, (_, i) => n - i),
    'all equal': (n) => new Float64Array(n).fill(3),
    // rising for half the addresses, then falling: quadratic for a middle pivot (8.6 s at 200,001)
    'up then down': (n) => Float64Array.from({ length: n }, (_, i) => (i < n / 2 ? i : n - i)),
    'up then down, one day of minutes': (n) => Float64Array.from({ length: n }, (_, i) => Math.floor(((i < n / 2 ? i : n - i) / n) * 1440)),
    'organ pipe of pairs': (n) => Float64Array.from({ length: n }, (_, i) => (i % 2 === 0 ? i : n - i)),
  };

  it('is the k-th smallest, as a sort says, for every shape and size', () => {
    for (const [name, make] of Object.entries(shapes)) {
      for (const n of [1, 2, 3, 5, 16, 17, 100, 1001]) {
        const keys = make(n);
        const sorted = keys.slice().sort();
        for (const k of new Set([0, 1, n >> 1, n - 2, n - 1].filter((k) => k >= 0 && k < n))) {
          expect([name, n, k, kthSmallest(keys.slice(), k)]).toEqual([name, n, k, sorted[k]]);
          // and when the rounds run out at once, or after one or two (the sort takes the rest of the range)
          for (const rounds of [0, 1, 2]) expect([name, n, k, rounds, kthSmallest(keys.slice(), k, rounds)]).toEqual([name, n, k, rounds, sorted[k]]);
        }
      }
    }
  });

  // the limit is a guard against a hang, 100x what it takes (~50 ms): with a middle pivot and no
  // round budget, 'up then down' took 9.4 s here (50,001 rounds)
  it("holds at a tally's default limit on the orders that defeat a fixed pivot", { timeout: 5_000 }, () => {
    const n = 200_001;
    for (const name of ['up then down', 'up then down, one day of minutes', 'organ pipe of pairs']) {
      const keys = shapes[name]!(n);
      const k = n - 100_000;
      expect([name, kthSmallest(keys.slice(), k)]).toEqual([name, keys.slice().sort()[k]]);
    }
  });
});

