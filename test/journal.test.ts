/**
 * --journal against a real journal: entries are written into a journal directory by
 * systemd-journal-remote (Debian's systemd-journal-remote package) from the export
 * format, and read back by journalctl --directory, as on a journald-only host.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const BIN = fileURLToPath(new URL('../bin/smtpguard.js', import.meta.url));
const REMOTE = '/lib/systemd/systemd-journal-remote';
const missing = [spawnSync('sh', ['-c', 'command -v journalctl']).status === 0 ? null : 'journalctl', existsSync(REMOTE) ? null : 'systemd-journal-remote'].filter(
  (m) => m !== null,
);
if (missing.length > 0) {
  if (process.env.CI) throw new Error(`journal tests cannot run in CI: missing ${missing.join(', ')} (.ci/run must install them)`);
  console.log(`journal tests not run: this machine lacks ${missing.join(', ')}`);
}

const dir = mkdtempSync(path.join(tmpdir(), 'smtpguard-journal-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The example logs' lines (Debian 12, RFC 3339): Postfix's and other programs'. */
const LINES = readFileSync(fileURLToPath(new URL('../examples/logs/mail.log', import.meta.url)), 'latin1').split('\n').filter((l) => l !== '');
const LINE = /^(\S+) (\S+) ([^\s[]+)(?:\[(\d+)\])?: (.*)$/;

/** Journal entries for log lines, in journald's export format; Postfix's under postfix@-.service. */
function exportFormat(lines: readonly string[]): string {
  return lines
    .map((line) => {
      const m = LINE.exec(line)!;
      const [, stamp, host, tag, pid, message] = m as unknown as [string, string, string, string, string | undefined, string];
      const micros = BigInt(Date.parse(stamp)) * 1000n + BigInt(Number(/\.(\d{3})(\d{3})/.exec(stamp)?.[2] ?? 0));
      const unit = tag.startsWith('postfix') ? 'postfix@-.service' : `${tag.split('/')[0]}.service`;
      return [`__REALTIME_TIMESTAMP=${micros}`, `_HOSTNAME=${host}`, `SYSLOG_IDENTIFIER=${tag}`, `_PID=${pid ?? 1}`, `_SYSTEMD_UNIT=${unit}`, `MESSAGE=${message}`, ''].join('\n') + '\n';
    })
    .join('');
}

function writeJournal(journalDir: string, name: string, lines: readonly string[]): void {
  mkdirSync(journalDir, { recursive: true });
  const input = path.join(dir, `${name}.export`);
  writeFileSync(input, exportFormat(lines));
  execFileSync(REMOTE, ['-o', path.join(journalDir, `${name}.journal`), input], { stdio: 'ignore' });
}

function smtpguard(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH, TZ: 'UTC' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const scanArgs = ['scan', '--json', '--window', 'all', '--now', '2026-11-23T00:00:00Z'];
const addresses = (json: string) => (JSON.parse(json) as { addresses: unknown[] }).addresses;

describe.runIf(missing.length === 0)('--journal on a real journal', () => {
  it('gives exactly what the same lines give as a mail.log', () => {
    const journalDir = path.join(dir, 'one');
    writeJournal(journalDir, 'all', LINES);
    const file = path.join(dir, 'mail.log');
    writeFileSync(file, LINES.join('\n') + '\n');
    const fromJournal = smtpguard([...scanArgs, '--no-state', '--journal', '--journal-directory', journalDir]);
    expect(fromJournal.stderr).toBe('');
    const fromFile = smtpguard([...scanArgs, '--no-state', '--log', file]);
    expect(addresses(fromJournal.stdout)).toEqual(addresses(fromFile.stdout));
    expect(addresses(fromJournal.stdout).length).toBeGreaterThan(20);
    const source = (JSON.parse(fromJournal.stdout) as { sources: Array<{ path: string; lines: number; events: number }> }).sources[0]!;
    expect(source.path).toBe(`journal:postfix*@${journalDir}`);
    // only Postfix's unit is read: the other programs' lines are not even fetched
    expect(source.lines).toBe(LINES.filter((l) => LINE.exec(l)![3]!.startsWith('postfix')).length);
  });

  it('reads on from its cursor: new entries only, the same answer as reading everything', () => {
    const journalDir = path.join(dir, 'two');
    const state = path.join(dir, 'state');
    const half = Math.floor(LINES.length / 2);
    writeJournal(journalDir, 'first', LINES.slice(0, half));
    const first = smtpguard([...scanArgs, '--journal', '--journal-directory', journalDir, '--state-dir', state]);
    expect(first.code).toBe(0);
    const entry = (JSON.parse(readFileSync(path.join(state, 'scan-state.json'), 'utf8')) as { entries: Array<{ cursor?: string; lines: number }> }).entries[0]!;
    expect(entry.cursor).toMatch(/^s=/);
    writeJournal(journalDir, 'second', LINES.slice(half));
    const incremental = smtpguard([...scanArgs, '--journal', '--journal-directory', journalDir, '--state-dir', state]);
    const full = smtpguard([...scanArgs, '--no-state', '--journal', '--journal-directory', journalDir]);
    expect(addresses(incremental.stdout)).toEqual(addresses(full.stdout));
    expect((JSON.parse(incremental.stdout) as { sources: Array<{ lines: number }> }).sources).toEqual((JSON.parse(full.stdout) as { sources: Array<{ lines: number }> }).sources);
    // nothing new: the state is not even rewritten
    const mtimes = () => readdirSync(state).map((f) => `${f} ${statSync(path.join(state, f)).mtimeMs}`).sort();
    const before = mtimes();
    expect(addresses(smtpguard([...scanArgs, '--journal', '--journal-directory', journalDir, '--state-dir', state]).stdout)).toEqual(addresses(full.stdout));
    expect(mtimes()).toEqual(before);
  });

  it('a cursor the journal no longer holds (vacuumed, replaced) means reading it all again', () => {
    const journalDir = path.join(dir, 'four');
    const state = path.join(dir, 'state4');
    writeJournal(journalDir, 'old', LINES.slice(0, 300));
    smtpguard([...scanArgs, '--journal', '--journal-directory', journalDir, '--state-dir', state]);
    rmSync(journalDir, { recursive: true });
    writeJournal(journalDir, 'new', LINES.slice(600, 900));
    const incremental = smtpguard([...scanArgs, '--journal', '--journal-directory', journalDir, '--state-dir', state]);
    const full = smtpguard([...scanArgs, '--no-state', '--journal', '--journal-directory', journalDir]);
    expect(addresses(incremental.stdout)).toEqual(addresses(full.stdout));
  });

  it('a journal without Postfix entries is no error: nothing to count', () => {
    const journalDir = path.join(dir, 'five');
    writeJournal(journalDir, 'other', LINES.filter((l) => !LINE.exec(l)![3]!.startsWith('postfix')).slice(0, 20));
    const r = smtpguard([...scanArgs, '--journal', '--journal-directory', journalDir, '--state-dir', path.join(dir, 'state5')]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(addresses(r.stdout)).toEqual([]);
  });

  it('without --log and without a mail log on the default paths, reads the journal by itself and says so', () => {
    const journalDir = path.join(dir, 'three');
    writeJournal(journalDir, 'all', LINES.slice(0, 200));
    const r = smtpguard(['scan', '--window', 'all', '--no-state', '--journal-directory', journalDir, '--now', '2026-11-23T00:00:00Z']);
    const hasMailLog = readdirSync('/var/log').some((f) => f.startsWith('mail.log') || f.startsWith('mail.warn'));
    if (hasMailLog) {
      expect(r.stdout).toMatch(/Read \d+ files? \(\/var\/log\/mail/); // this machine has a mail log: that is what is read
    } else {
      expect(r.stderr).toBe(`smtpguard: no mail log at /var/log/mail.log* or /var/log/mail.warn*: reading Postfix's entries in the journal (unit postfix*)\n`);
      expect(r.stdout).toContain(`(journal:postfix*@${journalDir})`);
    }
    expect(r.code).toBe(0);
  });
  it('follow: new entries, in a journal file written after it started, are blocked within seconds; nothing counted twice', async () => {
    const journalDir = path.join(dir, 'follow');
    const state = path.join(dir, 'state-follow');
    const failure = (address: string) => `${new Date().toISOString().replace('Z', '000+00:00')} mx postfix/smtpd[7]: warning: unknown[${address}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6`;
    writeJournal(journalDir, 'first', [failure('192.0.2.8'), failure('192.0.2.8')]);
    const access = path.join(dir, 'follow-access');
    writeFileSync(access, '# BEGIN smtpguard\n# END smtpguard\n');
    const pf = path.join(dir, 'follow-pf');
    mkdirSync(pf, { recursive: true });
    writeFileSync(path.join(pf, 'main.cf'), 'mynetworks = 127.0.0.0/8\n');
    const args = ['follow', '--journal', '--journal-directory', journalDir, '--state-dir', state, '--lock-file', path.join(dir, 'follow.lock'), '--access-map', access, '--map-type', 'cidr', '--postfix-config-dir', pf, '--config', path.join(dir, 'none.conf'), '--firewall', 'none', '--no-reload', '--threshold', '3', '--window', '1h', '--reload-interval', '1s'];
    writeFileSync(path.join(dir, 'none.conf'), '');
    const child = spawn(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH, TZ: 'UTC' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    try {
      const until = async (ok: () => boolean, what: string) => {
        for (const t0 = Date.now(); !ok(); await new Promise((r) => setTimeout(r, 20))) if (Date.now() - t0 > 10_000) throw new Error(`waited for ${what}: ${out}`);
      };
      await until(() => out.includes('smtpguard follow: reading journal:postfix*'), 'the follower to start');
      expect(readFileSync(access, 'utf8')).not.toContain('192.0.2.8');
      writeJournal(journalDir, 'second', [failure('192.0.2.8')]);
      await until(() => readFileSync(access, 'utf8').includes('192.0.2.8/32 REJECT'), 'the block');
      await until(() => readFileSync(path.join(state, 'blocks.json'), 'utf8').includes('"192.0.2.8/32"'), 'its record (written after the map)');
      const records = JSON.parse(readFileSync(path.join(state, 'blocks.json'), 'utf8')) as Array<{ cidr: string; total: number }>;
      expect(records.find((r) => r.cidr === '192.0.2.8/32')?.total).toBe(3);
      // journalctl dies: the follower starts it again from the saved cursor, and goes on
      const killed = spawnSync('pkill', ['-f', `journalctl --directory ${journalDir} .*--follow`]);
      expect(killed.status).toBe(0);
      writeJournal(journalDir, 'third', [failure('192.0.2.9'), failure('192.0.2.9'), failure('192.0.2.9')]);
      await until(() => readFileSync(access, 'utf8').includes('192.0.2.9/32 REJECT'), 'the block after journalctl died');
      await until(() => readFileSync(path.join(state, 'blocks.json'), 'utf8').includes('"192.0.2.9/32"'), 'its record');
      const again = JSON.parse(readFileSync(path.join(state, 'blocks.json'), 'utf8')) as Array<{ cidr: string; total: number }>;
      expect(again.find((r) => r.cidr === '192.0.2.8/32')?.total).toBe(3);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    // the one fault of the test, said once
    expect(out.match(/warning|error/gi)).toEqual(['warning']);
    expect(out).toMatch(/^smtpguard: warning: journalctl --follow ended \(exit by a signal\); started again from the saved cursor$/m);
  });
});
