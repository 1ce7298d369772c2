/**
 * npm run bench: smtpguard against grep, zcat | grep, the blog pipeline it replaces and
 * fail2ban-regex, on the same generated Debian 12 logs; medians of repeated runs, peak
 * RSS, exactness against the generator's ground truth. Prints a table and writes
 * bench/results.md.
 *
 * Data (bench/data/, not committed, made once and reused): plain logs of 1M and 5M
 * lines, and a rotated set mail.log, mail.log.1, mail.log.2.gz .. mail.log.7.gz of 5M
 * lines in all.
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync, copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { addTruth, writeLog, type GroundTruth } from './generate.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url)); // dist-bench/bench -> repo
const DATA = path.join(ROOT, 'bench', 'data');
const BIN = path.join(ROOT, 'bin', 'smtpguard.js');
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const DAY = 86_400_000;
const START = Date.parse('2026-11-14T00:00:00Z');

interface Measure {
  seconds: number;
  rssKiB: number | null;
  stdout: string;
}

/** Runs a shell command `RUNS` times; the median wall time, the largest peak RSS. */
function measure(command: string, runs = RUNS, before?: () => void): Measure {
  const times: number[] = [];
  let rss: number | null = null;
  let stdout = '';
  for (let i = 0; i < runs; i++) {
    before?.();
    const t0 = process.hrtime.bigint();
    const r = spawnSync('/usr/bin/time', ['-f', '%M', 'sh', '-c', command], { encoding: 'utf8', maxBuffer: 1 << 30 });
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
    if (r.status !== 0) throw new Error(`${command} failed: ${r.stderr}`);
    const kib = Number(r.stderr.trim().split('\n').pop());
    if (Number.isFinite(kib)) rss = Math.max(rss ?? 0, kib);
    stdout = r.stdout;
  }
  times.sort((a, b) => a - b);
  return { seconds: times[Math.floor(times.length / 2)]!, rssKiB: rss, stdout };
}

async function makeData(): Promise<{ plain1m: string; plain5m: string; rotated: string[]; truths: Record<string, GroundTruth> }> {
  mkdirSync(DATA, { recursive: true });
  const truths: Record<string, GroundTruth> = {};
  const plain = async (name: string, lines: number, seed: number) => {
    const file = path.join(DATA, name);
    const truthFile = `${file}.truth.json`;
    if (!existsSync(truthFile)) {
      const truth = await writeLog(file, { lines, seed, start: new Date(START), end: new Date(START + 7 * DAY) });
      writeFileSync(truthFile, JSON.stringify(truth));
    }
    truths[name] = JSON.parse(readFileSync(truthFile, 'utf8')) as GroundTruth;
    return file;
  };
  const plain1m = await plain('plain-1m.log', 1_000_000, 1);
  const plain5m = await plain('plain-5m.log', 5_000_000, 5);
  // the rotated set: 8 days, one file a day, the oldest seven gzipped but the newest two (delaycompress)
  const dir = path.join(DATA, 'rotated');
  const names = ['mail.log.7.gz', 'mail.log.6.gz', 'mail.log.5.gz', 'mail.log.4.gz', 'mail.log.3.gz', 'mail.log.2.gz', 'mail.log.1', 'mail.log'];
  const truthFile = path.join(dir, 'truth.json');
  if (!existsSync(truthFile)) {
    mkdirSync(dir, { recursive: true });
    const truth: GroundTruth = {};
    for (const [i, name] of names.entries()) {
      const file = path.join(dir, name.replace(/\.gz$/, ''));
      addTruth(truth, await writeLog(file, { lines: 625_000, seed: 100 + i, start: new Date(START + i * DAY), end: new Date(START + (i + 1) * DAY - 1) }));
      if (name.endsWith('.gz')) {
        writeFileSync(path.join(dir, name), gzipSync(readFileSync(file), { level: 6 }));
        rmSync(file);
      }
    }
    writeFileSync(truthFile, JSON.stringify(truth));
  }
  truths.rotated = JSON.parse(readFileSync(truthFile, 'utf8')) as GroundTruth;
  return { plain1m, plain5m, rotated: names.map((n) => path.join(dir, n)), truths };
}

/** smtpguard's JSON against the truth, for the kinds it counts by default. */
function exact(json: string, truth: GroundTruth): string {
  const found = JSON.parse(json) as { addresses: Array<{ address: string; events: Record<string, number> }> };
  const want = new Map<string, string>();
  for (const [address, kinds] of Object.entries(truth)) {
    const s = kinds.saslFailure ?? 0;
    const r = kinds.reject ?? 0;
    if (s + r > 0) want.set(address, `${s}/${r}`);
  }
  const got = new Map(found.addresses.map((a) => [a.address, `${a.events.saslFailure}/${a.events.reject}`]));
  const wrong = [...new Set([...want.keys(), ...got.keys()])].filter((a) => want.get(a) !== got.get(a));
  return wrong.length === 0 ? `yes (${want.size} addresses)` : `NO: ${wrong.length} of ${want.size} addresses differ`;
}

