/** The built CLI, spawned the way cron runs it: no terminal, exit codes and stderr matter. */
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const BIN = fileURLToPath(new URL('../bin/smtpguard.js', import.meta.url));
const dir = mkdtempSync(path.join(tmpdir(), 'smtpguard-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function smtpguard(args: string[], options: SpawnSyncOptions = {}) {
  const result = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH, TZ: 'UTC', SMTPGUARD_STATE_DIR: path.join(dir, 'state') },
    input: '',
    ...options,
  });
  return { code: result.status, stdout: String(result.stdout), stderr: String(result.stderr) };
}

const sasl = (address: string) =>
  `Nov 22 12:33:05 mx postfix/smtpd[1737]: warning: unknown[${address}]: SASL LOGIN authentication failed: (reason unavailable), sasl_username=testuser\n`;
const log = path.join(dir, 'mail.log');
const logText = sasl('192.0.2.5').repeat(3) + sasl('2001:db8::7');
writeFileSync(log, logText);

describe('smtpguard scan (built binary)', () => {
  it('prints a table of offenders and what it read', () => {
    const { code, stdout, stderr } = smtpguard(['scan', '--log', log, '--now', '2026-11-23T00:00:00Z', '--window', '7d']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toMatch(/^2 addresses with 4 events in the last 7d/);
    expect(stdout).toMatch(/192\.0\.2\.5\s+3\s+0\s+0\s+0\s+3\s+2026-11-22 12:33:05/);
    expect(stdout).toContain(`Read 1 file (${log}): ${logText.length} B, 4 lines in`);
  });

  it('prints JSON with the documented keys', () => {
    const { code, stdout } = smtpguard(['scan', '--log', log, '--now', '2026-11-23T00:00:00Z', '--window', 'all', '--json']);
    expect(code).toBe(0);
    const json = JSON.parse(stdout) as Record<string, unknown>;
    expect(Object.keys(json)).toEqual(expect.arrayContaining(['addresses', 'blocks', 'sources']));
    expect(json.addresses).toEqual([
      expect.objectContaining({ address: '192.0.2.5', total: 3, firstSeen: '2026-11-22T12:33:05.000Z', lastSeen: '2026-11-22T12:33:05.000Z' }),
      expect.objectContaining({ address: '2001:db8::7', total: 1 }),
    ]);
    expect((json.addresses as Array<{ events: Record<string, number> }>)[0]!.events).toMatchObject({ saslFailure: 3, reject: 0 });
    expect(json.blocks).toEqual([]);
    expect(json.sources).toEqual([{ path: log, bytes: logText.length, lines: 4, events: 4 }]);
  });

  it('reads stdin with --log -', () => {
    const { code, stdout } = smtpguard(['scan', '--log', '-', '--window', 'all', '--json', '--now', '2026-11-23T00:00:00Z'], {
      input: sasl('198.51.100.1'),
    });
    expect(code).toBe(0);
    expect((JSON.parse(stdout) as { addresses: Array<{ address: string }> }).addresses.map((a) => a.address)).toEqual(['198.51.100.1']);
  });

  it('says "no offenders" when the window holds none', () => {
    const { code, stdout } = smtpguard(['scan', '--log', log, '--now', '2026-11-23T00:00:00Z', '--window', '1h']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^No offenders in the last 1h/);
  });

  it('a missing log is one line naming it, exit 3, no stack trace', () => {
    const { code, stdout, stderr } = smtpguard(['scan', '--log', path.join(dir, 'nope.log')]);
    expect(code).toBe(3);
    expect(stdout).toBe('');
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(/^smtpguard: no log file matches --log .*nope\.log -- /);
  });

  it('an unreadable log is one line naming it and what to do, exit 3', () => {
    const secret = path.join(dir, 'secret.log');
    writeFileSync(secret, sasl('192.0.2.1'));
    chmodSync(secret, 0o000);
    // root reads anything: take away its power to ignore file modes, like an admin who forgot sudo
    const isRoot = process.getuid?.() === 0;
    const result = isRoot
      ? spawnSync('setpriv', ['--bounding-set', '-dac_override,-dac_read_search', process.execPath, BIN, 'scan', '--no-state', '--log', secret], { encoding: 'utf8', env: { PATH: process.env.PATH } })
      : spawnSync(process.execPath, [BIN, 'scan', '--no-state', '--log', secret], { encoding: 'utf8' });
    expect(result.stderr).toBe(`smtpguard: cannot read ${secret}: permission denied -- run as root, or as a member of the group that owns the log (adm on Debian)\n`);
    expect(result.status).toBe(3);
  });

  it.each([
    [['scan', '--window', 'soon'], /--window soon: not a duration/],
    [['scan', '--now', 'yesterday'], /--now yesterday is not an ISO 8601 date-time/],
    [['scan', '--kinds', 'saslFailure,bogus'], /unknown kind "bogus"/],
    [['scan', '--frobnicate'], /unknown option '--frobnicate'/],
  ])('bad usage %j exits 2 with a message', (args, message) => {
    const { code, stderr } = smtpguard([...args, '--log', log]);
    expect(stderr).toMatch(message);
    expect(code).toBe(2);
  });

  it('--version prints the package version', () => {
    const { code, stdout } = smtpguard(['--version']);
    expect(code).toBe(0);
    expect(stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
});

describe('output into a closed pipe', () => {
  it('`smtpguard run --help | head -1` stops quietly, no stack trace', () => {
    for (const args of ['run --help', 'scan --help', '--help', 'run --help', 'scan --help', '--help', 'run --help', 'install --help']) {
      const r = spawnSync('sh', ['-c', `"${process.execPath}" "${BIN}" ${args} | head -1`], { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.stdout.split('\n')[0]).toMatch(/^Usage: smtpguard/);
    }
  });
});

describe('help that points somewhere (issue 21)', () => {
  it('smtpguard help and smtpguard help COMMAND print the help; an unknown command is named', () => {
    expect(smtpguard(['help'])).toMatchObject({ code: 0, stdout: expect.stringMatching(/^Usage: smtpguard \[options\] \[command\]/) });
    expect(smtpguard(['help', 'run'])).toMatchObject({ code: 0, stdout: expect.stringMatching(/^Usage: smtpguard run \[options\]/) });
    expect(smtpguard(['help', 'nope'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/unknown command 'nope'/) });
  });

  /** Every `"smtpguard ..."` command and every `or "WORD"` value a message suggests. */
  const suggestions = (message: string, flag: string | null): string[][] => {
    const out: string[][] = [];
    for (const m of message.matchAll(/"smtpguard ([^"]+)"/g)) out.push(m[1]!.split(' '));
    if (flag !== null) for (const m of message.matchAll(/, or "([a-z]+)"/g)) out.push(['config', flag, m[1]!]);
    return out;
  };

  it.each([
    [['run', '--timeout', '0s'], '--timeout'],
    [['run', '--timeout', '0'], '--timeout'],
    [['run', '--window', '0'], '--window'],
    [['run', '--window', '0m'], '--window'],
    [['run', '--ban-time', '0'], '--ban-time'],
    [['run', '--ban-time-max', 'soon'], '--ban-time-max'],
    [['scan', '--threshold', 'x'], null],
    [['scan', 'extra'], null],
    [['nope'], null],
  ] as const)('%j: a clear error whose every suggestion is accepted', (args, flag) => {
    const r = smtpguard([...args]);
    expect(r.code).toBe(2);
    const tried = suggestions(r.stderr, flag);
    expect(tried.length + (args[0] === 'nope' ? 1 : 0)).toBeGreaterThan(0);
    for (const suggestion of tried) expect(smtpguard(suggestion).code, suggestion.join(' ')).toBe(0);
  });

  it('zero means nothing for every duration setting, in any unit, and the hint names that setting\'s own word', () => {
    for (const zero of ['0', '0s', '0m', '0h']) {
      expect(smtpguard(['config', '--timeout', zero]).stderr).toMatch(/a duration of zero means nothing here: .* or "none"/);
      expect(smtpguard(['config', '--window', zero]).stderr).toMatch(/a duration of zero means nothing here: .* or "all"/);
      expect(smtpguard(['config', '--ban-time', zero]).stderr).toMatch(/a duration of zero means nothing here: .* or "forever"/);
    }
  });

  it('no chown/chmod advice for a device or a system file given as --config', () => {
    const dev = smtpguard(['scan', '--config', '/dev/null', '--log', log]);
    expect(dev.stderr).not.toMatch(/chown|chmod/);
    if (process.getuid?.() === 0) expect(dev).toMatchObject({ code: 3, stderr: expect.stringMatching(/\/dev\/null is a character device, not a regular file/) });
    const passwd = smtpguard(['scan', '--config', '/etc/passwd', '--log', log]);
    expect(passwd.code).toBe(3);
    expect(passwd.stderr).not.toMatch(/chown|chmod/);
    // a config file in a shared directory (/tmp): no advice to chown /tmp
    const shared = path.join(tmpdir(), `smtpguard-shared-${process.pid}.conf`);
    writeFileSync(shared, '# x\n');
    try {
      const r = smtpguard(['scan', '--config', shared, '--log', log]);
      if (process.getuid?.() === 0) expect(r.stderr).toMatch(/is a shared system directory: keep smtpguard's files in a directory only root can write/);
      expect(r.stderr).not.toMatch(/chown root:root \/tmp/);
    } finally {
      rmSync(shared, { force: true });
    }
  });

  it('journalctl on a missing --journal-directory: the hint says to check the directory, not to run as root', () => {
    const r = smtpguard(['scan', '--journal', '--journal-directory', '/nonexistent']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/check --journal-directory \(\/nonexistent\)/);
  });
});

describe('settings that contradict each other (issue 21)', () => {
  it.each([
    [['--ipv6-subnet', '72'], /IPV6_SUBNET=72 \(--ipv6-subnet\) and IPV6_PREFIX=64 \(default\): the network above the prefix must be wider/],
    [['--ipv6-subnet', '64'], /IPV6_SUBNET=64 \(--ipv6-subnet\) and IPV6_PREFIX=64 \(default\)/],
    [['--ipv6-prefix', '40'], /IPV6_SUBNET=48 \(default\) and IPV6_PREFIX=40 \(--ipv6-prefix\)/],
    [['--ban-time', '7d', '--ban-time-max', '1d'], /BAN_TIME_MAX=24h \(--ban-time-max\) and BAN_TIME=7d \(--ban-time\): the longest ban is shorter than the first one/],
  ])('%j is refused, naming both settings', (args, message) => {
    const r = smtpguard(['config', ...args]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });

  it('with the network blocks off, any subnet length goes; a config file names its lines', () => {
    expect(smtpguard(['config', '--ipv6-subnet', '72', '--ipv6-subnet-prefixes', '0']).code).toBe(0);
    const file = path.join(dir, 'together.conf');
    writeFileSync(file, 'IPV6_PREFIX=64\nIPV6_SUBNET=64\n');
    const r = smtpguard(['config', '--config', file]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/IPV6_SUBNET=64 \(\S+together\.conf:2\) and IPV6_PREFIX=64 \(\S+together\.conf:1\)/);
  });
});
