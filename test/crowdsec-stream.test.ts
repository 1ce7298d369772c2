import { describe, expect, it } from 'vitest';
import {
  applyStreamAnswer,
  canonicalCidr,
  filterKey,
  liveDecisions,
  needsStartup,
  parseGoDuration,
  parseStreamState,
  RESYNC_MS,
  type LapiDecision,
  type StreamFilter,
} from '../src/crowdsec/stream.js';

const URL = 'http://127.0.0.1:8080';
const NOW = Date.parse('2026-11-23T12:00:00Z');
const DEFAULT: StreamFilter = { scenarios: ['smtpguard/'], origins: [] };
const ctx = (startup: boolean, now = NOW, filter = DEFAULT) => ({ startup, url: URL, filter, now });
const ban = (id: number, value: string, extra: Partial<LapiDecision> = {}): LapiDecision => ({
  id,
  duration: '2h',
  origin: 'crowdsec',
  scenario: 'smtpguard/host',
  scope: value.includes('/') ? 'Range' : 'Ip',
  type: 'ban',
  value,
  ...extra,
});

describe('parseGoDuration', () => {
  it.each([
    ['1h59m56.056929935s', 7196056.929935],
    ['3600s', 3600e3],
    ['-1.030113346s', -1030.113346],
    ['500ms', 500],
    ['1m', 60e3],
    ['0s', 0],
    ['0', 0],
  ])('%s -> %d ms', (text, ms) => expect(parseGoDuration(text)).toBeCloseTo(ms, 6));
  it.each(['', '1d', 'h', '1h 2m', 'forever', '1e3s'])('%j is not a duration', (text) => expect(parseGoDuration(text)).toBeNull());
});

describe('canonicalCidr', () => {
  it.each([
    ['203.0.113.9', 'ip', '203.0.113.9/32'],
    ['198.51.100.0/24', 'range', '198.51.100.0/24'],
    ['2001:DB8::1', 'ip', '2001:db8::1/128'],
    ['2001:db8:1::/48', 'range', '2001:db8:1::/48'],
    ['::ffff:192.0.2.1', 'ip', '192.0.2.1/32'],
    ['198.51.100.7/24', 'range', null], // host bits: not guessed
    ['10.0.0.0/7', 'range', null], // wider than /8
    ['2001::/15', 'range', null],
    ['203.0.113.9/32', 'ip', null], // an Ip scope holds an address
    ['010.0.0.1', 'ip', null],
    ['example.com', 'ip', null],
  ] as const)('%s (%s) -> %s', (value, scope, expected) => expect(canonicalCidr(value, scope)).toBe(expected));
});

