/**
 * The nftables backend's pure parts: blocks -> disjoint elements with the time each has left,
 * the transaction of a change, the save file; and the plan of a switch to and from it. The
 * kernel's side is in test/system/nftables.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { changeScript, elementsOf, elementText, fullLoad, parseNftSave, renderNftSave, type Element, type SavedBlock } from '../../src/write/firewall/nftables.js';
import { buildPlan, type PlanOptions } from '../../src/write/plan.js';
import type { TargetFile } from '../../src/write/change.js';
import type { Block, Decision } from '../../src/decide/policy.js';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { FIXTURES } from '../helpers.js';

const NOW = Date.parse('2026-12-06T12:00:00Z');
const H = 3_600_000;
const texts = (blocks: SavedBlock[], now = NOW) => elementsOf(blocks, now).map((e) => `${e.set} ${elementText(e)} ${e.end === null ? 'never' : `${(e.end - now) / H}h`}`);
/** When the kernel stops dropping an address: the latest end of the elements over it, in either set; undefined: never dropped. */
function endAt(elements: Element[], ip: bigint): number | null | undefined {
  const over = elements.filter((e) => e.lo <= ip && ip <= e.hi);
  if (over.length === 0) return undefined;
  return over.some((e) => e.end === null) ? null : Math.max(...over.map((e) => e.end!));
}

describe('elements', () => {
  it('an address is one element of the hosts set; a prefix one of the ranges set; a range less an exception two intervals', () => {
    expect(texts([{ cidr: '192.0.2.7/32', until: NOW + H, exceptions: [] }])).toEqual(['hosts 192.0.2.7 1h']);
    expect(texts([{ cidr: '2001:db8:1:2::/64', until: null, exceptions: [] }])).toEqual(['ranges 2001:db8:1:2::/64 never']);
    expect(texts([{ cidr: '198.51.100.0/24', until: NOW + 24 * H, exceptions: ['198.51.100.7/32'] }])).toEqual(['ranges 198.51.100.0-198.51.100.6 24h', 'ranges 198.51.100.8-198.51.100.255 24h']);
  });

  it('a /24 over a /32 with another end: the address is dropped until the later one, the rest until the /24 ends', () => {
    const ip = 0xc0000209n; // 192.0.2.9
    // a 1 h ban inside a 1 d range: blocked for the day; a forever address inside a 1 h range: blocked forever
    const day = elementsOf([{ cidr: '192.0.2.0/24', until: NOW + 24 * H, exceptions: [] }, { cidr: '192.0.2.9/32', until: NOW + H, exceptions: [] }], NOW);
    expect(endAt(day, ip)).toBe(NOW + 24 * H);
    expect(endAt(day, ip + 1n)).toBe(NOW + 24 * H);
    const ever = elementsOf([{ cidr: '192.0.2.0/24', until: NOW + H, exceptions: [] }, { cidr: '192.0.2.9/32', until: null, exceptions: [] }], NOW);
    expect(endAt(ever, ip)).toBeNull();
    expect(endAt(ever, ip + 1n)).toBe(NOW + H);
    // two ranges overlapping: cut into disjoint intervals of the ranges set
    expect(texts([{ cidr: '192.0.2.0/24', until: NOW + H, exceptions: [] }, { cidr: '192.0.2.0/26', until: NOW + 2 * H, exceptions: [] }])).toEqual(['ranges 192.0.2.0/26 2h', 'ranges 192.0.2.64-192.0.2.255 1h']);
  });

  it('ended blocks are left out; neighbouring ranges with the same end are one element, with another end two', () => {
    expect(texts([{ cidr: '192.0.2.7/32', until: NOW - 1, exceptions: [] }])).toEqual([]);
    expect(texts([{ cidr: '192.0.2.0/25', until: NOW + H, exceptions: [] }, { cidr: '192.0.2.128/25', until: NOW + H, exceptions: [] }])).toEqual(['ranges 192.0.2.0/24 1h']);
    expect(texts([{ cidr: '192.0.2.0/25', until: NOW + H, exceptions: [] }, { cidr: '192.0.2.128/25', until: NOW + 2 * H, exceptions: [] }])).toEqual(['ranges 192.0.2.0/25 1h', 'ranges 192.0.2.128/25 2h']);
  });

  it('many random overlapping blocks: elements never overlap, and each address ends when its last block does', () => {
    let seed = 7;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    const blocks: SavedBlock[] = [];
    for (let i = 0; i < 300; i++) {
      const bits = [32, 30, 28, 24][rand(4)]!;
      const last = rand(256) & ~((1 << (32 - bits)) - 1) & 255;
      blocks.push({ cidr: `10.0.${rand(4)}.${last}/${bits}`, until: rand(5) === 0 ? null : NOW + (1 + rand(48)) * H, exceptions: [] });
    }
    const elements = elementsOf(blocks, NOW);
    for (const set of ['hosts', 'ranges']) {
      const mine = elements.filter((e) => e.set === set);
      for (let i = 1; i < mine.length; i++) expect(mine[i]!.lo > mine[i - 1]!.hi).toBe(true);
    }
    for (let a = 0; a < 1024; a++) {
      const ip = BigInt((10 << 24) | a);
      const covering = blocks.filter((b) => {
        const [base, bits] = b.cidr.split('/');
        const n = base!.split('.').reduce((v, o) => v * 256 + Number(o), 0);
        const size = 2 ** (32 - Number(bits));
        return Number(ip) >= n && Number(ip) < n + size;
      });
      expect(endAt(elements, ip)).toBe(covering.length === 0 ? undefined : covering.some((b) => b.until === null) ? null : Math.max(...covering.map((b) => b.until!)));
    }
  });
});

