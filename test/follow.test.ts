/**
 * `smtpguard follow`, the built binary, on real files in a temp directory (--firewall none: the
 * access map is what it writes; the real stack's tests put nftables under it): lines as they are
 * written, half lines, logrotate's rename + create and copytruncate, kill -9 and a restart, a
 * cron run beside it, the verbs, SIGHUP and SIGTERM. Counts are read back from blocks.json.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BIN, makeServerDir, runBin } from './helpers.js';

let dir: string;
let flags: string[];
let followers: ChildProcess[] = [];

/** A SASL failure of `address`, stamped now (Debian 12's RFC 3339 form). */
const failure = (address: string) => `${new Date().toISOString().replace('Z', '000+00:00')} mx postfix/smtpd[7]: warning: unknown[${address}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username=admin\n`;
const fail = (address: string, n: number, file = 'mail.log') => appendFileSync(path.join(dir, file), failure(address).repeat(n));

beforeEach(() => {
  dir = makeServerDir('smtpguard-follow-');
  writeFileSync(path.join(dir, 'mail.log'), '');
  writeFileSync(path.join(dir, 'access'), '# BEGIN smtpguard\n# END smtpguard\n');
  writeFileSync(path.join(dir, 'smtpguard.conf'), 'THRESHOLD=3\n');
  flags = [
    '--access-map', path.join(dir, 'access'),
    '--map-type', 'cidr',
    '--postfix-config-dir', path.join(dir, 'pf'),
    '--lock-file', path.join(dir, 'smtpguard.lock'),
    '--state-dir', path.join(dir, 'state'),
    '--config', path.join(dir, 'smtpguard.conf'),
    '--log', path.join(dir, 'mail.log*'),
    '--firewall', 'none',
    '--window', '1h',
    '--subnet-hosts', '256',
    '--reload-interval', '1s',
    '--no-reload',
  ];
});

afterEach(async () => {
  for (const f of followers) if (f.exitCode === null && f.signalCode === null) f.kill('SIGKILL');
  await Promise.all(followers.map((f) => (f.exitCode === null && f.signalCode === null ? new Promise((r) => f.once('exit', r)) : null)));
  followers = [];
  rmSync(dir, { recursive: true, force: true });
});

interface Follower {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  exited: Promise<number | null>;
}