const saslTotal = (truth: GroundTruth) => Object.values(truth).reduce((sum, k) => sum + (k.saslFailure ?? 0), 0);
/** A markdown table cell: a | inside would end it. */
const cell = (text: string) => text.replace(/\|/g, '\\|');
const sh = (p: string) => `'${p.replace(/'/g, `'\\''`)}'`;

async function main(): Promise<void> {
  const data = await makeData();
  const mb = (files: string[]) => files.reduce((sum, f) => sum + statSync(f).size, 0) / 1e6;
  const rows: string[][] = [];
  const row = (what: string, m: Measure, megabytes: number, grep: number | null, exactness: string) => {
    rows.push([what, m.seconds.toFixed(3), (megabytes / m.seconds).toFixed(0), grep === null ? '' : `${(m.seconds / grep).toFixed(2)}x`, m.rssKiB === null ? '' : `${(m.rssKiB / 1024).toFixed(0)}`, exactness]);
    console.log(rows.at(-1)!.join(' | '));
  };
  const smtpguard = (logs: string[], extra = '') =>
    `node ${sh(BIN)} scan --window all --json --now 2026-11-23T00:00:00Z ${logs.map((l) => `--log ${sh(l)}`).join(' ')} ${extra} > ${sh(path.join(DATA, 'out.json'))}`;
  const out = () => readFileSync(path.join(DATA, 'out.json'), 'utf8');

  for (const [name, file] of [['1M', data.plain1m], ['5M', data.plain5m]] as const) {
    const truth = data.truths[path.basename(file)]!;
    const size = mb([file]);
    const grep = measure(`grep -F -c 'authentication failed' ${sh(file)} | cat`);
    row(`grep -F -c, plain ${name}`, { ...grep, rssKiB: null }, size, grep.seconds, `counts ${grep.stdout.trim()} lines; truth ${saslTotal(truth)} failures`);
    const sg = measure(smtpguard([file], '--no-state'));
    row(`smtpguard scan, plain ${name}`, sg, size, grep.seconds, exact(out(), truth));
    const pipeline = measure(
      `grep 'SASL LOGIN authentication failed' ${sh(file)} | grep -E '\\[[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+\\]' | sed -r 's/.* (.*)\\[([0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+)\\].*/\\1 \\2/' | gawk '{f[$0]++} END {for (w in f) printf "%s\\t%d\\n", w, f[w]}' > /dev/null`,
    );
    row(`blog pipeline, plain ${name}`, { ...pipeline, rssKiB: null }, size, grep.seconds, 'no: LOGIN only, IPv4 only, last [ip] on the line');
  }

  const rotatedMb = mb(data.rotated);
  const zgrep = measure(`zcat -f ${data.rotated.map(sh).join(' ')} | grep -F -c 'authentication failed' | cat`);
  row('zcat -f | grep -F -c, rotated set', { ...zgrep, rssKiB: null }, rotatedMb, null, `counts ${zgrep.stdout.trim()} lines; truth ${saslTotal(data.truths.rotated!)} failures`);
  const rotatedFull = measure(smtpguard([path.join(DATA, 'rotated', 'mail.log*')], '--no-state'));
  row('smtpguard scan --no-state, rotated set', rotatedFull, rotatedMb, null, exact(out(), data.truths.rotated!));
  rows.at(-1)![3] = `${(rotatedFull.seconds / zgrep.seconds).toFixed(2)}x zcat|grep`;

  // cron runs on the rotated set, as cron makes them: the default 24h window, the state
  // warm; then 10k lines are appended (or none). Exact = the same JSON as a full scan.
  const work = path.join(DATA, 'cron');
  rmSync(work, { recursive: true, force: true });
  cpSync(path.join(DATA, 'rotated'), work, { recursive: true });
  const state = path.join(work, 'state');
  const now = '2026-11-22T01:00:00Z'; // just after the appended lines
  const cronCommand = (extra: string) =>
    `node ${sh(BIN)} scan --json --now ${now} --log ${sh(path.join(work, 'mail.log*'))} ${extra} > ${sh(path.join(DATA, 'out.json'))}`;
  const cron = cronCommand(`--state-dir ${sh(state)}`);
  measure(cron, 1); // warm the state
  const live = path.join(work, 'mail.log');
  const base = path.join(DATA, 'cron-base'); // outside the log directory: mail.log* must not match it
  rmSync(base, { recursive: true, force: true });
  mkdirSync(base);
  copyFileSync(live, path.join(base, 'mail.log'));
  cpSync(state, path.join(base, 'state'), { recursive: true });
  await writeLog(path.join(DATA, 'append-10k.log'), { lines: 10_000, seed: 999, start: new Date(START + 8 * DAY), end: new Date(START + 8 * DAY + 3_000_000) });
  const appendText = readFileSync(path.join(DATA, 'append-10k.log'));
  const incremental = measure(cron, RUNS, () => {
    copyFileSync(path.join(base, 'mail.log'), live);
    rmSync(state, { recursive: true, force: true });
    cpSync(path.join(base, 'state'), state, { recursive: true });
    appendFileSync(live, appendText);
  });
  const stateful = out();
  const fullWindow = measure(cronCommand('--no-state'), 1);
  const full = out();
  const same = (a: string, b: string) => (JSON.stringify(JSON.parse(a).addresses) === JSON.stringify(JSON.parse(b).addresses) ? 'yes (same as a full scan)' : 'NO: differs from a full scan');
  row('smtpguard scan, cron run (24h window), 10k new lines', incremental, appendText.length / 1e6, null, same(stateful, full));
  rows.at(-1)![3] = `${(fullWindow.seconds / incremental.seconds).toFixed(1)}x faster than a full scan (${fullWindow.seconds.toFixed(2)} s)`;
  const idle = measure(cron);
  row('smtpguard scan, cron run (24h window), nothing new', idle, 0, null, same(out(), full));

  const node0 = measure('node -e 0');
  const version = measure(`node ${sh(BIN)} --version > /dev/null`);
  rows.push(['node -e 0', node0.seconds.toFixed(3), '', '', '', '']);
  rows.push(['smtpguard --version', version.seconds.toFixed(3), '', `${(version.seconds / node0.seconds).toFixed(2)}x node -e 0`, '', '']);

  const fail2ban = spawnSync('sh', ['-c', 'command -v fail2ban-regex']).status === 0;
  if (fail2ban) {
    const f2b = measure(`fail2ban-regex ${sh(data.plain1m)} '/etc/fail2ban/filter.d/postfix.conf[mode=auth]' > /dev/null`);
    row('fail2ban-regex postfix[mode=auth], plain 1M', { ...f2b, rssKiB: null }, mb([data.plain1m]), null, 'not measured');
  }

  // the targets of issue 5, measured here
  const find = (what: string) => rows.find((r) => r[0] === what);
  const secs = (what: string) => Number(find(what)?.[1] ?? NaN);
  const rss = (what: string) => Number(find(what)?.[4] ?? NaN);
  const full5m = secs('smtpguard scan, plain 5M') / secs('grep -F -c, plain 5M');
  const rotated = secs('smtpguard scan --no-state, rotated set') / secs('zcat -f | grep -F -c, rotated set');
  const cronSeconds = secs('smtpguard scan, cron run (24h window), 10k new lines');
  const speedup = fullWindow.seconds / cronSeconds;
  const peak = Math.max(...['smtpguard scan, plain 1M', 'smtpguard scan, plain 5M', 'smtpguard scan --no-state, rotated set', 'smtpguard scan, cron run (24h window), 10k new lines'].map(rss));
  const versionRatio = secs('smtpguard --version') / secs('node -e 0');
  const exactAll = rows.filter((r) => r[0]!.startsWith('smtpguard scan')).every((r) => r[5]!.startsWith('yes'));
  const targets = [
    ['plain 5M <= 3x grep -F -c', `${full5m.toFixed(2)}x`, full5m <= 3],
    ['rotated set <= 0.5x zcat | grep -F -c (full scan)', `${rotated.toFixed(2)}x`, rotated <= 0.5],
    ['cron run, 10k new lines, <= 0.25 s', `${cronSeconds.toFixed(3)} s`, cronSeconds <= 0.25],
    ['cron run >= 10x faster than a full scan', `${speedup.toFixed(1)}x`, speedup >= 10],
    ['peak RSS <= 150 MiB', `${peak} MiB`, peak <= 150],
    ['exact counts everywhere', exactAll ? 'yes' : 'no', exactAll],
    ['--version within 2x of node -e 0', `${versionRatio.toFixed(2)}x`, versionRatio <= 2],
  ].map(([what, got, met]) => `| ${cell(String(what))} | ${got} | ${met ? 'met' : 'NOT met'} |`);
  const targetTable = ['| target (issue 5) | measured | |', '| --- | --- | --- |', ...targets].join('\n');

  const header = ['what', 'seconds (median)', 'MB/s', 'ratio', 'peak RSS MiB', 'exact vs ground truth'];
  const table = [header, header.map(() => '---'), ...rows].map((r) => `| ${r.map(cell).join(' | ')} |`).join('\n');
  const machine = `${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB memory, Node ${process.version}`;
  const text = `# smtpguard benchmark\n\n${new Date().toISOString().slice(0, 10)}, ${machine}; medians of ${RUNS} runs (\`npm run bench\`).\n\nData: generated Debian 12 logs (\`bench/generate.ts\`, ~10% attack lines): plain 1M lines (${mb([data.plain1m]).toFixed(0)} MB), plain 5M lines (${mb([data.plain5m]).toFixed(0)} MB), a rotated set of 8 files, 5M lines (${rotatedMb.toFixed(0)} MB on disk, 6 gzipped).\n\n${table}\n\n${targetTable}\n`;
  writeFileSync(path.join(ROOT, 'bench', 'results.md'), text);
  console.log(`\n${text}`);
}

await main();
