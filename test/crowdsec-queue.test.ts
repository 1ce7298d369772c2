/**
 * The push queue: pure bookkeeping, then FleetSync against a small HTTP server that plays
 * LAPI's faults (down, hung, a lost answer, refused credentials, an expired token). The
 * real LAPI is in test/system/crowdsec.test.ts.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readSecretFile } from '../src/crowdsec/credentials.js';
import { emptyQueue, FOREVER_MS, ownBans, parseQueue, queueBans, refreshMs, renderAlert, unsent, type SeenBlock } from '../src/crowdsec/queue.js';
import { FleetSync, QUEUE_FILE, type CrowdsecSettings } from '../src/crowdsec/sync.js';
import { SmtpguardError } from '../src/errors.js';
import type { Block, Decision } from '../src/decide/policy.js';
import type { AddressSummary } from '../src/count/summary.js';

const NOW = Date.parse('2026-11-23T12:00:00Z');
const HOUR = 3600e3;
const DAY = 24 * HOUR;
const host = (address: string, total = 12): Block => ({ cidr: `${address}/32`, family: 4, addresses: [address], addressCount: 1, total, reason: 'host' });
const seen = (block: Block, lastSeen = NOW - HOUR): SeenBlock => ({ block, firstSeen: lastSeen - HOUR, lastSeen });
const ctx = (now = NOW, window = DAY) => ({ machine: 'mx1', now, window });

describe('the push queue', () => {
  it('a new block is queued once, with the end of its window; a block that stays is not queued again', () => {
    const first = queueBans(emptyQueue(), [seen(host('203.0.113.9'))], ctx());
    expect(first.queued).toEqual([
      expect.objectContaining({ key: `mx1 203.0.113.9/32 ${new Date(NOW + 23 * HOUR).toISOString()}`, cidr: '203.0.113.9/32', reason: 'host', until: NOW + 23 * HOUR, sent: false, attempts: 0 }),
    ]);
    const again = queueBans(first.queue, [seen(host('203.0.113.9'))], ctx(NOW + 15 * 60e3));
    expect(again.queued).toEqual([]);
    expect(again.queue.bans).toHaveLength(1);
  });

  it('a block that keeps getting events is pushed again once its end moved by a quarter of the window (at most 6 h)', () => {
    const first = queueBans(emptyQueue(), [seen(host('203.0.113.9'), NOW)], ctx()).queue;
    expect(refreshMs(DAY)).toBe(6 * HOUR);
    const soon = NOW + 5 * HOUR;
    expect(queueBans(first, [seen(host('203.0.113.9'), soon)], ctx(soon)).queued).toEqual([]);
    const later = NOW + 6 * HOUR;
    expect(queueBans(first, [seen(host('203.0.113.9'), later)], ctx(later)).queued.map((b) => b.until)).toEqual([later + DAY]);
  });

  it('fleet blocks are never pushed; ended bans leave the queue; --window all bans run 24 h', () => {
    const fleet: Block = { ...host('192.0.2.9'), reason: 'fleet', fleet: { scenario: 'smtpguard/host', origin: 'crowdsec', until: '2026-11-24T00:00:00Z' } };
    const { queue, queued } = queueBans(emptyQueue(), [seen(fleet), seen(host('203.0.113.9'), NOW - 100 * DAY)], ctx(NOW, Infinity));
    expect(queued.map((b) => [b.cidr, b.until])).toEqual([['203.0.113.9/32', NOW + DAY]]);
    expect(queueBans(queue, [], ctx(NOW + DAY + 1)).queue.bans).toEqual([]);
  });

  it('with ban times, the ban runs to the block\'s until (forever: ten years), not to the end of the window', () => {
    const banned = { ...host('203.0.113.9'), until: new Date(NOW + 3 * DAY).toISOString() };
    const forever = { ...host('203.0.113.10'), until: null };
    const { queued } = queueBans(emptyQueue(), [seen(banned), seen(forever)], ctx());
    expect(queued.map((b) => [b.cidr, b.until])).toEqual([
      ['203.0.113.9/32', NOW + 3 * DAY],
      ['203.0.113.10/32', NOW + FOREVER_MS],
    ]);
  });

  it('own bans are those still running, sent or not; unsent lists the queued ones with time left', () => {
    const { queue } = queueBans(emptyQueue(), [seen(host('203.0.113.9')), seen(host('203.0.113.10'), NOW - 23.5 * HOUR)], ctx());
    expect([...ownBans(queue, NOW)].sort()).toEqual(['203.0.113.10/32', '203.0.113.9/32']);
    expect(ownBans(queue, NOW + HOUR)).toEqual(new Set(['203.0.113.9/32']));
    expect(unsent(queue, NOW + HOUR).map((b) => b.cidr)).toEqual(['203.0.113.9/32']);
  });

  it('an alert carries the counts, the ban key, and a decision for the time left when it is sent', () => {
    const ban = queueBans(emptyQueue(), [seen({ cidr: '198.51.100.0/24', family: 4, addresses: ['198.51.100.1'], addressCount: 5, total: 60, reason: 'subnet' })], ctx()).queued[0]!;
    const alert = renderAlert(ban, { machine: 'mx1', now: NOW + 3 * HOUR, version: '0.1.0' });
    expect(alert).toMatchObject({
      scenario: 'smtpguard/subnet',
      events_count: 60,
      source: { scope: 'Range', value: '198.51.100.0/24', range: '198.51.100.0/24' },
      decisions: [{ type: 'ban', scope: 'Range', value: '198.51.100.0/24', duration: `${20 * 3600}s`, origin: 'crowdsec', scenario: 'smtpguard/subnet' }],
    });
    expect(alert.message).toContain(`60 events from 5 addresses [smtpguard-ban ${ban.key}]`);
    const v6 = queueBans(emptyQueue(), [seen({ cidr: '2001:db8::7/128', family: 6, addresses: ['2001:db8::7'], addressCount: 1, total: 5, reason: 'host' })], ctx()).queued[0]!;
    expect(renderAlert(v6, { machine: 'mx1', now: NOW, version: '0.1.0' }).decisions[0]).toMatchObject({ scope: 'Ip', value: '2001:db8::7' });
  });

  it('a queue reads back; a tampered one is refused', () => {
    const { queue } = queueBans(emptyQueue(), [seen(host('203.0.113.9'))], ctx());
    expect(parseQueue(JSON.stringify(queue))).toEqual(queue);
    expect(parseQueue(JSON.stringify({ ...queue, bans: [{ ...queue.bans[0], reason: 'x"; rm' }] }))).toBeNull();
    expect(parseQueue('nope')).toBeNull();
  });
});

/** A LAPI stand-in whose behaviour each test sets. */
interface FakeLapi {
  url: string;
  alerts: Array<{ message: string; decisions: Array<{ value: string; duration: string }> }>;
  logins: number;
  /** What the next requests meet. */
  mode: 'ok' | 'hang' | 'error500' | 'drop-after-store' | 'refuse-login' | 'expire-token';
  server: Server;
}

