import { describe, expect, it } from 'vitest';
import ipaddr from 'ipaddr.js';
import { addressSortKey, addressWords, canonicalIpv6Words, cidrSortKey, isCanonicalAddress, networkOf, normaliseAddress, parseIp, parseRange, rangesOverlap, wordRange, wordRangesOverlap, wordsSortKey, wordsText } from '../src/address.js';
import { mulberry32 } from './random.js';
import { Tally } from '../src/count/tally.js';

const prefix = new Int32Array(4);

/** What normaliseAddress gave when ipaddr.js did the work: the reference for the hand-written parser. */
function reference(raw: string): string | null {
  const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
  if (IPV4.test(raw)) return raw;
  const percent = raw.indexOf('%');
  let text = percent === -1 ? raw : raw.slice(0, percent);
  if (!text.includes(':') || !/^[0-9A-Fa-f:.]+$/.test(text)) return null;
  if (text.includes('.')) {
    const m = /^(.*:)([^:]+)$/.exec(text);
    if (m === null || !IPV4.test(m[2]!)) return null;
    const [a, b, c, d] = m[2]!.split('.').map(Number) as [number, number, number, number];
    text = `${m[1]}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  if (!ipaddr.IPv6.isValid(text)) return null;
  const v6 = ipaddr.IPv6.parse(text);
  if (v6.isIPv4MappedAddress()) return v6.toIPv4Address().toString();
  return v6.toRFC5952String();
}

describe('IPv6 by hand', () => {
  const cases = [
    '2001:db8::1', '2001:DB8:0:0:0:0:0:1', '::', '::1', '1::', '1::2:3:4:5:6:7', '1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8:9',
    '::ffff:192.0.2.1', '::ffff:c000:201', '::192.0.2.1', '64:ff9b::192.0.2.1', '1:2:3:4:5:6:192.0.2.1', '1:2:3:4:5:6:7:192.0.2.1',
    '::ffff:01.2.3.4', '::ffff:1.2.3', '::1.2.3.4:5', 'fe80::1%eth0', '0001:0002::0003', '00001::', '1:::2', ':1::2', '1::2:', '1:2', ':', '',
    '2001:0:0:1:0:0:0:1', '2001:db8:0:0:1:0:0:1', '0:0:1:0:0:0:0:0', 'g::1', '1::2::3', '::ffff:0:192.0.2.1', '1.2.3.4', '01.2.3.4', '[::1]',
  ];
  it('gives what ipaddr.js gave, on the edge cases', () => {
    for (const raw of cases) expect([raw, normaliseAddress(raw)]).toEqual([raw, reference(raw)]);
  });

  /** The fast path (no string made) must say yes exactly where the text is already its canonical form. */
  const sameForm = (raw: string) => {
    expect([raw, isCanonicalAddress(raw)]).toEqual([raw, reference(raw) === raw]);
    const words = new Int32Array(4);
    const canonical = reference(raw);
    expect([raw, addressWords(raw, words, 0) ? wordsText(words, 0) : null]).toEqual([raw, canonical === null || raw.includes('%') ? null : canonical]);
    // the same read from bytes (parse-bytes.ts): yes only for canonical IPv6, with its words
    const bytes = Buffer.from(`[${raw}]`, 'latin1');
    const fromBytes = canonicalIpv6Words(bytes, 1, bytes.length - 1, words) ? wordsText(words, 0) : null;
    expect([raw, fromBytes]).toEqual([raw, canonical === raw && raw.includes(':') ? raw : null]);
  };

  it('knows canonical text when it sees it, on the edge cases', () => {
    for (const raw of [...cases, '2001:db8::1:0:0:1', '2001:db8:0:0:1::1', '1:0:0:2::3', '1::2:0:0:3', '::ffff:102:304', '0:0:0:0:0:0:0:0', '2001:db8::0:1']) sameForm(raw);
  });

  it('gives what ipaddr.js gave, on 20,000 random forms', () => {
    const rand = mulberry32(7);
    const pick = <T,>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!;
    for (let n = 0; n < 20_000; n++) {
      const groups = Array.from({ length: 8 }, () => (rand() < 0.4 ? 0 : Math.floor(rand() * 65536)));
      let parts = groups.map((g) => pick([g.toString(16), g.toString(16).toUpperCase(), g.toString(16).padStart(4, '0')]));
      if (rand() < 0.3) parts = [...parts.slice(0, 6), `${Math.floor(rand() * 256)}.${Math.floor(rand() * 256)}.${Math.floor(rand() * 256)}.${Math.floor(rand() * 256)}`];
      let text = parts.join(':');
      if (rand() < 0.5) {
        // compress a random run, sometimes a wrong one
        const from = Math.floor(rand() * parts.length);
        const to = from + Math.floor(rand() * (parts.length - from + 1));
        text = `${parts.slice(0, from).join(':')}::${parts.slice(to).join(':')}`;
      }
      if (rand() < 0.1) text = text.replace(pick([':', '.', 'a', '0']), pick(['', '::', ':::', 'x', '.']));
      expect([text, normaliseAddress(text)]).toEqual([text, reference(text)]);
      sameForm(text);
      const canonical = reference(text);
      if (canonical === null || !canonical.includes(':')) continue;
      const tally = new Tally();
      tally.add({ kind: 'reject', address: canonical, time: 0 });
      for (const bits of [0, 16, 48, 56, 64, 80, 127, 128]) {
        expect(networkOf(canonical, bits)).toBe(`${ipaddr.IPv6.networkAddressFromCIDR(`${canonical}/${bits}`).toRFC5952String()}/${bits}`);
        // what summarise names a range by: the words of one of its addresses, the rest zero
        expect(`${wordsText(tally.prefixWords(0, bits, prefix), 0)}/${bits}`).toBe(networkOf(canonical, bits));
      }
    }
  });
});

describe('parseIp, parseRange, addressSortKey and cidrSortKey, built from the hand-read numbers', () => {
  /** What each gave when ipaddr.js parsed every text: the value, or the error it threw. */
  const outcome = (f: () => unknown) => {
    try {
      return { value: f() };
    } catch (e) {
      return { error: (e as Error).message };
    }
  };
  const oldIp = (a: string) => (a.includes(':') ? ipaddr.IPv6.parse(a) : ipaddr.IPv4.parse(a));
  const oldRange = (c: string) => (c.includes('/') ? (c.includes(':') ? ipaddr.IPv6.parseCIDR(c) : ipaddr.IPv4.parseCIDR(c)) : [oldIp(c), c.includes(':') ? 128 : 32]);
  const oldKey = (a: string) => {
    const bytes = oldIp(a).toByteArray();
    return (bytes.length === 4 ? '4' : '6') + Buffer.from(bytes).toString('hex');
  };
  const oldCidrKey = (c: string) => {
    const [ip, bits] = oldRange(c) as [{ toString(): string }, number];
    return oldKey(ip.toString()) + String(bits).padStart(3, '0');
  };
  const words = new Int32Array(4);
  const same = (text: string) => {
    expect([text, outcome(() => parseIp(text))]).toEqual([text, outcome(() => oldIp(text))]);
    expect([text, outcome(() => addressSortKey(text))]).toEqual([text, outcome(() => oldKey(text))]);
    // a block's sort key (IPv6: from the hand-read numbers) and a summary's (from its words)
    if (text.includes(':')) expect([text, outcome(() => cidrSortKey(text))]).toEqual([text, outcome(() => oldCidrKey(text))]);
    if (addressWords(text, words, 0)) expect([text, wordsSortKey(words, 0)]).toEqual([text, addressSortKey(wordsText(words, 0))]);
    const range = outcome(() => parseRange(text));
    expect([text, range]).toEqual([text, outcome(() => oldRange(text))]);
    if ('value' in range) expect(String(range.value)).toBe(String(oldRange(text)));
  };

  it('gives what ipaddr.js gave, on the edge cases', () => {
    const cases = [
      '192.0.2.7', '0.0.0.0', '255.255.255.255', '010.0.0.1', '10.0.0', '1.2.3.4.5', '0x7f.0.0.1', '256.1.1.1', '', '2001:db8::1', '::', '::ffff:192.0.2.1',
      '2001:DB8::1', 'fe80::1%eth0', '1::2::3', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7::8',
      // ipaddr.js reads `::a.b.c.d` as ::ffff:a.b.c.d (a mynetworks entry may be written so)
      '::1.2.3.4', '::0.0.0.0', '::192.0.2.7', '0::1.2.3.4', '::1:1.2.3.4', '10.0.0.0\n', '2001:db8::\n',
    ];
    for (const a of cases) {
      same(a);
      for (const length of ['0', '8', '24', '32', '33', '064', '128', '129', '1000', '', 'x', '-1', '24/24']) same(`${a}/${length}`);
    }
    same('/24');
  });

  it('gives what ipaddr.js gave, on 5,000 random forms', () => {
    const rand = mulberry32(11);
    for (let n = 0; n < 5_000; n++) {
      const v4 = rand() < 0.4;
      let text = v4
        ? Array.from({ length: 4 }, () => Math.floor(rand() * 300)).join('.')
        : Array.from({ length: 8 }, () => (rand() < 0.4 ? 0 : Math.floor(rand() * 65536)).toString(16)).join(':');
      if (!v4 && rand() < 0.4) text = text.replace(/(^|:)0(:0)+(:|$)/, '::');
      if (rand() < 0.5) text += `/${Math.floor(rand() * 140)}`;
      same(text);
    }
  });
});

describe('wordRangesOverlap', () => {
  it('says what rangesOverlap says, on 20,000 random pairs of ranges near each other', () => {
    const rand = mulberry32(5);
    const pick = <T,>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!;
    const near = (base: number[], v6: boolean) => base.map((x) => (rand() < 0.8 ? x : Math.floor(rand() * (v6 ? 65536 : 256))));
    let overlapping = 0;
    for (let n = 0; n < 20_000; n++) {
      const v6 = rand() < 0.6;
      const base = Array.from({ length: v6 ? 8 : 4 }, () => Math.floor(rand() * (v6 ? 65536 : 256)));
      const text = (parts: number[]) => {
        const bits = Math.floor(rand() * ((v6 ? 128 : 32) + 1));
        const address = v6 ? parts.map((p) => p.toString(16)).join(':') : parts.join('.');
        return rand() < 0.1 ? address : `${networkOf(address, bits).split('/')[0]}/${bits}`;
      };
      const a = text(near(base, v6));
      // now and then one of the other family, which never overlaps (not even ::ffff:0:0/96 and IPv4)
      const b = rand() < 0.05 ? (v6 ? pick(['0.0.0.0/0', '10.0.0.0/8', '1.2.3.4']) : pick(['::/0', '::ffff:0:0/96', '::ffff:a00:0/104'])) : text(near(base, v6));
      const [x, y] = [wordRange(a), wordRange(b)];
      expect([a, b, x !== null && y !== null]).toEqual([a, b, true]);
      const expected = rangesOverlap(parseRange(a), parseRange(b));
      expect([a, b, wordRangesOverlap(x!, y!)]).toEqual([a, b, expected]);
      if (expected) overlapping++;
    }
    expect(overlapping).toBeGreaterThan(2_000); // both answers are well tried
    expect(overlapping).toBeLessThan(18_000);
  });

  it('reads only what parseRange reads, with the same length', () => {
    for (const text of ['10.0.0.0/08', '10.1/8', '2001:db8::/0129', 'fe80::1%eth0/64', '2001:db8::/x', '::ffff:10.0.0.0/104']) {
      const range = wordRange(text);
      if (range === null) continue;
      expect([text, range.bits]).toEqual([text, parseRange(text)[1]]);
    }
    expect(wordRange('10.1/8')).toBeNull();
    expect(wordRange('::192.0.2.7/128')).toBeNull(); // (ipaddr.js reads it as ::ffff:192.0.2.7)
    expect(wordRange('2001:db8::/1000')).toBeNull();
  });
});
