/**
 * explain answers as run does: for every address of several logs, its verdict is whether
 * `run --dry-run` blocks it, and its numbers are the policy's (in-process, real files).
 */
import { copyFileSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inRange, networkOf, parseIp, parseRange } from '../../src/address.js';
import { resolveSettings, type FlagValues, type Settings } from '../../src/cli/settings.js';
import { explainCommand } from '../../src/cli/commands/explain.js';
import { runLocked } from '../../src/cli/commands/run.js';
import { scanAndDecide, type Io } from '../../src/cli/commands/common.js';
import { readOverrides, writeOverrides } from '../../src/store/overrides.js';
import type { Block, Reason } from '../../src/decide/policy.js';
import { installPaths, makeServerDir, runBin, saslLines, serverFlags } from '../helpers.js';

const NOW = new Date('2026-11-23T12:00:00Z');
const STAMP = '2026-11-22T11:37:32.000000+00:00 mx';
const login = (address: string, user: string) => `${STAMP} postfix/submission/smtpd[2]: 4ABC123: client=phone[${address}], sasl_method=PLAIN, sasl_username=${user}\n`;
const unknownUser = (client: string, i: number) =>
  `${STAMP} postfix/smtpd[3]: NOQUEUE: reject: RCPT from ${client}: 550 5.1.1 <nobody${i}@example.org>: Recipient address rejected: User unknown in local recipient table; from=<a@provider.example> to=<nobody${i}@example.org> proto=ESMTP helo=<x>\n`;
const relay = (client: string, i: number) =>
  `${STAMP} postfix/smtpd[3]: NOQUEUE: reject: RCPT from ${client}: 554 5.7.1 <x${i}@attacker.example>: Relay access denied; from=<a@provider.example> to=<x${i}@attacker.example> proto=ESMTP helo=<x>\n`;
const times = (n: number, line: (i: number) => string) => Array.from({ length: n }, (_, i) => line(i)).join('');

