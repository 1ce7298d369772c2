/** `smtpguard install` and `smtpguard run`, the built binary, on files in a temp directory. */
import { spawn, spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const BIN = fileURLToPath(new URL('../bin/smtpguard.js', import.meta.url));
const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));

let dir: string;
let flags: string[];

function smtpguard(args: string[], options: SpawnSyncOptions = {}) {
  const result = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH, TZ: 'UTC' }, input: '', ...options });
  return { code: result.status, stdout: String(result.stdout), stderr: String(result.stderr) };
}

const sasl = (address: string, n: number) =>
  `2026-11-22T11:37:32.000000+00:00 mx postfix/smtpd[1]: warning: unknown[${address}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username=admin\n`.repeat(n);
const login = (address: string) =>
  `2026-11-22T11:40:00.000000+00:00 mx postfix/submission/smtpd[2]: 4ABC123: client=phone[${address}], sasl_method=PLAIN, sasl_username=admin\n`;

const snapshot = () =>
  Object.fromEntries(
    readdirSync(dir)
      .filter((f) => !['mail.log', 'pf', 'smtpguard.lock', 'state'].includes(f))
      .map((f) => [f, readFileSync(path.join(dir, f), 'latin1')]),
  );

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'smtpguard-run-'));
  copyFileSync(path.join(FIXTURES, 'debian12-before.rules'), path.join(dir, 'before.rules'));
  copyFileSync(path.join(FIXTURES, 'debian12-before6.rules'), path.join(dir, 'before6.rules'));
  mkdirSync(path.join(dir, 'pf'));
  writeFileSync(path.join(dir, 'pf', 'main.cf'), 'mynetworks = 127.0.0.0/8 [::1]/128\n');
  writeFileSync(path.join(dir, 'pf', 'master.cf'), '');
  // Postfix waits until a just-written main.cf is a few seconds old before reading it
  const past = new Date(Date.now() - 10_000);
  utimesSync(path.join(dir, 'pf', 'main.cf'), past, past);
  writeFileSync(
    path.join(dir, 'mail.log'),
    sasl('192.0.2.7', 12) +
      [1, 2, 3, 4, 5, 6].map((h) => sasl(`198.51.100.${h}`, 10)).join('') +
      sasl('2001:db8:1:2::a', 3) +
      sasl('2001:db8:1:2::b', 3) +
      sasl('203.0.113.50', 20) +
      login('203.0.113.50') +
      sasl('127.0.0.1', 40),
  );
  flags = [
    '--ufw-rules', path.join(dir, 'before.rules'),
    '--ufw6-rules', path.join(dir, 'before6.rules'),
    '--access-map', path.join(dir, 'sender_access'),
    '--postfix-config-dir', path.join(dir, 'pf'),
    '--lock-file', path.join(dir, 'smtpguard.lock'),
    '--state-dir', path.join(dir, 'state'),
    '--config', path.join(dir, 'smtpguard.conf'),
  ];
  writeFileSync(path.join(dir, 'smtpguard.conf'), `# test config\nLOG=${path.join(dir, 'mail.log')}\nWINDOW=all\nMAP_TYPE=hash\n`);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const install = () => smtpguard(['install', ...flags, '--cron-file', path.join(dir, 'cron'), '--no-reload']);