describe('transactions', () => {
  const a: SavedBlock = { cidr: '192.0.2.7/32', until: NOW + H, exceptions: [] };
  const b: SavedBlock = { cidr: '2001:db8::/64', until: null, exceptions: [] };

  it('nothing changed: no transaction at all', () => {
    expect(changeScript(elementsOf([a, b], NOW), elementsOf([a, b], NOW), NOW)).toBe('');
  });

  it('a new block is an add with its time left; one that goes is an add and a delete (an element the kernel expired does not fail it)', () => {
    const c: SavedBlock = { cidr: '203.0.113.5/32', until: NOW + 2 * H, exceptions: [] };
    const d: SavedBlock = { cidr: '2001:db8::9/128', until: null, exceptions: [] };
    expect(changeScript(elementsOf([a, d], NOW), elementsOf([a, c], NOW), NOW).split('\n')).toEqual([
      'add element inet smtpguard hosts6 { 2001:db8::9 }',
      'delete element inet smtpguard hosts6 { 2001:db8::9 }',
      'add element inet smtpguard hosts4 { 203.0.113.5 timeout 7200s }',
      '',
    ]);
  });

  it('a range that changes its shape (an exception cut into a /24) refills the range set: nft refuses an add overlapping its own delete', () => {
    const range: SavedBlock = { cidr: '203.0.113.0/24', until: null, exceptions: [] };
    const script = changeScript(elementsOf([range, a], NOW), elementsOf([{ ...range, exceptions: ['203.0.113.7/32'] }, a], NOW), NOW);
    expect(script.split('\n')).toEqual(['flush set inet smtpguard ranges4', 'add element inet smtpguard ranges4 { 203.0.113.0-203.0.113.6, 203.0.113.8-203.0.113.255 }', '']);
  });

  it('a range set that loses one of 300 elements is flushed and filled again in the same transaction', () => {
    const ranges = Array.from({ length: 300 }, (_, i): SavedBlock => ({ cidr: `10.${i >> 8}.${i & 255}.0/25`, until: null, exceptions: [] }));
    const script = changeScript(elementsOf(ranges, NOW), elementsOf(ranges.slice(1), NOW), NOW);
    expect(script.split('\n')[0]).toBe('flush set inet smtpguard ranges4');
    expect(script).not.toContain('delete element');
    expect(script.match(/\/25/g)).toHaveLength(299);
  });

  it('a ban extended from 1 h to 1 d is a delete and an add in one transaction (re-adding would keep the old timeout)', () => {
    const longer = { ...a, until: NOW + 24 * H };
    expect(changeScript(elementsOf([a], NOW), elementsOf([longer], NOW + 60_000), NOW + 60_000).split('\n')).toEqual([
      'add element inet smtpguard hosts4 { 192.0.2.7 }',
      'delete element inet smtpguard hosts4 { 192.0.2.7 }',
      'add element inet smtpguard hosts4 { 192.0.2.7 timeout 86340s }',
      '',
    ]);
  });

  it('the whole table: made anew whether or not it is there, a drop chain on input and forward at filter - 1, the ports, the log prefix', () => {
    const text = fullLoad(elementsOf([a, b], NOW), [25, 2525], NOW);
    expect(text.split('\n').slice(0, 2)).toEqual(['add table inet smtpguard', 'delete table inet smtpguard']);
    expect(text).toContain('  set smtp_ports { type inet_service; elements = { 25, 2525 }; }');
    expect(text).toContain('  set ranges4 { type ipv4_addr; flags interval, timeout; counter; }');
    expect(text).toContain('    type filter hook input priority filter - 1; policy accept;\n    ct state new tcp dport @smtp_ports ip saddr @hosts4 counter jump block');
    expect(text).toContain('    type filter hook forward priority filter - 1; policy accept;');
    expect(text).toContain('limit rate 3/minute burst 10 packets log prefix "[SMTPGUARD BLOCK] "');
    expect(text).toContain('add element inet smtpguard hosts4 { 192.0.2.7 timeout 3600s }\nadd element inet smtpguard ranges6 { 2001:db8::/64 }\n');
  });
});