async function startFake(): Promise<FakeLapi> {
  const fake = { alerts: [], logins: 0, mode: 'ok' } as unknown as FakeLapi;
  const tokens = new Set<string>();
  fake.server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      if (fake.mode === 'hang') return; // never answers
      if (fake.mode === 'error500') return void res.writeHead(500).end('{"message":"database is locked"}');
      const url = new URL(req.url ?? '/', 'http://x');
      if (req.method === 'POST' && url.pathname === '/v1/watchers/login') {
        if (fake.mode === 'refuse-login') return void res.writeHead(401).end('{"code":401,"message":"incorrect Username or Password"}');
        const { machine_id, password } = JSON.parse(body) as { machine_id: string; password: string };
        if (machine_id !== 'mx1' || password !== 'pw') return void res.writeHead(401).end('{"message":"incorrect Username or Password"}');
        fake.logins++;
        const token = `t${fake.logins}`;
        tokens.add(token);
        return void res.writeHead(200).end(JSON.stringify({ code: 200, token, expire: new Date(Date.now() + HOUR).toISOString() }));
      }
      const bearer = (req.headers.authorization ?? '').replace(/^Bearer /, '');
      if (!tokens.has(bearer)) return void res.writeHead(401).end('{"message":"Token is expired"}');
      if (fake.mode === 'expire-token') {
        tokens.clear();
        fake.mode = 'ok';
        return void res.writeHead(401).end('{"message":"Token is expired"}');
      }
      if (req.method === 'GET' && url.pathname === '/v1/alerts') {
        const value = url.searchParams.get('value');
        return void res.writeHead(200).end(JSON.stringify(fake.alerts.filter((a) => a.decisions[0]?.value === value)));
      }
      if (req.method === 'POST' && url.pathname === '/v1/alerts') {
        const alerts = JSON.parse(body) as FakeLapi['alerts'];
        fake.alerts.push(...alerts);
        if (fake.mode === 'drop-after-store') return void req.socket.destroy(); // stored, and the answer is lost
        return void res.writeHead(201).end(JSON.stringify(alerts.map((_, i) => String(fake.alerts.length - alerts.length + i + 1))));
      }
      res.writeHead(404).end('{"message":"not found"}');
    });
  });
  await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', resolve));
  fake.url = `http://127.0.0.1:${(fake.server.address() as AddressInfo).port}`;
  return fake;
}