describe('the decision stream, kept between runs', () => {
  it('a startup answer keeps the smtpguard bans, as CIDRs with their end', () => {
    const { state, skipped } = applyStreamAnswer(
      null,
      {
        new: [
          ban(1, '203.0.113.9'),
          ban(2, '198.51.100.0/24', { scenario: 'smtpguard/subnet', duration: '30m' }),
          ban(3, '192.0.2.1', { scenario: 'crowdsecurity/ssh-bf' }), // another scenario: not by default
          ban(4, '192.0.2.2', { type: 'captcha' }), // not a ban
          ban(5, 'alice', { scope: 'Username' }), // another scope
          ban(6, '192.0.2.3', { duration: '-2s' }), // over already
          { id: 7, value: 'nonsense' }, // malformed
          ban(8, '198.51.100.7/24'), // host bits set: malformed
        ],
        deleted: null,
      },
      ctx(true),
    );
    expect(skipped).toBe(2);
    expect(state.decisions).toEqual([
      { id: 1, cidr: '203.0.113.9/32', family: 4, scenario: 'smtpguard/host', origin: 'crowdsec', until: NOW + 2 * 3600e3 },
      { id: 2, cidr: '198.51.100.0/24', family: 4, scenario: 'smtpguard/subnet', origin: 'crowdsec', until: NOW + 30 * 60e3 },
    ]);
    expect(state).toMatchObject({ url: URL, startup: NOW, pulled: NOW, filter: filterKey(DEFAULT) });
  });

  it('a delta answer adds the new, removes the deleted by id, keeps the rest and when the last full pull was', () => {
    const first = applyStreamAnswer(null, { new: [ban(1, '203.0.113.9'), ban(2, '203.0.113.10')], deleted: null }, ctx(true)).state;
    const later = NOW + 15 * 60e3;
    const { state } = applyStreamAnswer(first, { new: [ban(3, '2001:db8:5::/64', { scenario: 'smtpguard/prefix' })], deleted: [ban(1, '203.0.113.9', { duration: '-1s' })] }, ctx(false, later));
    expect(state.decisions.map((d) => [d.id, d.cidr])).toEqual([
      [2, '203.0.113.10/32'],
      [3, '2001:db8:5::/64'],
    ]);
    expect(state.startup).toBe(NOW);
    expect(state.pulled).toBe(later);
    // an empty delta changes nothing but the time
    const quiet = applyStreamAnswer(state, { new: null, deleted: null }, ctx(false, later + 1000)).state;
    expect(quiet.decisions).toEqual(state.decisions);
  });

  it('a startup answer replaces what was kept (a decision deleted while no delta was read goes too)', () => {
    const first = applyStreamAnswer(null, { new: [ban(1, '203.0.113.9'), ban(2, '203.0.113.10')] }, ctx(true)).state;
    const { state } = applyStreamAnswer(first, { new: [ban(2, '203.0.113.10')] }, ctx(true, NOW + RESYNC_MS));
    expect(state.decisions.map((d) => d.id)).toEqual([2]);
    expect(state.startup).toBe(NOW + RESYNC_MS);
  });

  it('decisions that ran out are dropped, and are not live, even without an answer', () => {
    const { state } = applyStreamAnswer(null, { new: [ban(1, '203.0.113.9', { duration: '10m' }), ban(2, '203.0.113.10')] }, ctx(true));
    expect(liveDecisions(state, NOW + 11 * 60e3).map((d) => d.id)).toEqual([2]);
    expect(applyStreamAnswer(state, {}, ctx(false, NOW + 11 * 60e3)).state.decisions.map((d) => d.id)).toEqual([2]);
    expect(liveDecisions(null, NOW)).toEqual([]);
  });

  it('--crowdsec-scenarios and --crowdsec-origins widen what is kept', () => {
    const answer = { new: [ban(1, '192.0.2.1', { scenario: 'crowdsecurity/ssh-bf', origin: 'CAPI' }), ban(2, '192.0.2.2', { scenario: 'crowdsecurity/http-probing' }), ban(3, '192.0.2.3', { origin: 'cscli', scenario: "manual 'ban' from 'x'" })] };
    const ids = (filter: StreamFilter) => applyStreamAnswer(null, answer, ctx(true, NOW, filter)).state.decisions.map((d) => d.id);
    expect(ids(DEFAULT)).toEqual([]);
    expect(ids({ scenarios: ['smtpguard/', 'crowdsecurity/'], origins: [] })).toEqual([1, 2]);
    expect(ids({ scenarios: ['smtpguard/'], origins: ['capi', 'cscli'] })).toEqual([1, 3]);
  });

  it.each([
    ['no state yet', null, URL, DEFAULT, NOW, true],
    ['a fresh state', 'fresh', URL, DEFAULT, NOW + 60e3, false],
    ['another LAPI', 'fresh', 'http://10.0.0.5:8080', DEFAULT, NOW + 60e3, true],
    ['another filter', 'fresh', URL, { scenarios: ['smtpguard/'], origins: ['CAPI'] }, NOW + 60e3, true],
    ['a day since the last full pull', 'fresh', URL, DEFAULT, NOW + RESYNC_MS, true],
    ['a clock that went back', 'fresh', URL, DEFAULT, NOW - 60e3, true],
  ] as const)('startup=true with %s: %s', (_name, kept, url, filter, now, expected) => {
    const state = kept === null ? null : applyStreamAnswer(null, { new: [] }, ctx(true)).state;
    expect(needsStartup(state, url, filter, now)).toBe(expected);
  });

  it('a kept state reads back; a tampered one is refused', () => {
    const { state } = applyStreamAnswer(null, { new: [ban(1, '203.0.113.9')] }, ctx(true));
    expect(parseStreamState(JSON.stringify(state))).toEqual(state);
    const tampered = { ...state, decisions: [{ ...state.decisions[0], cidr: '0.0.0.0/0' }] };
    expect(parseStreamState(JSON.stringify(tampered))).toBeNull();
    expect(parseStreamState('{"version":1')).toBeNull();
    expect(parseStreamState('[null]')).toBeNull();
  });
});

