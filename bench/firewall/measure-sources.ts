/** The sources part of npm run bench:firewall: smtpguard's own time (a dry run) with 1k, 10k, 100k blocks from each block source. */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Addresses, BIN, fmt, log, ROOT, seconds } from './common.js';
import { table } from './results.js';

/** A source whose 100k run would take longer than this (by its 1k-10k growth) is not run at 100k. */
const SOURCE_LIMIT_SECONDS = 600;

interface SourceRow {
  source: string;
  blocks: number;
  seconds: number | null;
  note: string;
}

/**
 * `smtpguard run --dry-run` (no root, no firewall: copies of the installed example files) with N
 * blocks from each source: manual blocks (overrides.json), offenders in a log (one reject per
 * address, --threshold 1), fleet decisions (the pulled set as kept in crowdsec-stream.json).
 */
function measureSources(): SourceRow[] {
  const dir = mkdtempSync('/var/tmp/smtpguard-bench-sources-');
  const rows: SourceRow[] = [];
  try {
    for (const f of ['before.rules', 'before6.rules']) copyFileSync(path.join(ROOT, 'examples', 'etc', 'ufw', f), path.join(dir, f));
    copyFileSync(path.join(ROOT, 'examples', 'etc', 'postfix', 'sender_access'), path.join(dir, 'sender_access'));
    writeFileSync(path.join(dir, 'empty.log'), '');
    writeFileSync(path.join(dir, 'key'), 'k', { mode: 0o600 });
    writeFileSync(path.join(dir, 'smtpguard.conf'), '# settings: the flags\n');
    mkdirSync(path.join(dir, 'etc'));
    writeFileSync(path.join(dir, 'etc', 'main.cf'), 'compatibility_level = 3.6\nmynetworks = 127.0.0.0/8\n');
    const now = Date.now();
    const common = ['--dry-run', '--window', 'all', '--max-blocks', '0', '--ufw-rules', path.join(dir, 'before.rules'), '--ufw6-rules', path.join(dir, 'before6.rules'),
      '--access-map', path.join(dir, 'sender_access'), '--map-type', 'hash', '--lock-file', path.join(dir, 'lock'), '--postfix-config-dir', path.join(dir, 'etc'), '--config', path.join(dir, 'smtpguard.conf')];
    // one unmeasured run first: the first node start after a while pays for a cold cache
    spawnSync(process.execPath, [BIN, 'run', ...common, '--state-dir', path.join(dir, 'warm'), '--log', path.join(dir, 'empty.log')], { encoding: 'utf8' });
    const plan = ['manual blocks (overrides.json)', 'offenders in the log (ban memory)', 'fleet decisions (CrowdSec)'].flatMap((source) => [1000, 10_000, 100_000].map((n) => [source, n] as const));
    for (const [source, n] of plan) {
      // a source that grows too fast is not run at 100k (it would take hours): the row says what it would take
      const at = (blocks: number) => rows.find((r) => r.source === source && r.blocks === blocks)?.seconds ?? null;
      const small = at(1000);
      const large = at(10_000);
      if (n === 100_000 && small !== null && large !== null && large * (large / small) > SOURCE_LIMIT_SECONDS) {
        rows.push({ source, blocks: n, seconds: null, note: `not run: about ${fmt((large * (large / small)) / 60, 0)} min or more at the 1k-10k rate` });
        log(`sources: ${source}, ${n}: not run (${rows.at(-1)!.note})`);
        continue;
      }
      const state = path.join(dir, `state-${rows.length}`);
      mkdirSync(state, { mode: 0o700 });
      const addresses = new Addresses(77 + n);
      const cidrs = Array.from({ length: n }, () => addresses.take());
      const extra: string[] = ['--state-dir', state];
      if (source.startsWith('manual')) {
        writeFileSync(path.join(state, 'overrides.json'), JSON.stringify({ version: 1, entries: cidrs.map((cidr) => ({ cidr, kind: 'block', until: null, comment: null, created: new Date(now).toISOString() })) }));
        extra.push('--log', path.join(dir, 'empty.log'));
      } else if (source.startsWith('offenders')) {
        const logFile = path.join(dir, `log-${n}`);
        const stamp = new Date(now - 3600e3).toISOString().replace('Z', '000+00:00');
        writeFileSync(logFile, cidrs.map((c) => `${stamp} mx postfix/smtpd[1234]: NOQUEUE: reject: RCPT from unknown[${c.replace(/\/32$/, '')}]: 554 5.7.1 <victim@example.org>: Relay access denied; from=<a@example.com> to=<victim@example.org> proto=ESMTP helo=<x>`).join('\n') + '\n');
        extra.push('--log', logFile, '--threshold', '1', '--subnet-hosts', '256');
      } else {
        const url = 'http://127.0.0.1:9';
        const stream = { version: 1, url, filter: JSON.stringify({ scenarios: ['smtpguard/'], origins: [] }), startup: now, pulled: now, decisions: cidrs.map((cidr, i) => ({ id: i + 1, cidr, family: 4, scenario: 'smtpguard/bench', origin: 'bench', until: now + 7 * 86400e3 })) };
        writeFileSync(path.join(state, 'crowdsec-stream.json'), JSON.stringify(stream), { mode: 0o600 });
        extra.push('--log', path.join(dir, 'empty.log'), '--crowdsec-url', url, '--crowdsec-bouncer-key-file', path.join(dir, 'key'));
      }
      log(`sources: ${source}, ${n} blocks (dry-run)`);
      const t0 = process.hrtime.bigint();
      const r = spawnSync(process.execPath, [BIN, 'run', ...common, ...extra], { encoding: 'utf8', maxBuffer: 1 << 30, timeout: 1_800_000 });
      const s = seconds(t0);
      const lines = (r.stdout.match(/^\+-A ufw-smtpguard -s /gm) ?? []).length;
      if (r.status !== 0) throw new Error(`smtpguard run --dry-run (${source}, ${n}) exited ${r.status}: ${r.stderr.slice(0, 500)}`);
      const note = lines === n ? `${lines} rules in the diff` : `${lines} rules in the diff (expected ${n})`;
      rows.push({ source, blocks: n, seconds: s, note });
      log(`sources: ${source}, ${n}: ${s.toFixed(2)} s (${note})`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

/** How each source's time grows from 1k to 10k blocks, and what that makes of 100k. */
function sourceReadings(rows: readonly SourceRow[]): string {
  const out: string[] = [];
  for (const source of [...new Set(rows.map((r) => r.source))]) {
    const at = (n: number) => rows.find((r) => r.source === source && r.blocks === n)?.seconds ?? null;
    const small = at(1000);
    const large = at(10_000);
    if (small === null || large === null) continue;
    const growth = Math.log10(large / small);
    const measured = at(100_000);
    const guess = large * 10 ** growth;
    out.push(
      `- ${source}: 10x the blocks took ${(large / small).toFixed(1)}x the time (time ~ blocks^${growth.toFixed(1)}); ` +
        (measured !== null
          ? `100k measured: ${measured.toFixed(1)} s (${(measured / large).toFixed(1)}x the 10k time).`
          : `at that rate 100k would take at least ${guess >= 3600 ? `${(guess / 3600).toFixed(1)} h` : `${(guess / 60).toFixed(0)} min`} (not run; a low estimate: the fixed start-up in the 1k time flattens the rate).`),
    );
  }
  return out.join('\n');
}

function sourceTable(rows: readonly SourceRow[]): string {
  return table(['block source', 'blocks', 'smtpguard run --dry-run (s)', 'check'], rows.map((r) => [r.source, String(r.blocks), r.seconds === null ? 'not run' : fmt(r.seconds, 2), r.note]));
}

/** The part's text: what was measured, the table, what it says. */
export function sourcesPart(): string {
  const rows = measureSources();
  return `### smtpguard's own time by block source

\`smtpguard run --dry-run\` (no firewall; copies of the example files), one run each: the decision before any firewall work.
Manual blocks go through the overrides step, offenders in the log through ban memory, fleet decisions through the fleet merge.

${sourceTable(rows)}

${sourceReadings(rows)}
`;
}