describe('FleetSync: faults lose nothing', () => {
  let dir: string;
  let fake: FakeLapi;
  let warnings: string[];
  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'smtpguard-cs-'));
    writeFileSync(path.join(dir, 'password'), 'pw\n');
    chmodSync(path.join(dir, 'password'), 0o600);
    fake = await startFake();
    warnings = [];
  });
  afterEach(async () => {
    fake.server.closeAllConnections();
    await new Promise((resolve) => fake.server.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  const settings = (url = fake.url): CrowdsecSettings => ({
    crowdsecUrl: url,
    crowdsecMachine: 'mx1',
    crowdsecPasswordFile: path.join(dir, 'password'),
    crowdsecBouncerKeyFile: null,
    crowdsecScenarios: ['smtpguard/'],
    crowdsecOrigins: [],
    crowdsecWidest: 24,
    crowdsecWidest6: 48,
    banTime: 24 * 3600e3,
    banTimeMax: 30 * 24 * 3600e3,
    stateDir: path.join(dir, 'state'),
    window: DAY,
    maxBlocks: 0,
  });
  const decision = (...blocks: Block[]): Decision => ({ blocks, spared: [], ignored: [], overLimit: [] });
  const summaries = (...addresses: string[]): AddressSummary[] =>
    addresses.map((address) => ({ address, events: {} as AddressSummary['events'], total: 12, firstSeen: NOW - 2 * HOUR, lastSeen: NOW - HOUR, unnamedRecipientRejects: 0, unnamedMessageRejects: 0 }));
  /** One run's push; returns the sync (its report) and what finish() threw. */
  async function run(blocks: Block[], options: { url?: string; now?: number; budgetMs?: number } = {}) {
    const sync = (await FleetSync.open(settings(options.url), { now: new Date(options.now ?? NOW), network: true, warn: (m) => warnings.push(m), budgetMs: options.budgetMs ?? 2000 }))!;
    await sync.push(decision(...blocks), summaries(...blocks.flatMap((b) => b.addresses)));
    let thrown: unknown = null;
    try {
      sync.finish();
    } catch (error) {
      thrown = error;
    }
    return { sync, thrown };
  }
  const queueFile = () => parseQueue(readFileSync(path.join(dir, 'state', QUEUE_FILE), 'utf8'))!;

  it('sends one alert per new block, once', async () => {
    const first = await run([host('203.0.113.9'), host('203.0.113.10')]);
    expect(first.sync.report).toMatchObject({ sent: 2, queued: 0 });
    expect(fake.alerts.map((a) => a.decisions[0]!.value).sort()).toEqual(['203.0.113.10', '203.0.113.9']);
    expect(fake.alerts[0]!.decisions[0]!.duration).toBe(`${23 * 3600}s`);
    const second = await run([host('203.0.113.9'), host('203.0.113.10')], { now: NOW + 15 * 60e3 });
    expect(second.sync.report.sent).toBe(0);
    expect(fake.alerts).toHaveLength(2);
    expect(fake.logins).toBe(1); // the token was kept for the second run
    expect(warnings).toEqual([]);
  });

  it('LAPI down: one warning, the alert waits in the state directory, and goes when LAPI is back', async () => {
    const closedPort = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const port = (s.address() as AddressInfo).port;
        s.close(() => resolve(port));
      });
    });
    const down = await run([host('203.0.113.9')], { url: `http://127.0.0.1:${closedPort}` });
    expect(down.thrown).toBeNull();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^CrowdSec http:\/\/127\.0\.0\.1:\d+: POST .*\/v1\/watchers\/login: ECONNREFUSED: 1 alert\(s\) wait in .*crowdsec-queue\.json for the next run$/);
    expect(unsent(queueFile(), NOW).map((b) => b.cidr)).toEqual(['203.0.113.9/32']);
    warnings = [];
    const back = await run([host('203.0.113.9')], { now: NOW + 15 * 60e3 });
    expect(back.sync.report).toMatchObject({ sent: 1, queued: 0 });
    expect(fake.alerts.map((a) => a.decisions[0]!.value)).toEqual(['203.0.113.9']);
    // sent 15 minutes later: the decision runs to the same end
    expect(fake.alerts[0]!.decisions[0]!.duration).toBe(`${23 * 3600 - 15 * 60}s`);
    expect(warnings).toEqual([]);
  });

  it('a hung LAPI costs the run at most its budget, and one warning', async () => {
    fake.mode = 'hang';
    const started = Date.now();
    const hung = await run([host('203.0.113.9')], { budgetMs: 500 });
    expect(Date.now() - started).toBeLessThan(2000);
    expect(hung.thrown).toBeNull();
    expect(warnings).toEqual([expect.stringMatching(/no answer within 0\.5 s: 1 alert\(s\) wait/)]);
    expect(unsent(queueFile(), NOW)).toHaveLength(1);
  });

  it('an error answer keeps the alert queued', async () => {
    fake.mode = 'error500';
    await run([host('203.0.113.9')]);
    expect(warnings).toEqual([expect.stringMatching(/500 database is locked: 1 alert\(s\) wait/)]);
    expect(unsent(queueFile(), NOW)).toHaveLength(1);
  });

  it('an alert whose answer was lost is not sent twice', async () => {
    await run([host('203.0.113.9')]); // logs in, keeps the token
    fake.mode = 'drop-after-store';
    await run([host('203.0.113.9'), host('203.0.113.10')]);
    expect(fake.alerts).toHaveLength(2); // stored, answer lost
    expect(unsent(queueFile(), NOW).map((b) => [b.cidr, b.attempts])).toEqual([['203.0.113.10/32', 1]]);
    fake.mode = 'ok';
    const next = await run([host('203.0.113.9'), host('203.0.113.10')], { now: NOW + 15 * 60e3 });
    expect(fake.alerts.map((a) => a.decisions[0]!.value)).toEqual(['203.0.113.9', '203.0.113.10']);
    expect(next.sync.report).toMatchObject({ sent: 0, queued: 0 });
  });

  it('an expired token is renewed once, and the alert goes', async () => {
    await run([host('203.0.113.9')]);
    fake.mode = 'expire-token';
    const r = await run([host('203.0.113.9'), host('203.0.113.10')]);
    expect(r.sync.report.sent).toBe(1);
    expect(fake.logins).toBe(2);
    expect(warnings).toEqual([]);
  });

  it('refused credentials: an error naming the settings (exit 3), the alert stays queued', async () => {
    fake.mode = 'refuse-login';
    const r = await run([host('203.0.113.9')]);
    expect(r.thrown).toBeInstanceOf(SmtpguardError);
    expect((r.thrown as SmtpguardError).message).toMatch(/^CrowdSec refused the credentials of --crowdsec-machine \/ --crowdsec-password-file: LAPI refused the login of machine mx1: POST .* 401 incorrect Username or Password$/);
    expect((r.thrown as SmtpguardError).exitCode).toBe(3);
    expect(unsent(queueFile(), NOW)).toHaveLength(1);
  });

  it('a password file others can read is refused, naming the setting; nothing is sent', async () => {
    chmodSync(path.join(dir, 'password'), 0o644);
    const r = await run([host('203.0.113.9')]);
    expect((r.thrown as SmtpguardError).message).toMatch(/^--crowdsec-password-file .*password is readable or writable by others \(mode 0644\): a CrowdSec secret must be root's alone$/);
    expect(fake.alerts).toEqual([]);
    expect(unsent(queueFile(), NOW)).toHaveLength(1);
  });
});

