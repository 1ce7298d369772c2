/** `smtpguard install` and `smtpguard run`, the built binary, on files in a temp directory. */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BIN, FIXTURES, installPaths, makeServerDir, runBin, saslLines } from './helpers.js';
import { DEFINITIONS } from '../src/cli/settings.js';


let dir: string;
let flags: string[];

const smtpguard = runBin;

const sasl = (address: string, n: number) => saslLines(address, n);
const login = (address: string) =>
  `2026-11-22T11:40:00.000000+00:00 mx postfix/submission/smtpd[2]: 4ABC123: client=phone[${address}], sasl_method=PLAIN, sasl_username=admin\n`;

const snapshot = () =>
  Object.fromEntries(
    readdirSync(dir)
      .filter((f) => !['mail.log', 'pf', 'smtpguard.lock', 'state', 'man1', 'completion'].includes(f))
      .map((f) => [f, readFileSync(path.join(dir, f), 'latin1')]),
  );

beforeEach(() => {
  dir = makeServerDir('smtpguard-run-');
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

const install = () => smtpguard(['install', ...flags, ...installPaths(dir), '--no-reload']);

describe('install then run', () => {
  it('install prepares the files; a second install has nothing to do', () => {
    const first = install();
    // --no-reload is a setting like any other: the job keeps it, and install says what that means
    expect(first.stderr).toMatch(/^smtpguard: warning: RELOAD=no is kept in .*smtpguard\.conf: the job will write the files but not reload/);
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
    const { code, stdout } = smtpguard(['run', '--dry-run', '--reload', ...flags]);
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
    const plan = JSON.parse(smtpguard(['run', '--dry-run', '--reload', '--json', ...flags]).stdout) as { blocks: Array<{ cidr: string; reason: string }>; commands: string[][] };
    expect(plan.blocks.map((b) => [b.cidr, b.reason])).toEqual([
      ['192.0.2.7/32', 'host'],
      ['198.51.100.0/24', 'subnet'],
      ['2001:db8:1:2::/64', 'prefix'],
    ]);
    expect(plan.commands.map((c) => c[0])).toEqual(['postmap', 'postfix', 'ufw', 'ss']);
  });

  it('run writes once, says one line, then is silent', () => {
    install();
    const first = smtpguard(['run', '--no-reload', ...flags]);
    expect(first.stderr).toBe('');
    expect(first.stdout).toBe('blocks: 3 (+3 -0) +192.0.2.7/32 +198.51.100.0/24 +2001:db8:1:2::/64\n');
    expect(first.code).toBe(0);
    expect(readFileSync(path.join(dir, 'sender_access'), 'utf8')).toContain('192.0.2.7 REJECT');
    const second = smtpguard(['run', '--no-reload', ...flags]);
    expect(second).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(smtpguard(['run', '--no-reload', '--verbose', ...flags]).stdout).toBe('blocks: 3 (+0 -0), nothing changed\n');
  });

  it('a reload skipped by --no-reload is owed: the next run does it although no text changes', () => {
    install();
    expect(smtpguard(['run', '--no-reload', ...flags]).stdout).toBe('blocks: 3 (+3 -0) +192.0.2.7/32 +198.51.100.0/24 +2001:db8:1:2::/64\n');
    const owed = smtpguard(['run', '--dry-run', '--reload', ...flags]).stdout;
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
    expect(smtpguard(['run', '--dry-run', '--reload', ...flags]).stdout).toContain('Commands: none');
    rmSync(path.join(dir, 'sender_access.db'));
    const plan = smtpguard(['run', '--dry-run', '--reload', ...flags]).stdout;
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
    const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)', 'smtpguard-lock-holder'], { stdio: 'ignore' });
    try {
      writeFileSync(path.join(dir, 'smtpguard.lock'), `${holder.pid}\n`);
      const busy = smtpguard(['run', '--no-reload', ...flags]);
      expect(busy.code).toBe(4);
      expect(busy.stderr).toMatch(/^smtpguard: another smtpguard run \(pid \d+\) holds .*smtpguard\.lock -- /);
      // install and uninstall never meet a run half-way: they wait for the lock 10 s (a follower holds it for moments), then give up
      const before = snapshot();
      for (const verb of ['install', 'uninstall']) {
        const t0 = Date.now();
        expect(smtpguard([verb, ...flags, ...installPaths(dir), '--no-reload']).code).toBe(4);
        expect(Date.now() - t0).toBeGreaterThanOrEqual(10_000);
      }
      expect(snapshot()).toEqual(before);
    } finally {
      holder.kill('SIGKILL');
    }
    await new Promise((resolve) => holder.once('exit', resolve));
    const recovered = smtpguard(['run', '--no-reload', ...flags]);
    expect(recovered.stdout).toBe('blocks: 3 (+3 -0) +192.0.2.7/32 +198.51.100.0/24 +2001:db8:1:2::/64\n');
    expect(existsSync(path.join(dir, 'smtpguard.lock'))).toBe(false);
  }, 60_000);

  it('a verb waits for a lock held a moment (a follower applying) and then does its work', async () => {
    install();
    const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)', 'smtpguard-lock-holder'], { stdio: 'ignore' });
    writeFileSync(path.join(dir, 'smtpguard.lock'), `${holder.pid}\n`);
    setTimeout(() => holder.kill('SIGKILL'), 1500);
    const verb = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [BIN, 'block', '203.0.113.99', '--no-reload', ...flags], { env: { PATH: process.env.PATH, TZ: 'UTC' } });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.once('exit', (code) => resolve({ code, stderr }));
    });
    expect(verb.stderr).toBe('');
    expect(verb.code).toBe(0);
    expect(readFileSync(path.join(dir, 'sender_access'), 'utf8')).toContain('203.0.113.99');
  }, 30_000);

  it('uninstall removes what install added, and the blocks', () => {
    const pristine = readFileSync(path.join(FIXTURES, 'debian12-before.rules'), 'utf8');
    install();
    smtpguard(['run', '--no-reload', ...flags]);
    const { code, stdout } = smtpguard(['uninstall', ...flags, ...installPaths(dir), '--no-reload']);
    expect(code).toBe(0);
    // the copies it keeps are named, not left behind silently (issue 21)
    expect(stdout).toMatch(/^smtpguard uninstall: kept \S+before\.rules\.smtpguard-prev, .*remove them when you no longer need them$/m);
    expect(existsSync(path.join(dir, 'before.rules.smtpguard-prev'))).toBe(true);
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
    expect(stdout).toMatch(/^THRESHOLD=7 +# from --threshold$/m);
    expect(stdout).toMatch(/^THRESHOLD6=2 +# from environment SMTPGUARD_THRESHOLD6$/m);
    expect(stdout).toMatch(new RegExp(`^WINDOW=all +# from ${dir}/smtpguard\\.conf:3$`, 'm'));
    expect(stdout).toMatch(/^SUBNET_HOSTS=5 +# default$/m);
    expect(stdout).toContain(`# read ${dir}/smtpguard.conf\n`);
  });

  it('a kind named twice in --kinds counts once', () => {
    const { stdout } = smtpguard(['config', '--config', path.join(dir, 'smtpguard.conf'), '--kinds', 'saslFailure,reject,saslFailure']);
    expect(stdout).toMatch(/^KINDS=saslFailure,reject +# from --kinds$/m);
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

describe('the job keeps what install was told', () => {
  it('installs with flags, then the exact installed cron command finds the markers, uses cidr, blocks at 3 and spares the allowed range', () => {
    const conf = path.join(dir, 'etc', 'smtpguard.conf'); // a directory install creates
    writeFileSync(path.join(dir, 'mail.log'), sasl('192.0.2.33', 3) + sasl('192.0.2.34', 2) + sasl('198.51.100.9', 12));
    const given = [
      '--log', path.join(dir, 'mail.log'),
      '--window', 'all',
      '--ufw-rules', path.join(dir, 'before.rules'),
      '--ufw6-rules', path.join(dir, 'before6.rules'),
      '--access-map', path.join(dir, 'client_access'),
      '--map-type', 'cidr',
      '--threshold', '3',
      '--allow', '198.51.100.0/24',
      '--postfix-config-dir', path.join(dir, 'pf'),
      '--lock-file', path.join(dir, 'smtpguard.lock'),
      '--state-dir', path.join(dir, 'state'),
      '--no-reload',
      '--config', conf,
    ];
    const installed = smtpguard(['install', ...given, ...installPaths(dir)]);
    expect(installed.code).toBe(0);
    const config = readFileSync(conf, 'utf8');
    expect(config).toMatch(/^# smtpguard settings/);
    expect(config).toMatch(/^#THRESHOLD=10\nTHRESHOLD=3$/m);
    expect(config).toMatch(/^MAP_TYPE=cidr$/m);
    expect(config).toMatch(/^ALLOW=198\.51\.100\.0\/24$/m);
    const line = readFileSync(path.join(dir, 'cron'), 'utf8').split('\n').find((l) => l.startsWith('*/15'))!;
    const command = line.replace(/^\*\/15 \* \* \* \* root /, '');
    expect(command).toMatch(/ run --config \S+smtpguard\.conf$/);
    // the cron job: sh -c with cron's PATH, no flags of ours, no SMTPGUARD_* variables
    const job = spawnSync('/bin/sh', ['-c', command], { encoding: 'utf8', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', TZ: 'UTC' } });
    expect(job.stderr).toBe('');
    expect(job.status).toBe(0);
    expect(job.stdout).toBe('blocks: 1 (+1 -0) +192.0.2.33/32\n');
    expect(readFileSync(path.join(dir, 'client_access'), 'utf8')).toContain('192.0.2.33/32 REJECT ');
    expect(readFileSync(path.join(dir, 'before.rules'), 'utf8')).not.toContain('198.51.100');
    // the same flags again: nothing to do
    expect(smtpguard(['install', ...given, ...installPaths(dir)]).stdout).toMatch(/nothing to do, already done/);
  });

  it('install keeps the admin\'s lines and comments, changes only the keys it was given, and --dry-run shows the config diff', () => {
    const conf = path.join(dir, 'smtpguard.conf');
    writeFileSync(conf, `# mine\nLOG=${path.join(dir, 'mail.log')}   # my log\nTHRESHOLD=8  # stricter\nWINDOW=all\nMAP_TYPE=hash\n`);
    const dry = smtpguard(['install', ...flags, '--threshold', '4', ...installPaths(dir), '--no-reload', '--dry-run']);
    expect(dry.stdout).toContain('-THRESHOLD=8  # stricter\n+THRESHOLD=4  # stricter\n');
    expect(readFileSync(conf, 'utf8')).toContain('THRESHOLD=8  # stricter');
    install();
    smtpguard(['install', ...flags, '--threshold', '4', ...installPaths(dir), '--no-reload']);
    const text = readFileSync(conf, 'utf8');
    expect(text.startsWith(`# mine\nLOG=${path.join(dir, 'mail.log')}   # my log\nTHRESHOLD=4  # stricter\nWINDOW=all\nMAP_TYPE=hash\n`)).toBe(true);
  });

  it('escapes % for cron (\\%) and systemd (%%)', () => {
    const conf = path.join(dir, 'a%b', 'smtpguard.conf');
    const common = [...flags.filter((f, i) => f !== '--config' && flags[i - 1] !== '--config'), '--config', conf, '--log', path.join(dir, 'mail.log'), '--no-reload'];
    expect(smtpguard(['install', ...common, ...installPaths(dir)]).code).toBe(0);
    expect(readFileSync(path.join(dir, 'cron'), 'utf8')).toContain(`run --config ${path.join(dir, 'a\\%b', 'smtpguard.conf')}\n`);
    mkdirSync(path.join(dir, 'systemd'));
    expect(smtpguard(['install', ...common, '--timer', '--systemd-dir', path.join(dir, 'systemd'), '--man-dir', path.join(dir, 'man1'), '--completion-dir', path.join(dir, 'completion')]).code).toBe(0);
    expect(readFileSync(path.join(dir, 'systemd', 'smtpguard.service'), 'utf8')).toContain(`run --config ${path.join(dir, 'a%%b', 'smtpguard.conf')}\n`);
  });
});

describe('install --follow', () => {
  const systemd = () => path.join(dir, 'systemd');
  const paths = () => installPaths(dir);
  const unit = () => path.join(systemd(), 'smtpguard-follow.service');

  it('writes smtpguard-follow.service (systemd-analyze verify accepts it) and takes the cron job out; install alone goes back to cron; uninstall removes it', () => {
    expect(install().code).toBe(0);
    expect(existsSync(path.join(dir, 'cron'))).toBe(true);
    const follow = smtpguard(['install', ...flags, ...paths(), '--no-reload', '--follow']);
    expect(follow.stderr).toMatch(/RELOAD=no is kept/);
    expect(follow.code).toBe(0);
    expect(follow.stdout).toContain(`created ${unit()}`);
    expect(follow.stdout).toContain(`removed ${path.join(dir, 'cron')}`);
    expect(existsSync(path.join(dir, 'cron'))).toBe(false);
    const text = readFileSync(unit(), 'utf8');
    expect(text).toMatch(new RegExp(`^ExecStart=\\S+node \\S+smtpguard\\.js follow --config ${path.join(dir, 'smtpguard.conf')}$`, 'm'));
    expect(text).toMatch(/^Restart=on-failure$/m);
    expect(text).toMatch(/^StandardOutput=journal$/m);
    expect(text).toMatch(/^ProtectSystem=true$/m);
    const verify = spawnSync('systemd-analyze', ['verify', unit()], { encoding: 'utf8' });
    expect(verify.stderr).toBe('');
    expect(verify.status).toBe(0);
    // again: nothing to do
    expect(smtpguard(['install', ...flags, ...paths(), '--no-reload', '--follow']).stdout).toMatch(/nothing to do, already done/);
    // back to cron
    const back = smtpguard(['install', ...flags, ...paths(), '--no-reload']);
    expect(back.stdout).toContain(`removed ${unit()}`);
    expect(existsSync(unit())).toBe(false);
    expect(existsSync(path.join(dir, 'cron'))).toBe(true);
    // uninstall removes whichever is there
    expect(smtpguard(['install', ...flags, ...paths(), '--no-reload', '--follow']).code).toBe(0);
    const gone = smtpguard(['uninstall', ...flags, ...paths(), '--no-reload']);
    expect(gone.code).toBe(0);
    expect(existsSync(unit())).toBe(false);
    expect(existsSync(path.join(dir, 'cron'))).toBe(false);
  });

  it('--timer and --follow together is a usage error', () => {
    const r = smtpguard(['install', ...flags, ...paths(), '--no-reload', '--follow', '--timer']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--timer and --follow: choose one/);
  });
});

describe('config file grammar', () => {
  it('takes inline comments, shell quotes and several values; smtpguard config prints a file that reads back the same', () => {
    const conf = path.join(dir, 'smtpguard.conf');
    const spaced = path.join(dir, 'my mail.log');
    writeFileSync(spaced, '');
    writeFileSync(
      conf,
      [
        'THRESHOLD=5   # stricter',
        `LOG="${spaced}"  ${path.join(dir, 'mail.log')} # mine`,
        'REJECT_TEXT=Go away # no',
        "ALLOW='192.0.2.0/24' 198.51.100.7",
        'ALLOW=2001:db8::/32   # the office',
        'WINDOW=all',
      ].join('\n') + '\n',
    );
    const first = smtpguard(['config', '--config', conf, '--postfix-config-dir', path.join(dir, 'pf')]);
    expect(first.stderr).toBe('');
    expect(first.stdout).toMatch(/^THRESHOLD=5 +# from .*smtpguard\.conf:1$/m);
    expect(first.stdout).toContain(`LOG='${spaced}' ${path.join(dir, 'mail.log')} `);
    expect(first.stdout).toMatch(/^REJECT_TEXT='Go away' +# from/m);
    expect(first.stdout).toMatch(/^ALLOW=192\.0\.2\.0\/24 198\.51\.100\.7 2001:db8::\/32 +# from/m);
    expect(first.stdout).toMatch(/^MAP_TYPE=hash +# from postconf default_database_type$/m);
    writeFileSync(path.join(dir, 'f'), first.stdout);
    const second = smtpguard(['config', '--config', path.join(dir, 'f'), '--postfix-config-dir', path.join(dir, 'pf')]);
    expect(second.stderr).toBe('');
    const values = (text: string) => text.split('\n').filter((l) => /^[A-Z]/.test(l)).map((l) => l.replace(/\s+# .*$/, ''));
    expect(values(second.stdout)).toEqual(values(first.stdout).map((l) => (l.startsWith('POSTFIX_CONFIG_DIR=') ? l : l)));
    expect(values(second.stdout)).toHaveLength(DEFINITIONS.length);
  });

  it('a single-value key set twice is an error naming both lines', () => {
    writeFileSync(path.join(dir, 'smtpguard.conf'), 'THRESHOLD=5\n# x\nTHRESHOLD=6\n');
    const { code, stderr } = smtpguard(['config', '--config', path.join(dir, 'smtpguard.conf')]);
    expect(stderr).toMatch(/smtpguard\.conf:3: THRESHOLD is set again \(first on line 1\) -- keep one of the two lines/);
    expect(code).toBe(3);
  });
});

describe('messages that send the admin the right way', () => {
  it('a rules file that is a directory is named as such', () => {
    install();
    rmSync(path.join(dir, 'before6.rules'));
    mkdirSync(path.join(dir, 'before6.rules'));
    const { code, stderr } = smtpguard(['run', ...flags]);
    expect(stderr).toBe(`smtpguard: ${path.join(dir, 'before6.rules')} is a directory, not a ufw rules file -- point --ufw6-rules at the file itself\n`);
    expect(code).toBe(3);
  });

  it('a BEGIN marker without END: the error names the line to add, and install puts it back', () => {
    install();
    const rules = path.join(dir, 'before.rules');
    const text = readFileSync(rules, 'utf8');
    const n = text.split('\n').findIndex((l) => l.startsWith('# END smtpguard')) + 1;
    writeFileSync(rules, text.replace(/^# END smtpguard\n/m, ''));
    const broken = smtpguard(['run', '--no-reload', ...flags]);
    expect(broken.code).toBe(3);
    expect(broken.stderr).toContain(`before.rules has "# BEGIN smtpguard" on line ${n - 1} but no "# END smtpguard" line -- add the line "# END smtpguard" after line ${n - 1}`);
    const repaired = install();
    expect(repaired.code).toBe(0);
    expect(repaired.stdout).toMatch(/changed .*before\.rules/);
    expect(readFileSync(rules, 'utf8')).toBe(text);
    expect(smtpguard(['run', '--no-reload', ...flags]).code).toBe(0);
  });

  it('a state directory that is a file: exit 3 naming it', () => {
    install();
    rmSync(path.join(dir, 'state'), { recursive: true, force: true });
    writeFileSync(path.join(dir, 'state'), 'oops');
    const { code, stderr } = smtpguard(['run', '--no-reload', ...flags]);
    expect(stderr).toBe(`smtpguard: the state directory ${path.join(dir, 'state')} is not a directory -- move the file away, or point --state-dir at a directory\n`);
    expect(code).toBe(3);
  });

  it('a lock file in a missing directory: the directory is created', () => {
    install();
    const lockFlags = flags.map((f) => (f === path.join(dir, 'smtpguard.lock') ? path.join(dir, 'run', 'sub', 'smtpguard.lock') : f));
    const r = smtpguard(['run', '--no-reload', ...lockFlags]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(existsSync(path.join(dir, 'run', 'sub'))).toBe(true);
  });

  it('a write that fails (immutable file) keeps the older FILE.smtpguard-prev', () => {
    install();
    const rules = path.join(dir, 'before.rules');
    const backup = readFileSync(`${rules}.smtpguard-prev`, 'utf8'); // the file before install
    const chattr = spawnSync('chattr', ['+i', rules], { encoding: 'utf8' });
    expect(chattr.status, `chattr +i needs root on ext4/xfs: ${chattr.stderr}`).toBe(0);
    try {
      const r = smtpguard(['run', '--no-reload', ...flags]);
      expect(r.code).toBe(7);
      expect(r.stderr).toMatch(/^smtpguard: cannot write .*before\.rules: permission denied/);
      expect(readFileSync(`${rules}.smtpguard-prev`, 'utf8')).toBe(backup);
    } finally {
      spawnSync('chattr', ['-i', rules]);
    }
  });

  it('install refuses a map that main.cf already uses with check_sender_access, and says which map to use', () => {
    const map = path.join(dir, 'sender_access');
    writeFileSync(map, 'example.com OK\n');
    writeFileSync(path.join(dir, 'pf', 'main.cf'), `mynetworks = 127.0.0.0/8\nsmtpd_sender_restrictions = check_sender_access hash:${map}\n`);
    const past = new Date(Date.now() - 10_000);
    utimesSync(path.join(dir, 'pf', 'main.cf'), past, past);
    const before = snapshot();
    const { code, stderr } = install();
    expect(stderr).toContain(`${map} is already used by Postfix other than as a client access map (main.cf: smtpd_sender_restrictions = check_sender_access hash:${map})`);
    expect(stderr).toContain(`-- give smtpguard a map of its own, e.g. smtpguard install --access-map ${path.join(dir, 'smtpguard_access')}\n`);
    expect(code).toBe(3);
    expect(snapshot()).toEqual(before);
  });

  it('a symlinked map and rules file are written through to their targets (and --dry-run says so)', () => {
    install();
    mkdirSync(path.join(dir, 'real'));
    for (const name of ['before.rules', 'sender_access']) {
      renameSync(path.join(dir, name), path.join(dir, 'real', name));
      symlinkSync(path.join(dir, 'real', name), path.join(dir, name));
    }
    const dry = smtpguard(['run', '--dry-run', ...flags]);
    expect(dry.stdout).toContain(`Note: ${path.join(dir, 'sender_access')} is a symlink: the new text is written to its target ${path.join(dir, 'real', 'sender_access')}, the link stays`);
    const r = smtpguard(['run', '--reload', ...flags], { env: { PATH: `${fakeBin()}:${process.env.PATH}`, TZ: 'UTC' } });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    for (const name of ['before.rules', 'sender_access']) expect(lstatSync(path.join(dir, name)).isSymbolicLink()).toBe(true);
    expect(readFileSync(path.join(dir, 'real', 'sender_access'), 'utf8')).toContain('192.0.2.7 REJECT');
    expect(readFileSync(path.join(dir, 'real', 'before.rules'), 'utf8')).toContain('-A ufw-smtpguard -s 192.0.2.7/32 -j ufw-smtpguard-log');
  });
});

/** ufw and postfix that only say they reloaded (postmap is the real one): never the host's firewall. */
function fakeBin(): string {
  const bin = path.join(dir, 'fake-bin');
  mkdirSync(bin, { recursive: true });
  for (const name of ['ufw', 'postfix']) {
    writeFileSync(path.join(bin, name), `#!/bin/sh\necho "$0 $*" >> ${path.join(dir, 'reloads.log')}\n`);
    chmodSync(path.join(bin, name), 0o755);
  }
  return bin;
}
