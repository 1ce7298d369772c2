import { describe, expect, it } from 'vitest';
import { parseRange, rangesOverlap } from '../src/address.js';
import { applyBans, ordinal, type BanOptions, type BanRecord } from '../src/decide/bans.js';
import type { Block, Decision } from '../src/decide/policy.js';

const H = 3_600_000;
const D = 24 * H;
const T0 = Date.parse('2026-11-01T00:00:00Z');
const OPTIONS: BanOptions = { window: D, banTime: D, banFactor: 2, banTimeMax: 30 * D, recidiveWindow: 30 * D };

const block = (cidr: string, lastSeen: number, reason: Block['reason'] = 'host'): Block => ({
  cidr, family: cidr.includes(':') ? 6 : 4, addresses: [cidr.split('/')[0]!], addressCount: 1, total: 10, reason, lastSeen,
});
const decision = (...blocks: Block[]): Decision => ({ blocks, spared: [], ignored: [], overLimit: [] });
const nothingAllowed = () => false;

/** Runs the bans at `now` over `blocks` decided by the window, carrying the records along. */
function step(records: BanRecord[], now: number, blocks: Block[], options: Partial<BanOptions> = {}, allowed: (cidr: string) => boolean = () => false) {
  return applyBans(decision(...blocks), records, now, { ...OPTIONS, ...options }, (range) => (allowed(`${range[0].toString()}/${range[1]}`) ? true : nothingAllowed()));
}
const cidrs = (r: ReturnType<typeof step>) => r.decision.blocks.map((b) => [b.cidr, b.until, b.times]);

describe('ban times', () => {
  it('a block stays --ban-time after its last event although the window no longer shows it, then ends, remembered', () => {
    const first = step([], T0, [block('203.0.113.5/32', T0 - H)], { window: 2 * H, banTime: D });
    expect(cidrs(first)).toEqual([['203.0.113.5/32', new Date(T0 - H + D).toISOString(), 1]]);
    expect(first.started).toEqual([{ cidr: '203.0.113.5/32', times: 1, banMs: D }]);
    // 10 h later: the 2 h window is empty, the ban holds
    const later = step(first.records, T0 + 10 * H, [], { window: 2 * H });
    expect(cidrs(later)).toEqual([['203.0.113.5/32', new Date(T0 - H + D).toISOString(), 1]]);
    expect(later.started).toEqual([]);
    // past its end: gone, but remembered
    const after = step(later.records, T0 + D, [], { window: 2 * H });
    expect(after.decision.blocks).toEqual([]);
    expect(after.records.map((r) => [r.cidr, r.times])).toEqual([['203.0.113.5/32', 1]]);
  });

  it('decided again within --recidive-window: the previous ban x --ban-factor; up to --ban-time-max', () => {
    let records: BanRecord[] = [];
    const lengths: Array<number | null> = [];
    let now = T0;
    for (let i = 0; i < 6; i++) {
      const r = step(records, now, [block('203.0.113.5/32', now)], { banTimeMax: 5 * D });
      lengths.push(r.started[0]?.banMs ?? null);
      records = r.records;
      now = Date.parse(r.decision.blocks[0]!.until!) + H; // it comes back an hour after each ban ends
      records = step(records, now, []).records;
    }
    expect(lengths).toEqual([D, 2 * D, 4 * D, 5 * D, 5 * D, 5 * D]);
    expect(records[0]!.times).toBe(6);
  });

  it('after --recidive-window without offending, it starts over (and is forgotten)', () => {
    const first = step([], T0, [block('203.0.113.5/32', T0)]);
    const ended = step(first.records, T0 + 31 * D + H, []);
    expect(ended.records).toEqual([]);
    expect(step(ended.records, T0 + 32 * D, [block('203.0.113.5/32', T0 + 32 * D)]).started).toEqual([{ cidr: '203.0.113.5/32', times: 1, banMs: D }]);
  });

  it('--ban-time forever never ends; --ban-time-max forever lets it grow without a cap', () => {
    const forever = step([], T0, [block('203.0.113.5/32', T0)], { banTime: Infinity, banTimeMax: Infinity });
    expect(cidrs(forever)).toEqual([['203.0.113.5/32', null, 1]]);
    expect(cidrs(step(forever.records, T0 + 400 * D, []))).toEqual([['203.0.113.5/32', null, 1]]);
    let records: BanRecord[] = [];
    let now = T0;
    for (let i = 0; i < 7; i++) {
      const r = step(records, now, [block('203.0.113.5/32', now)], { banTimeMax: Infinity, recidiveWindow: 365 * D });
      records = r.records;
      now = Date.parse(r.decision.blocks[0]!.until!) + H;
    }
    expect(records[0]!.banMs).toBe(64 * D);
  });

  it('a /24 takes the history of the addresses in it', () => {
    const host = step([], T0, [block('198.51.100.7/32', T0)]);
    const ended = step(host.records, T0 + 2 * D, []);
    const subnet = step(ended.records, T0 + 3 * D, [block('198.51.100.0/24', T0 + 3 * D, 'subnet')]);
    expect(subnet.started).toEqual([{ cidr: '198.51.100.0/24', times: 2, banMs: 2 * D }]);
    expect(subnet.records.map((r) => r.cidr)).toEqual(['198.51.100.0/24']);
    // a host decided inside the /24 while it is banned renews the /24, not a /32 of its own
    const renewed = step(subnet.records, T0 + 4 * D, [block('198.51.100.9/32', T0 + 4 * D)]);
    expect(cidrs(renewed)).toEqual([['198.51.100.0/24', new Date(T0 + 4 * D + 2 * D).toISOString(), 2]]);
  });

  it('a never-block rule wins over a running ban (an address allowed since is unblocked and forgotten)', () => {
    const first = step([], T0, [block('192.0.2.7/32', T0)]);
    const allowed = step(first.records, T0 + H, [], {}, (cidr) => rangesOverlap(parseRange(cidr), parseRange('192.0.2.0/24')));
    expect(allowed.decision.blocks).toEqual([]);
    expect(allowed.records).toEqual([]);
  });

  it('an allow rule added over a running /24 ban keeps its other offenders banned one by one, and a decided host inside it', () => {
    const subnet = { ...block('192.0.2.0/24', T0, 'subnet'), addresses: ['192.0.2.5', '192.0.2.9', '192.0.2.11'] };
    const first = step([], T0, [subnet]);
    const allowed = (cidr: string) => rangesOverlap(parseRange(cidr), parseRange('192.0.2.5/32'));
    const later = step(first.records, T0 + H, [block('192.0.2.9/32', T0 + H)], {}, allowed);
    expect(later.decision.blocks.map((b) => b.cidr)).toEqual(['192.0.2.9/32', '192.0.2.11/32']);
    expect(later.records.map((r) => r.cidr)).toEqual(['192.0.2.9/32', '192.0.2.11/32']);
  });

  it('unblock ends a ban (one address of a /24: the others stay banned); a return is a first offence, not a repeat', () => {
    const subnet = { ...block('192.0.2.0/24', T0, 'subnet'), addresses: ['192.0.2.5', '192.0.2.9'] };
    const first = step([], T0, [subnet]);
    const unblocked = (range: [unknown, number]) => rangesOverlap(range as never, parseRange('192.0.2.5/32'));
    const r = applyBans(decision(), first.records, T0 + H, OPTIONS, () => false, unblocked as never);
    expect(r.decision.blocks.map((b) => b.cidr)).toEqual(['192.0.2.9/32']);
    const back = applyBans(decision(block('192.0.2.5/32', T0 + 2 * H)), r.records, T0 + 2 * H, OPTIONS, () => false);
    expect(back.started).toEqual([{ cidr: '192.0.2.5/32', times: 1, banMs: D }]);
  });

  it('--window all: a block never ends', () => {
    expect(cidrs(step([], T0, [block('192.0.2.7/32', T0)], { window: Infinity }))).toEqual([['192.0.2.7/32', null, 1]]);
  });

  it('ordinals', () => {
    expect([1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111].map(ordinal)).toEqual(['1st', '2nd', '3rd', '4th', '11th', '12th', '13th', '21st', '22nd', '101st', '111th']);
  });
});

