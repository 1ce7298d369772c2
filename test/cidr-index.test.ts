/** CidrIndex against the brute-force answer, on random ranges that nest, with changes after its indexes exist. */
import { describe, expect, it } from 'vitest';
import { networkOf, parseRange, rangesOverlap } from '../src/address.js';
import { CidrIndex } from '../src/decide/cidr-index.js';
import { mulberry32 as random } from './random.js';

function cidrs(rand: () => number, n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    if (rand() < 0.6) {
      const address = `10.${Math.floor(rand() * 3)}.${Math.floor(rand() * 4)}.${Math.floor(rand() * 8)}`;
      out.push(networkOf(address, [8, 16, 22, 24, 30, 32][Math.floor(rand() * 6)]!));
    } else {
      const address = `2001:db8:${Math.floor(rand() * 3).toString(16)}:${Math.floor(rand() * 3).toString(16)}::${Math.floor(rand() * 5).toString(16)}`;
      out.push(networkOf(address, [32, 48, 56, 64, 128][Math.floor(rand() * 5)]!));
    }
  }
  return out;
}

const holds = (outer: string, inner: string) => {
  const [o, i] = [parseRange(outer), parseRange(inner)];
  return o[1] <= i[1] && rangesOverlap(o, i);
};

describe('CidrIndex', () => {
  it('finds what holds a range and what lies inside it exactly as comparing each with each does, through sets and deletes', () => {
    const rand = random(7);
    const index = new CidrIndex<number>();
    const live = new Map<string, number>();
    for (let round = 0; round < 6; round++) {
      for (const [i, cidr] of cidrs(rand, 120).entries()) {
        index.set(cidr, round * 1000 + i);
        live.set(cidr, round * 1000 + i);
      }
      for (const cidr of [...live.keys()].filter(() => rand() < 0.2)) {
        expect(index.delete(cidr)).toBe(true);
        live.delete(cidr);
      }
      expect(index.size).toBe(live.size);
      for (const query of cidrs(rand, 80)) {
        const containing = [...live].filter(([c]) => holds(c, query)).map(([c]) => c).sort();
        const inside = [...live].filter(([c]) => holds(query, c)).map(([c]) => c).sort();
        expect(index.containing(query).map(([c]) => c).sort()).toEqual(containing);
        expect(index.inside(query).map(([c]) => c).sort()).toEqual(inside);
        for (const [c, v] of index.inside(query)) expect(v).toBe(live.get(c));
      }
    }
  });

  it('never mixes IPv4 and IPv6, and an equal range counts both ways', () => {
    const index = new CidrIndex<string>([['192.0.2.0/24', 'a'], ['::/0', 'b'], ['2001:db8::/32', 'c']]);
    expect(index.containing('192.0.2.7/32')).toEqual([['192.0.2.0/24', 'a']]);
    expect(index.containing('192.0.2.0/24')).toEqual([['192.0.2.0/24', 'a']]);
    expect(index.inside('192.0.2.0/24')).toEqual([['192.0.2.0/24', 'a']]);
    expect(index.inside('0.0.0.0/0')).toEqual([['192.0.2.0/24', 'a']]);
    expect(index.containing('2001:db8:1::/48').map(([c]) => c).sort()).toEqual(['2001:db8::/32', '::/0']);
  });
});
