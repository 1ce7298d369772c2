/**
 * `smtpguard follow` on the real stack (stack.ts): a follower in the MX namespace with
 * --firewall nftables; attackers in CLIENT fail SASL against the real Postfix + Dovecot until
 * they cross the threshold, then send SYNs to port 25 until the kernel drops one
 * (bench/firewall/attackers.py, which the latency bench uses too); innocent clients keep
 * connecting meanwhile. Then the verbs, a cron run beside the follower, and kill -9.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, CLIENTS, missingRequirements, MX4, ROOT, Stack, type Run } from './stack.js';
import { installPaths } from '../helpers.js';

const missing = missingRequirements();
if (missing.length > 0 && process.env.CI) throw new Error(`system tests cannot run in CI: missing ${missing.join(', ')} (.ci/run must install them)`);

let stack: Stack;
let flags: string[];
let follower: { child: ChildProcess; out: () => string; err: () => string; exited: Promise<number | null> } | null = null;

const ATTACKERS = Array.from({ length: 8 }, (_, i) => `203.0.113.${120 + i}`);
const INNOCENTS = [CLIENTS.innocent, CLIENTS.subnetBystander];
const smtpguard = (command: string, extra: string[] = []): Run => stack.smtpguard([command, ...flags, ...extra]);
const nft = (...args: string[]) => stack.nsRun(stack.mx, ['nft', ...args]);
const hosts4 = () => {
  const m = /elements = \{([^}]*)\}/.exec(nft('list', 'set', 'inet', 'smtpguard', 'hosts4').stdout);
  return m === null ? [] : m[1]!.split(',').map((e) => e.trim().split(/\s+/)[0]!);
};

function startFollower(): NonNullable<typeof follower> {
  const child = spawn('ip', stack.fwArgv([process.execPath, BIN, 'follow', ...flags], { PATH: process.env.PATH ?? '', TZ: 'UTC' }), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  follower = { child, out: () => out, err: () => err, exited };
  return follower;
}

/** The follower's pid, as its heartbeat says. */
const followerPid = () => (JSON.parse(readFileSync(path.join(stack.dir, 'state', 'follower.json'), 'utf8')) as { pid: number }).pid;