describe('fleet input is data, not orders (issue 20)', () => {
  it('a duration no date can hold, or longer than our longest ban, is skipped and counted, never a crash or kept (finding 3)', () => {
    const { state, skipped } = applyStreamAnswer(
      null,
      { new: [ban(1, '203.0.113.9', { duration: '99999999999h' }), ban(2, '203.0.113.10', { duration: '800h' }), ban(3, '203.0.113.11', { duration: '700h' })] },
      { ...ctx(true), maxDuration: 720 * 3600e3 },
    );
    expect(skipped).toBe(2);
    expect(state.decisions.map((d) => d.id)).toEqual([3]);
    // a kept state with such a time is not a state: it is pulled anew, not used
    expect(parseStreamState(JSON.stringify({ ...state, decisions: [{ ...state.decisions[0], until: 1e300 }] }))).toBeNull();
  });

  it('every field is checked: wrong types, control characters, unsafe ids are not understood', () => {
    const { state, skipped } = applyStreamAnswer(
      null,
      {
        new: [
          ban(1.5, '203.0.113.1'),
          ban(2, '203.0.113.2', { scenario: 'smtpguard/host\nx' }),
          ban(3, '203.0.113.3', { origin: 7 }),
          ban(4, '203.0.113.4', { scope: ['Ip'] }),
          ban(5, '203.0.113.5', { duration: 3600 }),
          ban(Number.MAX_SAFE_INTEGER + 2, '203.0.113.6'),
          ban(7, '203.0.113.7'),
        ],
      },
      ctx(true),
    );
    expect(skipped).toBe(6);
    expect(state.decisions.map((d) => d.cidr)).toEqual(['203.0.113.7/32']);
    expect(applyStreamAnswer(null, { new: 'nonsense' as unknown as LapiDecision[], deleted: 5 as unknown as LapiDecision[] }, ctx(true)).state.decisions).toEqual([]);
  });

  it('ranges wider than our own widest (/24, /48) are refused and named; the setting moves the line (finding 4)', () => {
    const answer = { new: [ban(1, '1.0.0.0/8'), ban(2, '198.18.0.0/15'), ban(3, '2000::/16'), ban(4, '198.51.100.0/24'), ban(5, '2001:db8:1::/48'), ban(6, '::ffff:10.0.0.0/104')] };
    const { state, refused } = applyStreamAnswer(null, answer, ctx(true));
    expect(state.decisions.map((d) => d.cidr)).toEqual(['198.51.100.0/24', '2001:db8:1::/48']);
    expect(refused).toEqual([
      '1.0.0.0/8 (smtpguard/host from crowdsec)',
      '198.18.0.0/15 (smtpguard/host from crowdsec)',
      '2000::/16 (smtpguard/host from crowdsec)',
      '10.0.0.0/8 (smtpguard/host from crowdsec)', // IPv4-mapped: checked as the IPv4 range it is
    ]);
    const wide = applyStreamAnswer(null, answer, ctx(true, NOW, { ...DEFAULT, widest4: 8, widest6: 16 }));
    expect(wide.refused).toEqual([]);
    expect(filterKey({ ...DEFAULT, widest4: 8 })).not.toBe(filterKey(DEFAULT)); // a changed setting pulls everything again
  });

  it('an IPv6 range around the IPv4-mapped space stands for all of IPv4: not understood', () => {
    expect(canonicalCidr('::/80', 'range')).toBeNull();
    expect(canonicalCidr('::ffff:0.0.0.0/96', 'range')).toBe('0.0.0.0/0');
  });
});
