/**
 * The follow part of npm run bench:firewall (BENCH_PART=follow): how long after Postfix writes
 * the SASL failure that crosses the threshold the kernel drops that client's next SYN, with
 * `smtpguard follow` in MX, per firewall backend; and what an idle follower costs.
 *
 * The stack is the system tests' own (test/system/stack.ts: real Postfix with Dovecot SASL on
 * 587, the firewall guarding 25, 465 and 587), one per backend. BENCH_ATTACKERS attackers (default
 * 50) start at uniformly random times over BENCH_SPREAD seconds (default 60) and fail AUTH three
 * times each (--threshold 3) while innocent clients keep connecting (attackers.py, which reads
 * Postfix's log as it is written and notes when each crossing line appeared). Then, with the
 * nftables backend, the follower is left alone 45 s to settle (its last save, the map's catch-up),
 * then for BENCH_IDLE seconds (default 60) while its CPU time is read from /proc.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { CLIENTS, MX4, Stack } from '../../test/system/stack.js';
import { BIN, fmt, list, log, percentile, median, ROOT, seconds } from './common.js';
import { table } from './results.js';

const ATTACKERS = Number(process.env.BENCH_ATTACKERS ?? 50);
const SPREAD = Number(process.env.BENCH_SPREAD ?? 60);
const IDLE = Number(process.env.BENCH_IDLE ?? 60);
const MODES = list('BENCH_FOLLOW_MODES', 'nftables,ipset,rules');
const INNOCENTS = [CLIENTS.innocent, CLIENTS.subnetBystander, CLIENTS.sparedUser];

interface ModeResult {
  mode: string;
  latencies: number[];
  missed: number;
  innocentTries: number;
  innocentUnanswered: number;
  idle: { cpuSeconds: number; wallSeconds: number } | null;
  rssMiB: number;
}

/** A deterministic shuffle of start times (mulberry32). */
function delays(n: number, spread: number, seed = 7): number[] {
  let state = seed;
  const next = () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  return Array.from({ length: n }, () => next() * spread);
}