describe('the save file', () => {
  const block = (cidr: string, extra: Partial<Block> = {}): Block => ({ cidr, family: cidr.includes(':') ? 6 : 4, addresses: [], addressCount: 1, total: 5, reason: 'host', ...extra });

  it('records each block with its end (ban, fleet decision, or never) and exceptions, and reads back', () => {
    const text = renderNftSave([block('192.0.2.7/32', { until: '2026-12-07T12:00:00.000Z' }), block('198.51.100.0/24', { until: null, exceptions: ['198.51.100.7/32'] }), block('203.0.113.9/32', { fleet: { scenario: 's', origin: 'CAPI', until: '2026-12-08T00:00:00.000Z' } })], [25, 465, 587]);
    expect(text.split('\n').slice(1)).toEqual(['ports 25,465,587', 'block 192.0.2.7/32 until=2026-12-07T12:00:00.000Z', 'block 198.51.100.0/24 until=never except=198.51.100.7/32', 'block 203.0.113.9/32 until=2026-12-08T00:00:00.000Z', '']);
    expect(parseNftSave(text, 'x')).toEqual({
      ports: [25, 465, 587],
      blocks: [
        { cidr: '192.0.2.7/32', until: Date.parse('2026-12-07T12:00:00Z'), exceptions: [] },
        { cidr: '198.51.100.0/24', until: null, exceptions: ['198.51.100.7/32'] },
        { cidr: '203.0.113.9/32', until: Date.parse('2026-12-08T00:00:00Z'), exceptions: [] },
      ],
    });
  });

  it('a line that is not a block is an error naming the file, the line and the fix', () => {
    expect(() => parseNftSave('ports 25\nblock 192.0.2.300/32 until=never\n', '/var/lib/smtpguard/nftables.save')).toThrow(/^\/var\/lib\/smtpguard\/nftables\.save line 2 is not a block of the nftables save file: block 192\.0\.2\.300\/32 until=never$/);
  });
});

