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
import { readOverrides } from '../../src/store/overrides.js';
import type { Block, Reason } from '../../src/decide/policy.js';
import { makeServerDir, runBin, saslLines, serverFlags } from '../helpers.js';

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
  const install = runBin(['install', ...serverFlags(dir), '--cron-file', path.join(dir, 'cron'), '--man-dir', path.join(dir, 'man1'), '--completion-dir', path.join(dir, 'completion')]);
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

async function explain(settings: Settings, address: string): Promise<Explained> {
  const out: string[] = [];
  await explainCommand(settings, { target: address, now: NOW, defaultLogs: false, json: true }, io(out));
  return JSON.parse(out.join('')) as Explained;
}

/** Every address explained against run --dry-run's blocks and the policy's own blocks. */
async function checkEvery(settings: Settings): Promise<number> {
  const dry = await runLocked(settings, { now: NOW, defaultLogs: false, dryRun: true }, io(), () => readOverrides(settings.stateDir));
  const blocks = dry.plan.decision.blocks;
  const addresses = dry.summaries.map((s) => s.address);
  const policy = (await scanAndDecide(settings, NOW, false, io(), { saveState: false, explain: addresses })).decision;
  for (const [i, address] of addresses.entries()) {
    const ip = parseIp(address);
    const holding = blocks.find((b) => inRange(ip, parseRange(b.cidr)));
    const blocked = holding !== undefined && !(holding.exceptions ?? []).some((e) => inRange(ip, parseRange(e)));
    const e = await explain(settings, address);
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
});
