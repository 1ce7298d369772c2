/**
 * npm run bench:week: a week of generated traffic (10M lines, BENCH_WEEK_LINES) replayed into a
 * log a follower reads, rotated every day as logrotate does (rename + create, seven kept), the
 * follower's decision clock driven by the log's own time (BENCH_FOLLOW_CLOCK_FILE: the time of
 * the last line written). Measures the follower's RSS after each million lines, the sustained
 * ingest (lines per second until it has caught up), and whether the blocks it holds at the end
 * are the blocks `smtpguard run --now T` decides from the same logs with no state. No root:
 * --firewall none, --no-reload, every file in a temp directory. Prints one Markdown section.
 *
 * Ban memory is set so that a block lasts exactly as long as its count in the window
 * (--ban-time 1s, --ban-factor 1, --ban-time-max 1s): a one-shot run knows no ban history, so
 * only then can the two answers be compared; the counting is what is under test.
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_START, writeLog } from './generate/index.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = path.join(ROOT, 'bin', 'smtpguard.js');
const LINES = Number(process.env.BENCH_WEEK_LINES ?? 10_000_000);
const DATA = path.join(ROOT, 'bench', 'data', `week-${LINES}.log`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (text: string) => console.error(`[bench:week ${new Date().toISOString().slice(11, 19)}] ${text}`);

/** The follower's clock, replaced whole (a rewrite in place let it read an empty file, and take the wall clock for the log's time). */
function setClock(file: string, ms: number): void {
  writeFileSync(`${file}.new`, String(ms));
  renameSync(`${file}.new`, file);
}

function rss(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
}