/** utime + stime of a process, in seconds (clock ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function measureMode(mode: string, measureIdle: boolean): ModeResult {
  const stack = new Stack({ timeout: 600_000 });
  try {
    stack.up();
    if (mode !== 'nftables') {
      const enabled = stack.ufw(['--force', 'enable']);
      if (enabled.code !== 0) throw new Error(`ufw enable: ${enabled.stderr}`);
      for (const port of ['25', '465', '587', '2525']) stack.ufw(['allow', `${port}/tcp`]);
    }
    const attackers = Array.from({ length: ATTACKERS }, (_, i) => `203.0.113.${100 + i}`);
    const add = stack.nsRun(stack.client, ['sh', '-ec', attackers.map((a) => `ip addr add ${a}/32 dev ${stack.veth[1]}`).join('\n')]);
    if (add.code !== 0) throw new Error(add.stderr);
    const flags = [...stack.flags(), '--firewall', mode, '--subnet-hosts', '256'];
    const installed = stack.smtpguard(['install', ...flags, '--cron-file', path.join(stack.dir, 'cron'), '--systemd-dir', path.join(stack.dir, 'systemd'), '--man-dir', path.join(stack.dir, 'man1'), '--completion-dir', path.join(stack.dir, 'completion')]);
    if (installed.code !== 0) throw new Error(`install: ${installed.stderr}`);
    const outFile = path.join(stack.dir, 'follow.out');
    const out = openSync(outFile, 'w');
    const child = spawn('ip', stack.fwArgv([process.execPath, BIN, 'follow', ...flags], { PATH: process.env.PATH ?? '', TZ: 'UTC' }), { stdio: ['ignore', out, out] });
    closeSync(out);
    try {
      const t0 = process.hrtime.bigint();
      while (!readFileSync(outFile, 'utf8').includes('smtpguard follow: reading')) {
        if (seconds(t0) > 30) throw new Error(`the follower did not start: ${readFileSync(outFile, 'utf8')}`);
        spawnSleep(0.05);
      }
      const pid = (JSON.parse(readFileSync(path.join(stack.dir, 'state', 'follower.json'), 'utf8')) as { pid: number }).pid;
      log(`follow/${mode}: ${ATTACKERS} attackers over ${SPREAD} s, ${INNOCENTS.length} innocent clients`);
      const starts = delays(ATTACKERS, SPREAD);
      const specs = [...attackers.map((a, i) => `${a}@${starts[i]!.toFixed(3)}`), ...INNOCENTS.map((i) => `innocent@${i}`)];
      const r = stack.nsRun(stack.client, ['python3', path.join(ROOT, 'bench', 'firewall', 'attackers.py'), MX4, stack.log, '3', String(SPREAD), ...specs]);
      if (r.code !== 0) throw new Error(`attackers.py: ${r.stderr}`);
      const results = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { ip?: string; logged: number | null; dropped: number | null; innocent?: string; tries?: number; unanswered?: number });
      const latencies: number[] = [];
      let missed = 0;
      for (const a of results.filter((x) => x.ip !== undefined)) {
        if (a.logged === null || a.dropped === null) missed++;
        else latencies.push(a.dropped - a.logged);
      }
      const innocents = results.filter((x) => x.innocent !== undefined);
      let idle: ModeResult['idle'] = null;
      if (measureIdle) {
        // settle first: the last lines' save (30 s) and the access map's catch-up (the reload interval) are not idle
        spawnSleep(45);
        const c0 = cpuSeconds(pid);
        const w0 = process.hrtime.bigint();
        log(`follow/${mode}: idle for ${IDLE} s`);
        spawnSleep(IDLE);
        idle = { cpuSeconds: cpuSeconds(pid) - c0, wallSeconds: seconds(w0) };
      }
      const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      return {
        mode,
        latencies,
        missed,
        innocentTries: innocents.reduce((s, i) => s + (i.tries ?? 0), 0),
        innocentUnanswered: innocents.reduce((s, i) => s + (i.unanswered ?? 0), 0),
        idle,
        rssMiB: hwm === null ? NaN : Number(hwm[1]) / 1024,
      };
    } finally {
      child.kill('SIGKILL');
    }
  } finally {
    stack.down();
  }
}

function spawnSleep(s: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, s * 1000);
}

export function followPart(): string {
  const results = MODES.map((mode, i) => measureMode(mode, i === 0));
  const rows = results.map((r) => [
    r.mode,
    String(r.latencies.length + r.missed),
    fmt(median(r.latencies), 2),
    fmt(percentile(r.latencies, 99), 2),
    fmt(Math.max(...r.latencies), 2),
    String(r.missed),
    `${r.innocentUnanswered} of ${r.innocentTries}`,
    fmt(r.rssMiB, 0),
  ]);
  const idle = results.find((r) => r.idle !== null)?.idle;
  const idleText =
    idle === undefined || idle === null
      ? ''
      : `\nIdle: the ${results[0]!.mode} follower used ${fmt(idle.cpuSeconds, 2)} s of CPU in ${fmt(idle.wallSeconds, 0)} s with nothing to read (${fmt((100 * idle.cpuSeconds) / idle.wallSeconds, 3)}% of a core; /proc/PID/stat counts in 10 ms ticks).\n`;
  return `### Block within a second: \`smtpguard follow\`

${table(['backend', 'attackers', 'p50 (s)', 'p99 (s)', 'max (s)', 'never dropped', 'innocent SYNs unanswered', 'follower peak RSS (MiB)'], rows)}

From the moment the failure line that crosses the threshold (3) is in Postfix's log to the first SYN
to port 465 the kernel leaves unanswered (SYNs every 10 ms: 10 ms resolution). ${ATTACKERS} attackers start at random
times over ${SPREAD} s, each with its own address, against the real Postfix + Dovecot of the system tests; the
follower runs with the default --reload-interval (10 s), which spaces ufw reloads with the rules backend.
${idleText}`;
}
