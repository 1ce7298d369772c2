/**
 * Exceptions of ranges blocked whole (issue 20) where other blocks meet them: every source of
 * blocks (the policy, bans, manual blocks, the fleet) and every backend agree on what is blocked.
 * Found by an independent review of the first version.
 */
import { describe, expect, it } from 'vitest';
import { applyBans, type BanOptions, type BanRecord } from '../src/decide/bans.js';
import { applyOverrides, type Override } from '../src/decide/overrides.js';
import { settleExceptions, type Block, type Decision } from '../src/decide/policy.js';
import { renderAccessMap } from '../src/write/access-map.js';
import { renderSaveFile } from '../src/write/firewall/ipset.js';
import { renderUfwRules } from '../src/write/firewall/rules.js';

const H = 3_600_000;
const NOW = Date.parse('2026-11-23T12:00:00Z');
const OPTIONS: BanOptions = { window: 24 * H, banTime: 24 * H, banFactor: 2, banTimeMax: 720 * H, recidiveWindow: 720 * H };
const decision = (...blocks: Block[]): Decision => ({ blocks, spared: [], ignored: [], overLimit: [] });
const range = (cidr: string, exceptions: string[], extra: Partial<Block> = {}): Block => ({ cidr, family: cidr.includes(':') ? 6 : 4, addresses: [], addressCount: 5, total: 50, reason: cidr.includes(':') ? 'prefix' : 'subnet', lastSeen: NOW - H, exceptions, ...extra });
const host = (address: string, extra: Partial<Block> = {}): Block => ({ cidr: `${address}/${address.includes(':') ? 128 : 32}`, family: address.includes(':') ? 6 : 4, addresses: [address], addressCount: 1, total: 12, reason: 'host', lastSeen: NOW - H, ...extra });

describe('settleExceptions', () => {
  it('a block inside an exception ends it: the user now guesses as others, and is blocked on every backend', () => {
    const settled = settleExceptions(decision(range('198.51.100.0/24', ['198.51.100.7/32', '198.51.100.8/32']), host('198.51.100.7')));
    expect(settled.blocks.map((b) => [b.cidr, b.exceptions])).toEqual([['198.51.100.0/24', ['198.51.100.8/32']], ['198.51.100.7/32', undefined]]);
    expect(renderUfwRules(settled.blocks, 4, 'c')).toEqual(['-A c -s 198.51.100.8/32 -j RETURN', '-A c -s 198.51.100.0/24 -j c-log', '-A c -s 198.51.100.7/32 -j c-log']);
    expect(renderAccessMap(settled.blocks, 'hash', 'no')).toEqual(['198.51.100.8 DUNNO', '198.51.100 REJECT no', '198.51.100.7 REJECT no']);
  });

  it('a wider block without the exception ends it (an ipset nomatch would hold for the whole set)', () => {
    const fleet: Block = { ...host('198.51.100.0'), cidr: '198.51.100.0/23', reason: 'fleet', addresses: [] };
    const settled = settleExceptions(decision(fleet, range('198.51.100.0/24', ['198.51.100.7/32'])));
    expect(settled.blocks.find((b) => b.cidr === '198.51.100.0/24')?.exceptions).toBeUndefined();
    expect(renderSaveFile(settled.blocks)).not.toContain('nomatch');
  });

  it('nested ranges that both exempt a login keep it; the save file names it once', () => {
    const both = decision(range('2001:db8:1::/48', ['2001:db8:1:5::7/128'], { reason: 'subnet6' }), range('2001:db8:1:5::/64', ['2001:db8:1:5::7/128']));
    const settled = settleExceptions(both);
    expect(settled.blocks.map((b) => b.exceptions)).toEqual([['2001:db8:1:5::7/128'], ['2001:db8:1:5::7/128']]);
    expect(renderSaveFile(settled.blocks).match(/nomatch/g)).toHaveLength(1);
  });
});

describe('bans and manual blocks meet exceptions', () => {
  it('a kept range ban does not swallow a new block inside its exception; the exception ends', () => {
    const kept: BanRecord = { cidr: '198.51.100.0/24', family: 4, reason: 'subnet', firstBlocked: NOW - 20 * H, lastEvent: NOW - 20 * H, until: NOW + 4 * H, times: 1, banMs: 24 * H, addresses: [], exceptions: ['198.51.100.7/32'] };
    const r = applyBans(decision(host('198.51.100.7')), [kept], NOW, OPTIONS, () => false);
    expect(settleExceptions(r.decision).blocks.map((b) => [b.cidr, b.exceptions])).toEqual([['198.51.100.0/24', undefined], ['198.51.100.7/32', undefined]]);
  });

  it('a manual block of an exception is a block: smtpguard block 198.51.100.7 inside a /24 that exempted it', () => {
    const manual: Override = { cidr: '198.51.100.7/32', kind: 'block', until: null, comment: null, created: new Date(NOW).toISOString() };
    const d = applyOverrides(decision(range('198.51.100.0/24', ['198.51.100.7/32'])), [manual], { now: new Date(NOW), neverBlock: [], totals: new Map() });
    expect(settleExceptions(d).blocks.map((b) => [b.cidr, b.reason, b.exceptions])).toEqual([['198.51.100.0/24', 'subnet', undefined], ['198.51.100.7/32', 'manual', undefined]]);
  });

  it('a block that rests on message rejects stays so while its ban keeps it (never pushed later)', () => {
    const first = applyBans(decision(host('203.0.113.9', { messageLevel: true })), [], NOW, OPTIONS, () => false);
    const later = applyBans(decision(), first.records, NOW + 20 * H, OPTIONS, () => false);
    expect(later.decision.blocks).toMatchObject([{ cidr: '203.0.113.9/32', messageLevel: true }]);
  });
});