async function main(): Promise<void> {
  if (!existsSync(DATA)) {
    log(`generating ${LINES} lines over 7 days into ${DATA}`);
    mkdirSync(path.dirname(DATA), { recursive: true });
    const start = new Date(DEFAULT_START);
    await writeLog(DATA, { lines: LINES, seed: 11, start, end: new Date(start.getTime() + 7 * 86400e3), attackers: 4000, ipv6Attackers: 300 });
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'smtpguard-week-'));
  try {
    mkdirSync(path.join(dir, 'pf'));
    writeFileSync(path.join(dir, 'pf', 'main.cf'), 'mynetworks = 127.0.0.0/8\n');
    writeFileSync(path.join(dir, 'pf', 'master.cf'), '');
    writeFileSync(path.join(dir, 'access'), '# BEGIN smtpguard\n# END smtpguard\n');
    writeFileSync(path.join(dir, 'smtpguard.conf'), '');
    const logFile = path.join(dir, 'mail.log');
    writeFileSync(logFile, '');
    const clock = path.join(dir, 'clock');
    setClock(clock, Date.parse(DEFAULT_START)); // before the follower starts: never the wall clock
    const common = ['--map-type', 'cidr', '--postfix-config-dir', path.join(dir, 'pf'), '--config', path.join(dir, 'smtpguard.conf'), '--log', `${logFile}*`, '--firewall', 'none', '--no-reload', '--window', '24h', '--ban-time', '1s', '--ban-factor', '1', '--ban-time-max', '1s'];
    const follow = [...common, '--access-map', path.join(dir, 'access'), '--lock-file', path.join(dir, 'lock'), '--state-dir', path.join(dir, 'state')];
    const out = openSync(path.join(dir, 'follow.out'), 'w');
    const child = spawn(process.execPath, [BIN, 'follow', ...follow], { env: { PATH: process.env.PATH, TZ: 'UTC', BENCH_FOLLOW_CLOCK_FILE: clock }, stdio: ['ignore', out, out] });
    closeSync(out);
    const pid = child.pid!;
    try {
      while (!readFileSync(path.join(dir, 'follow.out'), 'utf8').includes('smtpguard follow: reading')) await sleep(50);
      // the replay: whole lines, the clock first, a new file at each UTC day
      const source = openSync(DATA, 'r');
      const chunk = Buffer.allocUnsafe(4 << 20);
      let carry = Buffer.alloc(0);
      let day = -1;
      let written = 0;
      let nextSample = 1_000_000;
      const samples: Array<{ lines: number; rss: number }> = [];
      let lastTime = 0;
      let target = openSync(logFile, 'a');
      const t0 = performance.now();
      for (;;) {
        const n = readSync(source, chunk, 0, chunk.length, null);
        if (n === 0) break;
        const data = Buffer.concat([carry, chunk.subarray(0, n)]);
        const end = data.lastIndexOf(0x0a) + 1;
        carry = Buffer.from(data.subarray(end));
        let at = 0;
        while (at < end) {
          // up to the next day boundary: lines of one day go to one file
          const firstTime = Date.parse(data.toString('latin1', at, at + 32).split(' ')[0]!);
          const firstDay = Math.floor(firstTime / 86400e3);
          if (day !== -1 && firstDay !== day) {
            closeSync(target);
            for (let k = 6; k >= 1; k--) if (existsSync(`${logFile}.${k}`)) renameSync(`${logFile}.${k}`, `${logFile}.${k + 1}`);
            rmSync(`${logFile}.7`, { force: true });
            renameSync(logFile, `${logFile}.1`);
            target = openSync(logFile, 'a');
          }
          day = firstDay;
          let stop = end;
          const nextDay = new Date((firstDay + 1) * 86400e3).toISOString().slice(0, 10);
          const boundary = data.indexOf(`\n${nextDay}T`, at, 'latin1');
          if (boundary !== -1 && boundary < end) stop = boundary + 1;
          const piece = data.subarray(at, stop);
          const lastLine = piece.lastIndexOf(0x0a, piece.length - 2) + 1;
          lastTime = Date.parse(piece.toString('latin1', lastLine, lastLine + 32).split(' ')[0]!);
          setClock(clock, lastTime);
          writeSync(target, piece);
          let count = 0;
          for (let i = piece.indexOf(0x0a); i !== -1; i = piece.indexOf(0x0a, i + 1)) count++;
          written += count;
          at = stop;
        }
        if (written >= nextSample) {
          samples.push({ lines: written, rss: rss(pid).rss });
          nextSample += 1_000_000;
        }
        await sleep(0); // the follower runs on its own core; this lets the clock file be read between writes
      }
      closeSync(target);
      closeSync(source);
      // caught up: nothing left behind in any log, and its state no longer changing
      const beatFile = path.join(dir, 'state', 'follower.json');
      for (let quiet = 0; quiet < 3; ) {
        await sleep(500);
        const beat = JSON.parse(readFileSync(beatFile, 'utf8')) as { sources: Array<{ behindBytes: number }> };
        quiet = beat.sources.every((s) => s.behindBytes === 0) ? quiet + 1 : 0;
      }
      const caughtUp = (performance.now() - t0) / 1000;
      // the last instant: one more apply at the last line's time (SIGHUP: a full read, then an apply)
      setClock(clock, lastTime);
      const before = readFileSync(path.join(dir, 'follow.out'), 'utf8').length;
      child.kill('SIGHUP');
      while (!readFileSync(path.join(dir, 'follow.out'), 'utf8').slice(before).includes('settings read again')) await sleep(100);
      const reread = performance.now();
      // the same logs, read once from nothing at the same instant
      writeFileSync(path.join(dir, 'access2'), '# BEGIN smtpguard\n# END smtpguard\n');
      const run = spawnSync(process.execPath, [BIN, 'run', '--dry-run', '--json', ...common, '--access-map', path.join(dir, 'access2'), '--lock-file', path.join(dir, 'lock2'), '--state-dir', path.join(dir, 'state2'), '--no-state', '--now', new Date(lastTime).toISOString()], { encoding: 'utf8', env: { PATH: process.env.PATH, TZ: 'UTC' }, maxBuffer: 1 << 30 });
      if (run.status !== 0) throw new Error(`run: ${run.stderr}`);
      const decided = (JSON.parse(run.stdout) as { blocks: Array<{ cidr: string; total: number }> }).blocks.map((b) => `${b.cidr} ${b.total}`).sort();
      // the follower's last apply comes after a full read of the week (seconds: a fixed wait of 3 s
      // sometimes compared the apply before it): its blocks until they are run's, for at most 2 minutes
      const heldNow = () => (JSON.parse(readFileSync(path.join(dir, 'state', 'blocks.json'), 'utf8')) as Array<{ cidr: string; total: number }>).map((b) => `${b.cidr} ${b.total}`).sort();
      let held = heldNow();
      while (held.join('\n') !== decided.join('\n') && performance.now() - reread < 120_000) {
        await sleep(250);
        held = heldNow();
      }
      const settled = (performance.now() - reread) / 1000;
      const end = rss(pid);
      const missing = decided.filter((b) => !held.includes(b));
      const extra = held.filter((b) => !decided.includes(b));
      const warnings = readFileSync(path.join(dir, 'follow.out'), 'utf8').split('\n').filter((l) => l.includes('warning'));
      console.log(`### A week replayed into a follower (\`npm run bench:week\`)

_Measured ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC._ ${written.toLocaleString('en')} generated lines over 7 days, rotated daily
(rename + create, seven kept), written as fast as the disk takes them; the follower's decision clock is the
last line's time (--window 24h; ban memory no longer than the window's counts: --ban-time 1s, --ban-factor 1).

| lines written so far (the follower reads them as fast as it can) | follower RSS (MiB) |
| --- | --- |
${samples.map((s) => `| ${s.lines.toLocaleString('en')} | ${s.rss.toFixed(0)} |`).join('\n')}
| end | ${end.rss.toFixed(0)} (peak ${end.hwm.toFixed(0)}) |

- sustained ingest: ${written.toLocaleString('en')} lines in ${caughtUp.toFixed(1)} s until caught up: ${Math.round(written / caughtUp).toLocaleString('en')} lines/s
- blocks held at the end: ${held.length}; \`smtpguard run --now ${new Date(lastTime).toISOString()} --no-state\` on the same logs: ${decided.length}; ${missing.length === 0 && extra.length === 0 ? `the same blocks with the same counts (${settled.toFixed(1)} s after SIGHUP, a full read and an apply)` : `differ ${settled.toFixed(0)} s after SIGHUP: only run ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` and ${missing.length - 5} more` : ''}; only the follower ${extra.slice(0, 5).join(', ')}${extra.length > 5 ? ` and ${extra.length - 5} more` : ''}`}
- warnings from the follower: ${warnings.length === 0 ? 'none' : warnings.slice(0, 3).join(' / ')}
`);
    } finally {
      child.kill('SIGKILL');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