describe('install then run', () => {
  it('install prepares the files; a second install has nothing to do', () => {
    const first = install();
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(readFileSync(path.join(dir, 'before.rules'), 'utf8')).toMatch(/^:ufw-smtpguard - \[0:0\]$/m);
    expect(readFileSync(path.join(dir, 'cron'), 'utf8')).toMatch(/^\*\/15 \* \* \* \* root .*smtpguard\.js run --config /m);
    expect(existsSync(path.join(dir, 'sender_access.db'))).toBe(true);
    const restrictions = spawnSync('postconf', ['-c', path.join(dir, 'pf'), '-h', 'smtpd_client_restrictions'], { encoding: 'utf8' }).stdout.trim();
    expect(restrictions).toBe(`check_client_access hash:${path.join(dir, 'sender_access')}`);
    expect(install().stdout).toMatch(/nothing to do, already done/);
  });

  it('--dry-run shows blocks, diffs and commands, and changes nothing', () => {
    install();
    const before = snapshot();
    const { code, stdout } = smtpguard(['run', '--dry-run', ...flags]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^smtpguard run --dry-run: blocks: 3 \(\+3 -0\)/);
    expect(stdout).toMatch(/^ {2}198\.51\.100\.0\/24 +60 events, 6 offenders in this \/24/m);
    expect(stdout).toMatch(/^Spared: 203\.0\.113\.50 \(20 SASL failures as admin not counted: logged in as admin\)$/m);
    expect(stdout).toMatch(/^Never blocked: 127\.0\.0\.1 \(40 events; loopback 127\.0\.0\.0\/8\)$/m);
    expect(stdout).toMatch(/^Note: a hash: map cannot hold IPv6 ranges/m);
    expect(stdout).toContain('+-A ufw-smtpguard -s 198.51.100.0/24 -j ufw-smtpguard-log');
    expect(stdout).toContain('+198.51.100 REJECT ');
    expect(stdout).toContain(`  postmap -c ${path.join(dir, 'pf')} hash:${path.join(dir, 'sender_access')}.smtpguard-new\n  postfix -c ${path.join(dir, 'pf')} reload\n  ufw reload\n`);
    expect(snapshot()).toEqual(before);
  });

  it('--dry-run --json gives the plan as JSON', () => {
    install();
    const plan = JSON.parse(smtpguard(['run', '--dry-run', '--json', ...flags]).stdout) as { blocks: Array<{ cidr: string; reason: string }>; commands: string[][] };
    expect(plan.blocks.map((b) => [b.cidr, b.reason])).toEqual([
      ['192.0.2.7/32', 'host'],
      ['198.51.100.0/24', 'subnet'],
      ['2001:db8:1:2::/64', 'prefix'],
    ]);
    expect(plan.commands.map((c) => c[0])).toEqual(['postmap', 'postfix', 'ufw']);
  });

  it('run writes once, says one line, then is silent', () => {
    install();
    const first = smtpguard(['run', '--no-reload', ...flags]);
    expect(first.stderr).toBe('');
    expect(first.stdout).toBe('blocks: 3 (+3 -0)\n');
    expect(first.code).toBe(0);
    expect(readFileSync(path.join(dir, 'sender_access'), 'utf8')).toContain('192.0.2.7 REJECT');
    const second = smtpguard(['run', '--no-reload', ...flags]);
    expect(second).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(smtpguard(['run', '--no-reload', '--verbose', ...flags]).stdout).toBe('blocks: 3 (+0 -0), nothing changed\n');
  });

  it('a reload skipped by --no-reload is owed: the next run does it although no text changes', () => {
    install();
    expect(smtpguard(['run', '--no-reload', ...flags]).stdout).toBe('blocks: 3 (+3 -0)\n');
    const owed = smtpguard(['run', '--dry-run', ...flags]).stdout;
    expect(owed).toMatch(/^smtpguard run --dry-run: blocks: 3 \(\+0 -0\)/);
    expect(owed).toContain('Commands that would run:\n  postmap');
    expect(owed).toContain('  ufw reload\n');
  });

  it('a map whose index is missing gets postmap even when its text does not change', () => {
    install();
    smtpguard(['run', '--no-reload', ...flags]);
    // as if a run had reloaded everything: a fresh index, nothing owed
    spawnSync('postmap', ['-c', path.join(dir, 'pf'), `hash:${path.join(dir, 'sender_access')}`]);
    rmSync(path.join(dir, 'state'), { recursive: true });
    expect(smtpguard(['run', '--dry-run', ...flags]).stdout).toContain('Commands: none');
    rmSync(path.join(dir, 'sender_access.db'));
    const plan = smtpguard(['run', '--dry-run', ...flags]).stdout;
    expect(plan).toContain(`  postmap -c ${path.join(dir, 'pf')} hash:${path.join(dir, 'sender_access')}.smtpguard-new\n  postfix -c ${path.join(dir, 'pf')} reload\n`);
    expect(plan).not.toContain('ufw reload');
    expect(plan).toContain(`${path.join(dir, 'sender_access')}: unchanged, but its reload is owed`);
  });

  it('status reads back the blocks, with the reasons the run kept, and says what it could not read', () => {
    install();
    smtpguard(['run', '--no-reload', ...flags]);
    const { code, stdout } = smtpguard(['status', ...flags]);
    expect(code).toBe(0);
    expect(stdout).toContain('Blocked now: 3');
    expect(stdout).toMatch(/^ {2}198\.51\.100\.0\/24 +subnet +60 /m);
    expect(stdout).toMatch(/^ {2}2001:db8:1:2::\/64 +prefix +6 /m);
    expect(stdout).toMatch(/^Note: cannot read the iptables counters of ufw-smtpguard/m);
    const json = JSON.parse(smtpguard(['status', '--json', ...flags]).stdout) as { blocks: Array<{ cidr: string; record: { reason: string } | null }>; perHour: number[] };
    expect(json.blocks.map((b) => [b.cidr, b.record?.reason])).toEqual([
      ['192.0.2.7/32', 'host'],
      ['198.51.100.0/24', 'subnet'],
      ['2001:db8:1:2::/64', 'prefix'],
    ]);
    expect(json.perHour).toHaveLength(24);
  });

  it('status without root shows what it can read and says what it could not', () => {
    install();
    smtpguard(['run', '--no-reload', ...flags]);
    chmodSync(path.join(dir, 'before.rules'), 0o000);
    // root reads anything: take away its power to ignore file modes (and to read iptables)
    const isRoot = process.getuid?.() === 0;
    const argv = [process.execPath, BIN, 'status', ...flags];
    const r = isRoot
      ? spawnSync('setpriv', ['--bounding-set', '-dac_override,-dac_read_search,-net_admin,-net_raw', ...argv], { encoding: 'utf8', env: { PATH: process.env.PATH, TZ: 'UTC' } })
      : spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', env: { PATH: process.env.PATH, TZ: 'UTC' } });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^Note: cannot read the blocks in .*before\.rules: permission denied \(root only\)$/m);
    expect(r.stdout).toMatch(/^ {2}2001:db8:1:2::\/64 +prefix /m); // before6.rules is still readable
    expect(r.stdout).toMatch(/^Note: cannot read the iptables counters/m);
  });

  it('refuses to run on files without markers, naming the file and the fix; changes nothing', () => {
    const before = snapshot();
    const { code, stderr } = smtpguard(['run', ...flags]);
    expect(code).toBe(3);
    expect(stderr).toMatch(/^smtpguard: .*before\.rules has no "# BEGIN smtpguard" marker line -- run "smtpguard install"/);
    expect(snapshot()).toEqual(before);
  });

  it('a second run exits at once while the first holds the lock; a stale lock is taken over', async () => {
    install();
    const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 20000)', 'smtpguard-lock-holder'], { stdio: 'ignore' });
    try {
      writeFileSync(path.join(dir, 'smtpguard.lock'), `${holder.pid}\n`);
      const busy = smtpguard(['run', '--no-reload', ...flags]);
      expect(busy.code).toBe(4);
      expect(busy.stderr).toMatch(/^smtpguard: another smtpguard run \(pid \d+\) holds .*smtpguard\.lock -- /);
    } finally {
      holder.kill('SIGKILL');
    }
    await new Promise((resolve) => holder.once('exit', resolve));
    const recovered = smtpguard(['run', '--no-reload', ...flags]);
    expect(recovered.stdout).toBe('blocks: 3 (+3 -0)\n');
    expect(existsSync(path.join(dir, 'smtpguard.lock'))).toBe(false);
  });

  it('uninstall removes what install added, and the blocks', () => {
    const pristine = readFileSync(path.join(FIXTURES, 'debian12-before.rules'), 'utf8');
    install();
    smtpguard(['run', '--no-reload', ...flags]);
    const { code } = smtpguard(['uninstall', ...flags, '--cron-file', path.join(dir, 'cron'), '--no-reload']);
    expect(code).toBe(0);
    expect(readFileSync(path.join(dir, 'before.rules'), 'utf8')).toBe(pristine);
    expect(existsSync(path.join(dir, 'sender_access'))).toBe(false);
    expect(existsSync(path.join(dir, 'cron'))).toBe(false);
    expect(spawnSync('postconf', ['-c', path.join(dir, 'pf'), '-h', 'smtpd_client_restrictions'], { encoding: 'utf8' }).stdout.trim()).toBe('');
  });
});