describe('the plan of a switch', () => {
  const decision: Decision = { blocks: [{ cidr: '192.0.2.7/32', family: 4, addresses: ['192.0.2.7'], addressCount: 1, total: 5, reason: 'host', until: '2026-12-07T12:00:00.000Z' }], spared: [], ignored: [], overLimit: [] } as unknown as Decision;
  const rules = readFileSync(path.join(FIXTURES, 'debian12-before.rules'), 'utf8');
  const rules6 = readFileSync(path.join(FIXTURES, 'debian12-before6.rules'), 'utf8')
    .replace('# End required lines\n', '# End required lines\n:ufw6-smtpguard - [0:0]\n:ufw6-smtpguard-log - [0:0]\n')
    .replace(/(-A ufw6-before-input -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n)/, '$1# BEGIN smtpguard\n# END smtpguard\n');
  const options: PlanOptions = { ufwChain: 'ufw-smtpguard', ufw6Chain: 'ufw6-smtpguard', mapType: 'cidr', rejectText: 'no', postfixConfigDir: null, reload: true, stateDir: '/s', now: NOW };
  const map: TargetFile = { role: 'map', path: '/m', text: '# BEGIN smtpguard\n# END smtpguard\n' };

  it('rules -> nftables: the table first, then the ufw section emptied; nftables -> rules: the section, then the table deleted', () => {
    const installed = rules.replace('# End required lines\n', '# End required lines\n:ufw-smtpguard - [0:0]\n:ufw-smtpguard-log - [0:0]\n').replace(/(-A ufw-before-input -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n)/, '$1# BEGIN smtpguard\n-A ufw-smtpguard -s 192.0.2.7/32 -j ufw-smtpguard-log\n# END smtpguard\n');
    const targets: TargetFile[] = [map, { role: 'ufw4', path: '/u4', text: installed }, { role: 'ufw6', path: '/u6', text: rules6 }, { role: 'nft', path: '/s/nftables.save', text: null }];
    const toNft = buildPlan(decision, targets, { ...options, firewall: 'nftables' });
    expect(toNft.firewall.map((p) => [p.mode, p.active])).toEqual([['nftables', true], ['rules', false]]);
    expect(toNft.commands.filter((c) => c[0] !== 'postfix' && c[0] !== 'ss')).toEqual([['nft', '-f', '/s/nftables.smtpguard-new'], ['ufw', 'reload']]);
    expect(toNft.changes.find((c) => c.role === 'ufw4')!.after).toContain('# BEGIN smtpguard\n# END smtpguard\n');
    expect(toNft.summary.added).toBe(0); // it was in force before, through ufw

    const saved = renderNftSave(decision.blocks, [25, 465, 587]);
    const emptied = toNft.changes.find((c) => c.role === 'ufw4')!.after;
    const back = buildPlan(decision, [map, { role: 'ufw4', path: '/u4', text: emptied }, { role: 'ufw6', path: '/u6', text: rules6 }, { role: 'nft', path: '/s/nftables.save', text: saved }], { ...options, firewall: 'rules' });
    expect(back.firewall.map((p) => [p.mode, p.active])).toEqual([['rules', true], ['nftables', false]]);
    expect(back.commands.filter((c) => c[0] !== 'postfix' && c[0] !== 'ss')).toEqual([['ufw', 'reload'], ['nft', 'delete', 'table', 'inet', 'smtpguard']]);
    expect(back.summary.added).toBe(0);
  });

  it('a ban renewed by new events (a later end, the same blocks) is carried out but quiet: no news for the cron line', () => {
    const saved = renderNftSave(decision.blocks, [25, 465, 587]);
    const renewed = { ...decision, blocks: [{ ...decision.blocks[0]!, until: '2026-12-07T13:00:00.000Z' }] };
    const targets: TargetFile[] = [{ ...map, text: `# BEGIN smtpguard\n192.0.2.7/32 REJECT no\n# END smtpguard\n` }, { role: 'nft', path: '/s/nftables.save', text: saved }];
    const plan = buildPlan(renewed, targets, { ...options, firewall: 'nftables' });
    expect(plan.changes.map((c) => c.role)).toEqual(['nft']);
    expect(plan.commands).toEqual([['nft', '-f', '/s/nftables.smtpguard-new']]);
    expect(plan.quiet).toBe(true);
    const added = buildPlan({ ...renewed, blocks: [...renewed.blocks, { ...renewed.blocks[0]!, cidr: '192.0.2.8/32' }] }, targets, { ...options, firewall: 'nftables' });
    expect(added.quiet).toBe(false);
  });

  it('nothing changed: no file, no command', () => {
    const saved = renderNftSave(decision.blocks, [25, 465, 587]);
    const plan = buildPlan(decision, [{ ...map, text: `# BEGIN smtpguard\n192.0.2.7/32 REJECT no\n# END smtpguard\n` }, { role: 'ufw4', path: '/u4', text: null }, { role: 'ufw6', path: '/u6', text: rules6 }, { role: 'nft', path: '/s/nftables.save', text: saved }], { ...options, firewall: 'nftables' });
    expect(plan.changes).toEqual([]);
    expect(plan.commands).toEqual([]);
  });
});
