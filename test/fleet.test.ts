import { describe, expect, it } from 'vitest';
import { banEnd, mergeFleetBlocks, unblockedRanges, type FleetDecision } from '../src/decide/fleet.js';
import type { Override } from '../src/decide/overrides.js';
import type { Block, Decision, NamedRange } from '../src/decide/policy.js';
import { renderAccessMap } from '../src/write/access-map.js';
import { renderUfwRules } from '../src/write/firewall/rules.js';

const NOW = Date.parse('2026-11-23T12:00:00Z');
const HOUR = 3600e3;
const NEVER: NamedRange[] = [
  { cidr: '127.0.0.0/8', source: 'loopback' },
  { cidr: '::1/128', source: 'loopback' },
  { cidr: '100.64.0.1', source: 'this host' },
  { cidr: '10.0.0.0/8', source: 'mynetworks' },
  { cidr: '192.0.2.0/25', source: 'allow' },
];
const local = (cidr: string, reason: Block['reason'] = 'host'): Block => ({ cidr, family: cidr.includes(':') ? 6 : 4, addresses: [cidr.replace(/\/\d+$/, '')], addressCount: 1, total: 12, reason });
const decision = (...blocks: Block[]): Decision => ({ blocks, spared: [], ignored: [], overLimit: [] });
const pulled = (cidr: string, extra: Partial<FleetDecision> = {}): FleetDecision => ({ cidr, family: cidr.includes(':') ? 6 : 4, scenario: 'smtpguard/host', origin: 'crowdsec', until: NOW + 2 * HOUR, ...extra });
const merge = (d: Decision, p: FleetDecision[], options: { ownBans?: string[]; maxBlocks?: number } = {}) =>
  mergeFleetBlocks(d, p, { neverBlock: NEVER, ownBans: new Set(options.ownBans ?? []), now: NOW, maxBlocks: options.maxBlocks ?? 0 });