describe('secret files', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(path.join(tmpdir(), 'smtpguard-secret-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, text: string, mode: number) => {
    const file = path.join(dir, name);
    writeFileSync(file, text);
    chmodSync(file, mode);
    return file;
  };

  it('reads one line, or the password of a cscli credentials file', async () => {
    expect(await readSecretFile(write('key', 'abc123\n', 0o600), '--crowdsec-bouncer-key-file')).toBe('abc123');
    expect(await readSecretFile(write('mx1.yaml', 'url: http://127.0.0.1:8080\nlogin: mx1\npassword: s3cr3t\n', 0o600), '--crowdsec-password-file')).toBe('s3cr3t');
  });

  it.each([
    [0o640, /readable or writable by others \(mode 0640\)/],
    [0o604, /readable or writable by others \(mode 0604\)/],
  ])('mode %o is refused', async (mode, message) => {
    await expect(readSecretFile(write('key', 'abc\n', mode), '--crowdsec-bouncer-key-file')).rejects.toThrow(message);
  });

  it('a missing or empty file names the setting', async () => {
    await expect(readSecretFile(path.join(dir, 'nope'), '--crowdsec-bouncer-key-file')).rejects.toThrow(/^--crowdsec-bouncer-key-file .*nope: no such file$/);
    await expect(readSecretFile(write('empty', '\n', 0o600), '--crowdsec-password-file')).rejects.toThrow(/is empty$/);
  });

  it('a file owned by another user is refused', async () => {
    const file = write('key', 'abc\n', 0o600);
    await expect(readSecretFile(file, '--crowdsec-bouncer-key-file', 4242)).rejects.toThrow(/is owned by uid \d+: a CrowdSec secret must be root's alone/);
  });
});