async function follow(extra: readonly string[] = []): Promise<Follower> {
  const child = spawn(process.execPath, [BIN, 'follow', ...flags, ...extra], { env: { PATH: process.env.PATH, TZ: 'UTC' }, stdio: ['ignore', 'pipe', 'pipe'] });
  followers.push(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const f = { child, out: () => out, err: () => err, exited };
  await waitUntil(() => out.includes('smtpguard follow: reading') || child.exitCode !== null, 'the follower to start');
  expect(err).toBe('');
  return f;
}

async function waitUntil(ok: () => boolean, what: string, ms = 10_000): Promise<number> {
  const t0 = Date.now();
  while (!ok()) {
    if (Date.now() - t0 > ms) throw new Error(`waited ${ms} ms for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return Date.now() - t0;
}

const mapText = () => readFileSync(path.join(dir, 'access'), 'utf8');
const blocked = (cidr: string) => mapText().includes(`\n${cidr} REJECT`);
/** blocks.json: each block's counted events. */
function totals(): Record<string, number> {
  const file = path.join(dir, 'state', 'blocks.json');
  if (!existsSync(file)) return {};
  const records = JSON.parse(readFileSync(file, 'utf8')) as { blocks?: Array<{ cidr: string; total: number }> } | Array<{ cidr: string; total: number }>;
  const list = Array.isArray(records) ? records : (records.blocks ?? []);
  return Object.fromEntries(list.map((r) => [r.cidr, r.total]));
}

describe('smtpguard follow', () => {
  it('blocks the client whose failure crosses the threshold as the line is written; a half line waits for its end', async () => {
    const f = await follow();
    fail('192.0.2.7', 2);
    await new Promise((r) => setTimeout(r, 300));
    expect(blocked('192.0.2.7/32')).toBe(false);
    // the third failure, written in two pieces: nothing counts until the newline
    const line = failure('192.0.2.7');
    appendFileSync(path.join(dir, 'mail.log'), line.slice(0, 40));
    await new Promise((r) => setTimeout(r, 300));
    expect(blocked('192.0.2.7/32')).toBe(false);
    appendFileSync(path.join(dir, 'mail.log'), line.slice(40));
    const took = await waitUntil(() => blocked('192.0.2.7/32'), 'the block');
    expect(took).toBeLessThan(1500); // the first block of a quiet follower waits for no reload interval
    await waitUntil(() => f.out().includes('+192.0.2.7/32'), 'the summary line');
    expect(f.out()).toMatch(/^blocks: 1 \(\+1 -0\) \+192\.0\.2\.7\/32$/m);
    expect(totals()['192.0.2.7/32']).toBe(3);
    // an innocent client with fewer failures is never blocked
    fail('192.0.2.99', 2);
    await new Promise((r) => setTimeout(r, 500));
    expect(blocked('192.0.2.99/32')).toBe(false);
  });

  it('reads year-less syslog stamps of lines written after it started as this year\'s (rsyslog\'s traditional form, Postfix\'s maillog_file)', async () => {
    await follow();
    const stamp = () => new Date().toUTCString().replace(/^\w+, (\d+) (\w+) \d+ (\S+) GMT$/, (_m, d: string, mon: string, t: string) => `${mon} ${d.padStart(2, ' ')} ${t}`);
    await new Promise((r) => setTimeout(r, 1100)); // stamped after the follower's start
    appendFileSync(path.join(dir, 'mail.log'), `${stamp()} mx postfix/smtpd[7]: warning: unknown[192.0.2.33]: SASL PLAIN authentication failed: \n`.repeat(3));
    await waitUntil(() => blocked('192.0.2.33/32'), 'the block', 3000);
  });

  it("loses no line and counts none twice across logrotate's rename + create and a copytruncate", async () => {
    await follow();
    fail('203.0.113.5', 2);
    fail('203.0.113.6', 2);
    await new Promise((r) => setTimeout(r, 200));
    // rename + create: the follower has read the two lines; one more is written to the renamed file (syslog before its HUP)
    renameSync(path.join(dir, 'mail.log'), path.join(dir, 'mail.log.1'));
    fail('203.0.113.5', 1, 'mail.log.1');
    writeFileSync(path.join(dir, 'mail.log'), '');
    fail('203.0.113.5', 1);
    await waitUntil(() => blocked('203.0.113.5/32'), 'the block after a rename');
    await waitUntil(() => totals()['203.0.113.5/32'] === 4, 'its count of 4', 5000);
    // copytruncate: the copy has what was read, the original starts again at 0
    copyFileSync(path.join(dir, 'mail.log'), path.join(dir, 'mail.log.1.tmp'));
    renameSync(path.join(dir, 'mail.log.1'), path.join(dir, 'mail.log.2'));
    renameSync(path.join(dir, 'mail.log.1.tmp'), path.join(dir, 'mail.log.1'));
    truncateSync(path.join(dir, 'mail.log'), 0);
    fail('203.0.113.6', 1);
    await waitUntil(() => blocked('203.0.113.6/32'), 'the block after a copytruncate');
    await new Promise((r) => setTimeout(r, 500));
    expect(totals()).toMatchObject({ '203.0.113.5/32': 4, '203.0.113.6/32': 3 });
  });

  it('mail.log and mail.warn (copies of the same lines): it reads mail.log alone, so a line in both counts once', async () => {
    flags = flags.flatMap((f) => (f === path.join(dir, 'mail.log*') ? [f, '--log', path.join(dir, 'mail.warn*')] : [f]));
    writeFileSync(path.join(dir, 'mail.warn'), '');
    const both = (address: string, n: number) => {
      fail(address, n);
      fail(address, n, 'mail.warn');
    };
    both('192.0.2.140', 2);
    const f = await follow();
    expect(f.out()).toContain(`reading ${path.join(dir, 'mail.log')} as it grows`);
    both('192.0.2.140', 1);
    await waitUntil(() => totals()['192.0.2.140/32'] !== undefined, 'the block');
    f.child.kill('SIGHUP'); // a full read: the same count
    await waitUntil(() => f.out().includes('settings read again'), 'the full read');
    both('192.0.2.141', 3);
    await waitUntil(() => totals()['192.0.2.141/32'] !== undefined, 'the next block');
    expect(totals()).toMatchObject({ '192.0.2.140/32': 3, '192.0.2.141/32': 3 });
  });

  it('kill -9 and a restart: nothing lost, nothing counted twice', async () => {
    const first = await follow();
    fail('198.51.100.1', 2);
    await new Promise((r) => setTimeout(r, 300)); // read by the tail, maybe not yet saved
    first.child.kill('SIGKILL');
    await first.exited;
    fail('198.51.100.1', 1);
    await follow();
    await waitUntil(() => blocked('198.51.100.1/32'), 'the block after the restart');
    await waitUntil(() => totals()['198.51.100.1/32'] !== undefined, 'its record (written after the map)');
    expect(totals()['198.51.100.1/32']).toBe(3);
  });

  it('a cron run beside it changes nothing and exits 0; once the follower is killed it runs and says so', async () => {
    const f = await follow();
    fail('192.0.2.40', 3);
    await waitUntil(() => blocked('192.0.2.40/32'), 'the block');
    const before = mapText();
    fail('192.0.2.41', 3);
    const beside = runBin(['run', ...flags, '--verbose']);
    expect(beside.code).toBe(0);
    expect(beside.stdout).toMatch(/follow is running and does the work/);
    f.child.kill('SIGKILL');
    await f.exited;
    const after = runBin(['run', ...flags]);
    expect(after.code).toBe(0);
    expect(after.stderr).toMatch(/warning: the follower \(pid \d+\) is gone/);
    expect(after.stdout).toMatch(/\+192\.0\.2\.41\/32/);
    expect(before).not.toContain('192.0.2.41');
  });

  it('a block given while it runs is in force at once; the follower keeps it', async () => {
    const f = await follow();
    const verb = runBin(['block', '203.0.113.77', ...flags]);
    expect(verb.code).toBe(0);
    expect(blocked('203.0.113.77/32')).toBe(true);
    // the follower's next apply (new events) keeps the manual block
    fail('192.0.2.50', 3);
    await waitUntil(() => blocked('192.0.2.50/32'), 'the next block');
    expect(blocked('203.0.113.77/32')).toBe(true);
    expect(f.err()).toBe('');
  });

  it('an unblock --for ends when it falls due, with no line written', async () => {
    await follow();
    fail('192.0.2.60', 3);
    await waitUntil(() => blocked('192.0.2.60/32'), 'the block');
    expect(runBin(['unblock', '192.0.2.60', '--for', '2s', ...flags]).code).toBe(0);
    expect(blocked('192.0.2.60/32')).toBe(false);
    await waitUntil(() => blocked('192.0.2.60/32'), 'the block back when the unblock ends', 6000);
  });

  it('SIGHUP reads the config file again; SIGTERM saves the state and exits 0', async () => {
    const f = await follow();
    fail('192.0.2.70', 2);
    await new Promise((r) => setTimeout(r, 300));
    expect(blocked('192.0.2.70/32')).toBe(false);
    writeFileSync(path.join(dir, 'smtpguard.conf'), 'THRESHOLD=2\n');
    f.child.kill('SIGHUP');
    await waitUntil(() => f.out().includes('settings read again'), 'the settings read again');
    await waitUntil(() => blocked('192.0.2.70/32'), 'the block under the new threshold');
    fail('192.0.2.71', 1);
    await new Promise((r) => setTimeout(r, 300));
    f.child.kill('SIGTERM');
    expect(await f.exited).toBe(0);
    const beat = JSON.parse(readFileSync(path.join(dir, 'state', 'follower.json'), 'utf8')) as { stopped?: string };
    expect(beat.stopped).toBeDefined();
    // the state has every line: a run reads nothing new, and takes over without a warning
    const run = runBin(['run', ...flags, '--verbose']);
    expect(run.stderr).toBe('');
    const state = JSON.parse(readFileSync(path.join(dir, 'state', 'scan-state.json'), 'utf8')) as { entries: Array<{ size: number }> };
    expect(state.entries.map((e) => e.size)).toContain(readFileSync(path.join(dir, 'mail.log')).length);
  });

  it('status and the bare command show the follower: pid, since when, how far behind, the last apply; a warning once it is gone', async () => {
    writeFileSync(path.join(dir, 'smtpguard.conf'), `THRESHOLD=3\nSTATE_DIR=${path.join(dir, 'state')}\nFIREWALL=none\n`);
    const f = await follow();
    fail('192.0.2.90', 3);
    await waitUntil(() => blocked('192.0.2.90/32'), 'the block');
    await new Promise((r) => setTimeout(r, 200));
    const pid = (JSON.parse(readFileSync(path.join(dir, 'state', 'follower.json'), 'utf8')) as { pid: number }).pid;
    const status = runBin(['status', ...flags]);
    expect(status.stderr).toBe('');
    expect(status.stdout).toMatch(new RegExp(`^Follower: pid ${pid}, running since \\S+ \\S+; ${path.join(dir, 'mail.log').replace(/[.]/g, '\\.')} caught up; last apply \\S+ \\S+: blocks: 1 \\(\\+1 -0\\) \\+192\\.0\\.2\\.90/32$`, 'm'));
    const json = JSON.parse(runBin(['status', ...flags, '--json']).stdout) as { follower: { running: boolean; beat: { pid: number; sources: Array<{ behindBytes: number }> } } };
    expect(json.follower.running).toBe(true);
    expect(json.follower.beat.pid).toBe(pid);
    expect(json.follower.beat.sources[0]!.behindBytes).toBe(0);
    expect(runBin(['--config', path.join(dir, 'smtpguard.conf')]).stdout).toMatch(new RegExp(`^Follower: pid ${pid}, running since`, 'm'));
    f.child.kill('SIGKILL');
    await f.exited;
    expect(runBin(['status', ...flags]).stdout).toMatch(new RegExp(`^WARNING: the follower \\(pid ${pid}\\) is not running or is hung: its last heartbeat was`, 'm'));
  });

  it('a log that vanishes is said once; the blocks stay; the follower recovers by itself when it is back', async () => {
    flags = flags.map((f) => (f === path.join(dir, 'mail.log*') ? path.join(dir, 'mail.log') : f));
    const f = await follow();
    fail('192.0.2.110', 3);
    await waitUntil(() => blocked('192.0.2.110/32'), 'the block');
    rmSync(path.join(dir, 'mail.log'));
    await new Promise((r) => setTimeout(r, 4000)); // several retries
    expect(f.err().match(/warning: .*mail\.log/g)?.length, `${f.out()} // ${f.err()} // ${readFileSync(path.join(dir, 'state', 'follower.json'), 'utf8')}`).toBe(1);
    expect(blocked('192.0.2.110/32')).toBe(true);
    expect(f.child.exitCode).toBeNull();
    writeFileSync(path.join(dir, 'mail.log'), failure('192.0.2.111').repeat(3));
    await waitUntil(() => blocked('192.0.2.111/32'), 'the block once the log is back', 15_000);
    expect(blocked('192.0.2.110/32')).toBe(true);
  }, 30_000);

  it('an apply that fails is said once and tried again with backoff; it recovers when the cause goes away', async () => {
    const f = await follow();
    const map = path.join(dir, 'access');
    const text = readFileSync(map, 'utf8');
    rmSync(map);
    mkdirSync(map); // the map cannot be read: every apply fails
    fail('192.0.2.120', 3);
    await waitUntil(() => /warning: .*access is a directory/.test(f.err()), 'the failure said');
    await new Promise((r) => setTimeout(r, 3500));
    expect(f.err().match(/is a directory/g)?.length).toBe(1);
    const beat = JSON.parse(readFileSync(path.join(dir, 'state', 'follower.json'), 'utf8')) as { lastApply: { ok: boolean; summary: string } };
    expect(beat.lastApply.ok).toBe(false);
    rmSync(map, { recursive: true });
    writeFileSync(map, text);
    await waitUntil(() => blocked('192.0.2.120/32'), 'the block once the map is back', 20_000);
    expect(f.child.exitCode).toBeNull();
  }, 40_000);

  it('a full disk under the state directory is said once; the blocks stay; it recovers when there is room again', async () => {
    // a private mount namespace with a 1 MiB tmpfs over the state directory (root only; never the host's mounts)
    const state = path.join(dir, 'state');
    mkdirSync(state, { recursive: true });
    const argv = ['unshare', '-m', '--propagation', 'private', 'sh', '-c', `mount -t tmpfs -o size=1m,mode=0755 tmpfs ${state} && exec "$@"`, 'sh', process.execPath, BIN, 'follow', ...flags];
    const child = spawn(argv[0]!, argv.slice(1), { env: { PATH: process.env.PATH, TZ: 'UTC' }, stdio: ['ignore', 'pipe', 'pipe'] });
    followers.push(child);
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    await waitUntil(() => out.includes('smtpguard follow: reading'), 'the follower to start');
    fail('192.0.2.130', 3);
    await waitUntil(() => blocked('192.0.2.130/32'), 'the block');
    // the disk fills up (seen through the follower's own mount namespace: unshare and sh exec it, one pid)
    const inside = `/proc/${child.pid}/root${state}`;
    // never a byte more than the tmpfs holds, and only into the tmpfs (not the disk under it)
    expect(spawnSync('stat', ['-f', '-c', '%T', inside], { encoding: 'utf8' }).stdout.trim()).toBe('tmpfs');
    const filler = `${inside}/filler`;
    spawnSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=64k', 'count=32'], { stdio: 'ignore' });
    fail('192.0.2.131', 3);
    child.kill('SIGHUP'); // and a full read, which saves the scan state
    await waitUntil(() => /the file system is full/.test(err), `the full disk said (${out} // ${err})`, 15_000);
    await new Promise((r) => setTimeout(r, 3000));
    expect(blocked('192.0.2.130/32')).toBe(true);
    expect(child.exitCode).toBeNull();
    const said = err.split('\n').filter((l) => l !== '');
    expect(said.length, err).toBe(new Set(said).size); // each fault said once
    rmSync(filler);
    await waitUntil(() => blocked('192.0.2.131/32'), 'the block once there is room again', 20_000);
  }, 60_000);

  it('refuses standard input and --now with a usage error', () => {
    const stdin = runBin(['follow', ...flags, '--log', '-']);
    expect(stdin.code).toBe(2);
    expect(stdin.stderr).toMatch(/follow reads log files or the journal, not standard input/);
    const now = runBin(['follow', ...flags, '--now', '2026-12-01T00:00:00Z']);
    expect(now.code).toBe(2);
  });
});