describe('fleet blocks: this host has the last word', () => {
  it('a pulled ban becomes a block with reason fleet, its scenario and origin kept', () => {
    const merged = merge(decision(local('198.51.100.1/32')), [pulled('203.0.113.9/32')]);
    expect(merged.blocks).toEqual([
      local('198.51.100.1/32'),
      { cidr: '203.0.113.9/32', family: 4, addresses: ['203.0.113.9'], addressCount: 1, total: 0, reason: 'fleet', until: new Date(NOW + 2 * HOUR).toISOString(), fleet: { scenario: 'smtpguard/host', origin: 'crowdsec', until: new Date(NOW + 2 * HOUR).toISOString() } },
    ]);
  });

  it.each([
    ['loopback', '127.0.0.1/32', 'loopback 127.0.0.0/8'],
    ['this host', '100.64.0.1/32', 'this host 100.64.0.1'],
    ['a mynetworks address', '10.1.2.3/32', 'mynetworks 10.0.0.0/8'],
    ['an allowed address', '192.0.2.5/32', 'allow 192.0.2.0/25'],
    ['a range holding an allowed address', '192.0.2.0/24', 'allow 192.0.2.0/25'],
    ['a range holding this host', '100.64.0.0/16', 'this host 100.64.0.1'],
    ['a range holding IPv6 loopback', '::/16', 'loopback ::1/128'],
  ])('%s is never blocked, not even in part, and says why', (_name, cidr, label) => {
    const merged = merge(decision(), [pulled(cidr)]);
    expect(merged.blocks).toEqual([]);
    expect(merged.ignored).toEqual([{ address: cidr, total: 0, reason: `${label} (fleet decision smtpguard/host from crowdsec)` }]);
  });

  it('an address unblocked here (smtpguard unblock) is not blocked by the fleet while the unblock lasts', () => {
    const unblock = (cidr: string, until: string | null): Override => ({ cidr, kind: 'unblock', until, comment: null, created: '2026-11-23T00:00:00Z' });
    const overrides = [unblock('203.0.113.9/32', null), unblock('203.0.113.10/32', '2026-11-23T11:00:00Z'), { ...unblock('203.0.113.11/32', null), kind: 'block' as const }];
    const never = unblockedRanges(overrides, new Date(NOW));
    expect(never).toEqual([{ cidr: '203.0.113.9/32', source: 'unblocked for good' }]);
    const merged = mergeFleetBlocks(decision(), [pulled('203.0.113.9/32'), pulled('203.0.113.10/32')], { neverBlock: [...NEVER, ...never], ownBans: new Set(), now: NOW, maxBlocks: 0 });
    expect(merged.blocks.map((b) => b.cidr)).toEqual(['203.0.113.10/32']); // its unblock ended
    expect(merged.ignored).toEqual([{ address: '203.0.113.9/32', total: 0, reason: 'unblocked for good 203.0.113.9/32 (fleet decision smtpguard/host from crowdsec)' }]);
  });

  it('a never-block range written as Postfix accepts it (10.0.0.0/08) still holds off the fleet', () => {
    const merged = mergeFleetBlocks(decision(), [pulled('10.1.2.3/32'), pulled('11.1.2.3/32')], { neverBlock: [{ cidr: '10.0.0.0/08', source: 'mynetworks' }], ownBans: new Set(), now: NOW, maxBlocks: 0 });
    expect(merged.blocks.map((b) => b.cidr)).toEqual(['11.1.2.3/32']);
    expect(merged.ignored.map((i) => i.address)).toEqual(['10.1.2.3/32']);
  });

  it('the next address outside an allowed range is blocked', () => {
    expect(merge(decision(), [pulled('192.0.2.128/32')]).blocks.map((b) => b.cidr)).toEqual(['192.0.2.128/32']);
  });

  it("this host's own pushed bans are not pulled back as second blocks", () => {
    const mine = decision(local('203.0.113.9/32'));
    expect(merge(mine, [pulled('203.0.113.9/32')], { ownBans: ['203.0.113.9/32'] }).blocks).toEqual([local('203.0.113.9/32')]);
    // even after the local block ended, while the pushed ban still runs
    expect(merge(decision(), [pulled('203.0.113.9/32')], { ownBans: ['203.0.113.9/32'] }).blocks).toEqual([]);
  });

  it('a pulled ban a local block already covers adds nothing; a wider pulled range stays beside a local host', () => {
    expect(merge(decision(local('198.51.100.0/24', 'subnet')), [pulled('198.51.100.7/32')]).blocks.map((b) => b.cidr)).toEqual(['198.51.100.0/24']);
    expect(merge(decision(local('198.51.100.7/32')), [pulled('198.51.100.0/24')]).blocks.map((b) => `${b.cidr} ${b.reason}`)).toEqual(['198.51.100.0/24 fleet', '198.51.100.7/32 host']);
  });

  it('one block per range: the longest-running decision gives its scenario; ended ones are ignored', () => {
    const merged = merge(decision(), [pulled('203.0.113.9/32', { scenario: 'smtpguard/host' }), pulled('203.0.113.9/32', { scenario: 'smtpguard/subnet', until: NOW + 5 * HOUR }), pulled('203.0.113.10/32', { until: NOW - 1 })]);
    expect(merged.blocks.map((b) => `${b.cidr} ${b.fleet?.scenario}`)).toEqual(['203.0.113.9/32 smtpguard/subnet']);
  });

  it('fleet blocks fill only the room --max-blocks leaves: the local ones come first', () => {
    const merged = merge(decision(local('198.51.100.1/32'), local('198.51.100.2/32')), [pulled('203.0.113.1/32', { until: NOW + HOUR }), pulled('203.0.113.2/32', { until: NOW + 3 * HOUR })], { maxBlocks: 3 });
    expect(merged.blocks.map((b) => b.cidr)).toEqual(['198.51.100.1/32', '198.51.100.2/32', '203.0.113.2/32']);
    expect(merged.overLimit.map((b) => b.cidr)).toEqual(['203.0.113.1/32']);
  });

  it('fleet blocks render like any block: hosts in an indexed map, ranges in the firewall', () => {
    const merged = merge(decision(), [pulled('203.0.113.9/32'), pulled('2001:db8:7::/48', { family: 6 }), pulled('198.51.100.0/24')]);
    expect(renderUfwRules(merged.blocks, 4, 'c')).toEqual(['-A c -s 198.51.100.0/24 -j c-log', '-A c -s 203.0.113.9/32 -j c-log']);
    expect(renderUfwRules(merged.blocks, 6, 'c')).toEqual(['-A c -s 2001:db8:7::/48 -j c-log']);
    expect(renderAccessMap(merged.blocks, 'hash', 'X')).toEqual(['198.51.100 REJECT X', '203.0.113.9 REJECT X']);
    expect(renderAccessMap(merged.blocks, 'cidr', 'X')).toEqual(['198.51.100.0/24 REJECT X', '203.0.113.9/32 REJECT X', '2001:db8:7::/48 REJECT X']);
  });
});

describe('banEnd: how long a pushed decision runs while ban times do not exist', () => {
  it.each([
    ['last event 1 h ago, 24 h window', NOW - HOUR, 24 * HOUR, NOW + 23 * HOUR],
    ['last event just now', NOW, 24 * HOUR, NOW + 24 * HOUR],
    ['last event already out of the window', NOW - 25 * HOUR, 24 * HOUR, NOW],
    ['--window all', NOW - 100 * HOUR, Infinity, NOW + 24 * HOUR],
  ])('%s', (_name, lastSeen, window, expected) => expect(banEnd(lastSeen, NOW, window)).toBe(expected));
});