describe('bans.json read back', () => {
  it('a record whose CIDR is not canonical (no length, host bits) is a warning and a fresh start, never a crash in the index', async () => {
    const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const path = await import('node:path');
    const { readBans } = await import('../src/store/bans.js');
    const dir = mkdtempSync(path.join(tmpdir(), 'smtpguard-bans-'));
    try {
      const record = { cidr: '192.0.2.0/24', family: 4, reason: 'subnet', firstBlocked: 1, lastEvent: 2, until: 3, times: 1, banMs: 1 };
      for (const [cidr, ok] of [['192.0.2.0/24', true], ['192.0.2.7', false], ['192.0.2.5/24', false], ['2001:db8:0:0::/64', false], ['2001:db8::/64', true]] as const) {
        writeFileSync(path.join(dir, 'bans.json'), JSON.stringify({ version: 1, bans: [{ ...record, cidr, family: cidr.includes(':') ? 6 : 4 }] }));
        const warnings: string[] = [];
        const bans = await readBans(dir, (w) => warnings.push(w));
        expect(bans.length).toBe(ok ? 1 : 0);
        expect(warnings.length).toBe(ok ? 0 : 1);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a running ban inside a manual block that ends first stays a block of its own (a firewall that ends blocks by itself must not open it early); inside one that ends later, or never, it is covered', () => {
    const first = step([], T0, [block('192.0.2.7/32', T0 - H)], { banTime: 7 * D });
    const manual = (until: string | undefined): Block => ({ ...block('192.0.2.0/24', T0, 'manual'), ...(until === undefined ? {} : { until }) });
    const short = step(first.records, T0 + D + H, [manual(new Date(T0 + D + 2 * H).toISOString())], { banTime: 7 * D });
    expect(short.decision.blocks.map((b) => b.cidr)).toEqual(['192.0.2.0/24', '192.0.2.7/32']);
    const long = step(first.records, T0 + D + H, [manual(new Date(T0 + 30 * D).toISOString())], { banTime: 7 * D });
    expect(long.decision.blocks.map((b) => b.cidr)).toEqual(['192.0.2.0/24']);
    const forever = step(first.records, T0 + D + H, [manual(undefined)], { banTime: 7 * D });
    expect(forever.decision.blocks.map((b) => b.cidr)).toEqual(['192.0.2.0/24']);
  });
});