async function until(ok: () => boolean, what: string, ms = 15_000): Promise<void> {
  const t0 = Date.now();
  while (!ok()) {
    if (Date.now() - t0 > ms) throw new Error(`waited ${ms} ms for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe.runIf(missing.length === 0)('smtpguard follow on the real stack', () => {
  beforeAll(() => {
    stack = new Stack();
    stack.up();
    // the log and its rotations (postfix logrotate's LOG.YYYYMMDD-HHMMSS.gz, a copytruncate's copy)
    flags = [...stack.flags().map((f) => (f === stack.log ? `${stack.log}*` : f)), '--firewall', 'nftables', '--subnet-hosts', '256'];
    const add = stack.nsRun(stack.client, ['sh', '-ec', ATTACKERS.map((a) => `ip addr add ${a}/32 dev ${stack.veth[1]}`).join('\n')]);
    if (add.code !== 0) throw new Error(add.stderr);
    const installed = stack.smtpguard(['install', ...flags, ...installPaths(stack.dir)]);
    if (installed.code !== 0) throw new Error(installed.stderr);
  }, 240_000);

  afterAll(async () => {
    if (follower !== null && follower.child.exitCode === null) {
      follower.child.kill('SIGKILL');
      await follower.exited;
    }
    stack?.down();
  });

  it('each attacker is dropped within 1.5 s of the failure line that crosses the threshold; innocent clients never are', async () => {
    const f = startFollower();
    await until(() => f.out().includes('smtpguard follow: reading'), 'the follower to start');
    expect(f.err()).toBe('');
    const specs = [...ATTACKERS.map((a, i) => `${a}@${(i * 0.37).toFixed(2)}`), ...INNOCENTS.map((i) => `innocent@${i}`)];
    const r = stack.nsRun(stack.client, ['python3', path.join(ROOT, 'bench', 'firewall', 'attackers.py'), MX4, stack.log, '3', '3', ...specs]);
    expect(r.stderr).toBe('');
    const results = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { ip?: string; logged?: number; dropped?: number; innocent?: string; tries?: number; unanswered?: number });
    const attacked = results.filter((x) => x.ip !== undefined);
    expect(attacked.map((x) => x.ip).sort()).toEqual([...ATTACKERS].sort());
    for (const a of attacked) {
      expect(a.logged, a.ip).not.toBeNull();
      expect(a.dropped, a.ip).not.toBeNull();
      const latency = a.dropped! - a.logged!;
      expect(latency, `${a.ip}: ${latency.toFixed(3)} s`).toBeLessThan(1.5);
    }
    for (const i of results.filter((x) => x.innocent !== undefined)) {
      expect(i.tries, i.innocent).toBeGreaterThan(20);
      expect(i.unanswered, i.innocent).toBe(0);
    }
    expect(hosts4().sort()).toEqual([...ATTACKERS].sort());
    // a line per apply that blocked someone, as run prints it (read once the event loop is free again)
    await until(() => /^blocks: \d+ \(\+\d -0\) \+203\.0\.113\.12\d\/32/m.test(f.out()), 'the summary lines');
  }, 120_000);

  it("Postfix's own logrotate (rename, reopen, gzip) and a copytruncate between an attacker's failures: each blocked, each counted once", async () => {
    const blocksTotal = (cidr: string) => (JSON.parse(readFileSync(path.join(stack.dir, 'state', 'blocks.json'), 'utf8')) as Array<{ cidr: string; total: number }>).find((b) => b.cidr === cidr)?.total;
    const [a, b] = [CLIENTS.subnet[2], CLIENTS.subnet[3]];
    for (let n = 0; n < 2; n++) stack.authFail(a, 'LOGIN');
    stack.waitForLog(new RegExp(`\\[${a.replace(/\./g, '\\.')}\\]: SASL LOGIN authentication failed`), 2);
    await new Promise((r) => setTimeout(r, 500)); // the follower has read them
    expect(stack.postfix(['logrotate']).code).toBe(0);
    stack.authFail(a, 'LOGIN');
    await until(() => hosts4().includes(a), 'the block after postfix logrotate');
    await until(() => blocksTotal(`${a}/32`) !== undefined, 'its record (written after the kernel has it)');
    expect(blocksTotal(`${a}/32`)).toBe(3);
    for (let n = 0; n < 2; n++) stack.authFail(b, 'LOGIN');
    await new Promise((r) => setTimeout(r, 500));
    stack.nsRun(stack.mx, ['sh', '-ec', `cp ${stack.log} ${stack.log}.1 && truncate -s 0 ${stack.log}`]);
    stack.authFail(b, 'LOGIN');
    await until(() => hosts4().includes(b), 'the block after a copytruncate');
    await until(() => blocksTotal(`${b}/32`) !== undefined, 'its record');
    await new Promise((r) => setTimeout(r, 500));
    expect(blocksTotal(`${b}/32`)).toBe(3);
    expect(blocksTotal(`${a}/32`)).toBe(3);
    expect(follower!.err()).toBe('');
  }, 60_000);

  it('a block given while it runs is in the kernel when the verb returns; the follower keeps it', async () => {
    const verb = smtpguard('block', [CLIENTS.later]);
    expect(verb.stderr).toBe('');
    expect(verb.code).toBe(0);
    expect(hosts4()).toContain(CLIENTS.later);
    expect(stack.banner(CLIENTS.later)).toBe('timeout');
    // the next apply of the follower (a new attacker) keeps it
    for (let n = 0; n < 3; n++) stack.authFail(CLIENTS.relay, 'PLAIN');
    await until(() => hosts4().includes(CLIENTS.relay), 'the next block');
    expect(hosts4()).toContain(CLIENTS.later);
  }, 60_000);

  it('a cron run beside it changes nothing and exits 0; after kill -9 a run does the work and says the follower is gone; a restart counts nothing twice', async () => {
    const before = hosts4().sort();
    const pid = followerPid();
    const beside = smtpguard('run', ['--verbose']);
    expect(beside.code).toBe(0);
    expect(beside.stdout).toBe('smtpguard follow is running and does the work: nothing to do\n');
    follower!.child.kill('SIGKILL');
    await follower!.exited;
    for (let n = 0; n < 3; n++) stack.authFail(CLIENTS.unknownUser, 'LOGIN');
    stack.waitForLog(/unknown\[203\.0\.113\.6\]: SASL LOGIN authentication failed/, 3);
    const run = smtpguard('run');
    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(new RegExp(`warning: the follower \\(pid ${pid}\\) is gone`));
    expect(run.stdout).toContain(`+${CLIENTS.unknownUser}/32`);
    expect(hosts4().sort()).toEqual([...before, CLIENTS.unknownUser].sort());
    // a new follower starts from the state the run saved: the counts stay as they are
    const f = startFollower();
    await until(() => f.out().includes('smtpguard follow: reading'), 'the follower to start again');
    const status = JSON.parse(smtpguard('status', ['--json']).stdout) as { blocks: Array<{ cidr: string; record: { total: number } | null }> };
    expect(status.blocks.find((b) => b.cidr === `${CLIENTS.unknownUser}/32`)?.record?.total).toBe(3);
    expect(status.blocks.find((b) => b.cidr === `${ATTACKERS[0]}/32`)?.record?.total).toBe(3);
    f.child.kill('SIGTERM');
    expect(await f.exited).toBe(0);
  }, 90_000);
});