describe('settings', () => {
  it('config prints each value and where it came from: flag > environment > file > default', () => {
    const { stdout } = smtpguard(['config', '--config', path.join(dir, 'smtpguard.conf'), '--threshold', '7'], {
      env: { PATH: process.env.PATH, SMTPGUARD_THRESHOLD: '9', SMTPGUARD_THRESHOLD6: '2' },
    });
    expect(stdout).toMatch(/^THRESHOLD=7 +# --threshold$/m);
    expect(stdout).toMatch(/^THRESHOLD6=2 +# environment SMTPGUARD_THRESHOLD6$/m);
    expect(stdout).toMatch(new RegExp(`^WINDOW=all +# ${dir}/smtpguard\\.conf:3$`, 'm'));
    expect(stdout).toMatch(/^SUBNET_HOSTS=5 +# default$/m);
  });

  it.each([
    ['FROBNICATE=1\n', /smtpguard\.conf:1: unknown key FROBNICATE -- known keys: LOG, WINDOW/],
    ['# ok\nTHRESHOLD=ten\n', /smtpguard\.conf:2: THRESHOLD=ten: expected a whole number from 1 up/],
    ['ALLOW=192.0.2.0/24 not-an-address\n', /smtpguard\.conf:1: ALLOW=.*"not-an-address" is not an IPv4 or IPv6 address or CIDR range/],
    ['just words\n', /smtpguard\.conf:1: expected KEY=value/],
  ])('a bad config file is an error with file:line (%j)', (text, message) => {
    writeFileSync(path.join(dir, 'smtpguard.conf'), text);
    const { code, stderr } = smtpguard(['config', '--config', path.join(dir, 'smtpguard.conf')]);
    expect(stderr).toMatch(message);
    expect(code).toBe(3);
  });
});