let dir: string;
beforeAll(() => {
  dir = makeServerDir('smtpguard-explain-', '127.0.0.0/8 [::1]/128 192.0.2.240/28');
  const install = runBin(['install', ...serverFlags(dir), ...installPaths(dir)]);
  expect(install.code).toBe(0);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function settingsFor(logs: string[], extra: FlagValues = {}): Settings {
  const flags: FlagValues = {
    ufwRules: path.join(dir, 'before.rules'),
    ufw6Rules: path.join(dir, 'before6.rules'),
    accessMap: path.join(dir, 'access'),
    mapType: 'hash',
    postfixConfigDir: path.join(dir, 'pf'),
    lockFile: path.join(dir, 'smtpguard.lock'),
    stateDir: path.join(dir, 'state'),
    reload: false,
    window: 'all',
    log: logs,
    ...extra,
  };
  return resolveSettings(flags, {}, null, 'test').settings;
}

function io(out: string[] = []): Io {
  return {
    stdin: new PassThrough(),
    stdout: new Writable({
      write: (chunk, _encoding, done) => {
        out.push(String(chunk));
        done();
      },
    }),
    warn: () => undefined,
  };
}

interface Explained {
  verdict: string;
  counts: { total: number; threshold?: number; offendersIn24?: number; prefixTotal?: number };
  reason: Reason;
  block: Block | null;
}

async function explain(settings: Settings, address: string, now = NOW): Promise<Explained> {
  const out: string[] = [];
  await explainCommand(settings, { target: address, now, defaultLogs: false, json: true }, io(out));
  return JSON.parse(out.join('')) as Explained;
}

async function explainText(settings: Settings, address: string, now = NOW): Promise<string> {
  const out: string[] = [];
  await explainCommand(settings, { target: address, now, defaultLogs: false, json: false }, io(out));
  return out.join('');
}

/** Every address explained against run --dry-run's blocks and the policy's own blocks. */
async function checkEvery(settings: Settings, now = NOW): Promise<number> {
  const dry = await runLocked(settings, { now, defaultLogs: false, dryRun: true }, io(), () => readOverrides(settings.stateDir));
  const blocks = dry.plan.decision.blocks;
  const addresses = dry.summaries.map((s) => s.address);
  const policy = (await scanAndDecide(settings, now, false, io(), { saveState: false, explain: addresses })).decision;
  for (const [i, address] of addresses.entries()) {
    const ip = parseIp(address);
    const holding = blocks.find((b) => inRange(ip, parseRange(b.cidr)));
    const blocked = holding !== undefined && !(holding.exceptions ?? []).some((e) => inRange(ip, parseRange(e)));
    const e = await explain(settings, address, now);
    const r = policy.reasons![i]!;
    expect({ address, blocked: e.verdict.startsWith('blocked') }).toEqual({ address, blocked });
    // explain prints the policy's numbers (asked one address at a time, or all at once: the same)
    expect(e.reason).toEqual(r);
    expect(e.counts.total).toBe(r.counted);
    if (r.subnet !== undefined) expect(e.counts.offendersIn24).toBe(r.subnet.offenders);
    if (r.prefix !== undefined) expect(e.counts.prefixTotal).toBe(r.prefix.counted);
    // ...and they agree with the blocks the policy made
    const own = policy.blocks.find((b) => inRange(ip, parseRange(b.cidr)));
    if (own?.reason === 'host') expect(own.total).toBe(r.counted);
    if (own?.reason === 'subnet') expect(own.addressCount).toBe(r.subnet!.offenders);
    if (own?.reason === 'prefix') expect(own.total).toBe(r.prefix!.counted);
    if (own === undefined && r.neverBlock === undefined && r.overLimit === undefined) {
      if (r.subnet !== undefined) expect(r.counted).toBeLessThan(r.threshold);
      else expect(Math.min(r.prefix!.clientLevel, r.counted)).toBeLessThan(r.threshold);
    }
    // the counts never contradict the verdict: what was spared is not counted
    if (!blocked && e.verdict.includes('(spared)')) expect(r.counted).toBeLessThan(r.threshold);
    const spared = r.spared.reduce((n, s) => n + ('saslFailures' in s ? s.saslFailures : 'recipientRejects' in s ? s.recipientRejects : s.messageRejects), 0);
    expect(spared).toBeLessThanOrEqual(r.events - r.counted); // spared, or a named client's rejects (counted for bots only)
  }
  return addresses.length;
}

describe('explain answers as run --dry-run does, with the policy numbers', () => {
  it('every address of the bundled examples', async () => {
    const logs = path.join(dir, 'examples');
    mkdirSync(logs, { recursive: true });
    for (const f of readdirSync('examples/logs')) copyFileSync(path.join('examples/logs', f), path.join(logs, f));
    expect(await checkEvery(settingsFor([path.join(logs, 'mail.log*')]))).toBeGreaterThan(20);
  });

  it('every address of hostile logs: relays through named MTAs, a bot, a /24 with a login, IPv6 spread and message-level only, never-block', async () => {
    let log = '';
    for (let h = 1; h <= 5; h++) log += times(12, (i) => unknownUser(`mail-out${h}.provider.example[198.51.100.${h}]`, i));
    log += times(50, (i) => unknownUser('unknown[203.0.113.66]', i));
    for (let h = 10; h < 16; h++) log += saslLines(`203.0.113.${h}`, 12);
    log += login('203.0.113.20', 'alice') + saslLines('203.0.113.20', 2, 'alice');
    for (let p = 0; p < 5; p++) log += saslLines(`2001:db8:bad:${p}::1`, 6);
    for (let a = 1; a <= 4; a++) log += times(3, (i) => relay(`unknown[2001:db8:77::${a}]`, i));
    log += saslLines('192.0.2.241', 40) + saslLines('127.0.0.1', 40);
    log += saslLines('198.51.100.99', 2);
    writeFileSync(path.join(dir, 'hostile.log'), log);
    expect(await checkEvery(settingsFor([path.join(dir, 'hostile.log')]))).toBeGreaterThan(20);
  });

  it('a login-spared user: 3 failures as dave, then dave logs in (THRESHOLD=3): not blocked, and 0 counted, not "3 of 3"', async () => {
    writeFileSync(path.join(dir, 'spared.log'), saslLines('192.0.2.200', 3, 'dave@example.org') + login('192.0.2.200', 'dave@example.org') + saslLines('192.0.2.201', 3, 'eve'));
    const settings = settingsFor([path.join(dir, 'spared.log')], { threshold: '3' });
    await checkEvery(settings);
    const dave = await explain(settings, '192.0.2.200');
    expect(dave.verdict).toMatch(/^not blocked: 3 SASL failures as dave@example\.org not counted: logged in as dave@example\.org \(spared\)$/);
    expect(dave.counts.total).toBe(0);
    expect((await explain(settings, '192.0.2.201')).verdict).toMatch(/^blocked: in 192\.0\.2\.201\/32 \(host\): 3 counted events \(THRESHOLD=3\)$/);
  });

  it('logs holding the same lines several times: mail.log and its copy mail.warn count once; a line repeated in one log counts each time', async () => {
    const lines = saslLines('198.51.100.7', 6) + saslLines('2001:db8:5::9', 3);
    mkdirSync(path.join(dir, 'dup'));
    writeFileSync(path.join(dir, 'dup', 'mail.log'), lines + lines);
    writeFileSync(path.join(dir, 'dup', 'mail.warn'), lines + lines);
    const settings = settingsFor([path.join(dir, 'dup', 'mail.log'), path.join(dir, 'dup', 'mail.warn')]);
    await checkEvery(settings);
    const e = await explain(settings, '198.51.100.7');
    expect(e.counts.total).toBe(12);
    expect(e.verdict).toMatch(/^blocked: in 198\.51\.100\.7\/32 \(host\): 12 counted events/);
    expect((await explain(settings, '2001:db8:5::9')).reason.prefix).toMatchObject({ cidr: networkOf('2001:db8:5::9', 64), counted: 6 });
  });

  it('an unblock splits a /24: the others stay blocked on their own, and explain says so', async () => {
    writeFileSync(path.join(dir, 'split.log'), saslLines('198.51.100.1', 5) + saslLines('198.51.100.2', 5) + saslLines('198.51.100.3', 5));
    const settings = settingsFor([path.join(dir, 'split.log')], { threshold: '3', subnetHosts: '3', stateDir: path.join(dir, 'split-state') });
    mkdirSync(settings.stateDir, { recursive: true });
    await writeOverrides(settings.stateDir, [{ cidr: '198.51.100.1/32', kind: 'unblock', until: null, comment: null, created: NOW.toISOString() }]);
    await checkEvery(settings);
    expect((await explain(settings, '198.51.100.2')).verdict).toBe('blocked: in 198.51.100.2/32 (host): 198.51.100.0/24 (subnet) was split by an unblock inside it; this address stays blocked on its own: 5 counted events (THRESHOLD=3)');
    expect((await explain(settings, '198.51.100.1')).verdict).toMatch(/^not blocked: unblocked for good \(198\.51\.100\.1\/32\)$/);
  });

  it('a ban outlives the window: explain names it as a kept ban, not as counted events', async () => {
    writeFileSync(path.join(dir, 'ban.log'), saslLines('203.0.113.77', 12));
    const settings = settingsFor([path.join(dir, 'ban.log')], { stateDir: path.join(dir, 'ban-state'), window: '1h', banTime: '1d' });
    const made = new Date('2026-11-22T12:00:00Z');
    await runLocked(settings, { now: made, defaultLogs: false, dryRun: false }, io(), () => readOverrides(settings.stateDir));
    const later = new Date('2026-11-22T18:00:00Z');
    await checkEvery(settings, later);
    const e = await explain(settings, '203.0.113.77', later);
    expect(e.verdict).toBe('blocked: in 203.0.113.77/32 (host): a ban kept from an earlier run, which the window no longer shows: 1st ban of 24h, until 2026-11-23T11:37:32.000Z');
    expect(e.counts.total).toBe(0);
  });

  it('an IPv6 prefix holding a never-block address: its addresses count one by one, and explain says why', async () => {
    const own = makeServerDir('smtpguard-explain-never-', '127.0.0.0/8 [::1]/128 [2001:db8:1:2::5]/128');
    try {
      writeFileSync(path.join(own, 'v6.log'), saslLines('2001:db8:1:2::9', 2) + saslLines('2001:db8:1:2::a', 2) + saslLines('2001:db8:1:2::b', 2));
      const settings = { ...settingsFor([path.join(own, 'v6.log')], { threshold6: '5', stateDir: path.join(own, 'state') }), postfixConfigDir: path.join(own, 'pf') };
      await checkEvery(settings);
      const e = await explain(settings, '2001:db8:1:2::9');
      expect(e.verdict).toBe('not blocked: the prefix 2001:db8:1:2::/64 has 6 counted events, but it holds a never-block range, so its addresses count one by one: this one has 2, under THRESHOLD6=5');
      expect(e.reason.prefix).toMatchObject({ counted: 6, outcome: 'holds a never-block range' });
    } finally {
      rmSync(own, { recursive: true, force: true });
    }
  });

  /**
   * 1,500 IPv6 /64s failing once each in `net`::/48, explained with --max-tracked 1000: an address
   * past the bound (which ones: the policy's choice) and what explain says of it.
   */
  async function floodPastMaxTracked(net: string, extra: Record<string, string>): Promise<{ settings: Settings; folded: string; e: Explained }> {
    const name = net.replace(/:/g, '-');
    writeFileSync(path.join(dir, `${name}.log`), times(1500, (i) => saslLines(`${net}:${i.toString(16)}::1`, 1)));
    const settings = settingsFor([path.join(dir, `${name}.log`)], { maxTracked: '1000', threshold6: '5', stateDir: path.join(dir, `${name}-state`), ...extra });
    let folded = '';
    let e: Explained | undefined;
    for (const i of [0, 1, 700, 1498, 1499]) {
      folded = `${net}:${i.toString(16)}::1`;
      e = await explain(settings, folded);
      if (e.reason.prefix?.cidr === `${net}::/48`) break;
    }
    return { settings, folded, e: e! };
  }

  it('a flood past --max-tracked: the /48 its prefixes were added up into, with its numbers; IPV6_SUBNET_PREFIXES=0 blocks no /48', async () => {
    // the addresses past the bound are added up into their /48
    const { settings, folded, e } = await floodPastMaxTracked('2001:db8:aaaa', { ipv6SubnetPrefixes: '0' });
    expect(e.reason.prefix).toMatchObject({ cidr: '2001:db8:aaaa::/48' });
    expect(e.reason.prefix!.counted).toBeGreaterThanOrEqual(5);
    expect(e.verdict).toBe(`not blocked: the range 2001:db8:aaaa::/48 has ${e.reason.prefix!.counted} counted events, but IPV6_SUBNET_PREFIXES=0 blocks no range wider than a prefix`);
    const text = await explainText(settings, folded);
    expect(text).toContain(`its prefix 2001:db8:aaaa::/48 (its prefixes added up past MAX_TRACKED=1000): ${e.reason.prefix!.counted} (IPV6_SUBNET_PREFIXES=0 blocks no range wider than a prefix)`);
    expect(text).not.toContain('undefined');
    expect(text).not.toContain('Infinity');
  });

  it('a flood past --max-tracked with the /48 rule on: the /48 its prefixes were added up into needs THRESHOLD6 x IPV6_SUBNET_PREFIXES', async () => {
    const { settings, folded, e } = await floodPastMaxTracked('2001:db8:bbbb', {});
    expect(e.reason.prefix).toMatchObject({ cidr: '2001:db8:bbbb::/48', threshold: 25 });
    expect(e.verdict).toMatch(/^blocked: in 2001:db8:bbbb::\/48 \(subnet6\): offending prefixes in this \/48 add up/); // with its own /64s
    expect(await explainText(settings, folded)).toContain(`its prefix 2001:db8:bbbb::/48 (its prefixes added up past MAX_TRACKED=1000): ${e.reason.prefix!.counted} of THRESHOLD6 x IPV6_SUBNET_PREFIXES=25`);
  });

  it('the printed counts are the reason record: a spared user shows 0 counted and the rest not counted', async () => {
    writeFileSync(path.join(dir, 'spared2.log'), saslLines('192.0.2.200', 3, 'dave') + login('192.0.2.200', 'dave'));
    const text = await explainText(settingsFor([path.join(dir, 'spared2.log')], { threshold: '3' }), '192.0.2.200');
    expect(text).toMatch(/^Counts in the window: 0 of THRESHOLD=3 \(3 more not counted\); offenders in its \/24: 0 of SUBNET_HOSTS=5$/m);
    expect(text).toMatch(/^Log lines in the window \(4\):$/m);
    expect(text).toMatch(/spared2\.log:1: .*SASL/);
  });
});
