/** The everyday commands, the built binary, on files in a temp directory: bare smtpguard, unblock, block, allow, explain. */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FIXTURES, installPaths, makeServerDir, runBin, saslLines } from './helpers.js';

let dir: string;
let flags: string[];

const smtpguard = runBin;
const sasl = (address: string, n: number) => saslLines(address, n);
const rules = () => readFileSync(path.join(dir, 'before.rules'), 'utf8');
const NOW = ['--now', '2026-11-22T12:00:00Z'];

beforeEach(() => {
  dir = makeServerDir('smtpguard-verbs-', '127.0.0.0/8 [::1]/128 203.0.113.192/26');
  writeFileSync(path.join(dir, 'mail.log'), sasl('192.0.2.7', 12) + [1, 2, 3, 4, 5, 6].map((h) => sasl(`198.51.100.${h}`, 10)).join(''));
  flags = [
    '--ufw-rules', path.join(dir, 'before.rules'),
    '--ufw6-rules', path.join(dir, 'before6.rules'),
    '--access-map', path.join(dir, 'client_access'),
    '--map-type', 'cidr',
    '--postfix-config-dir', path.join(dir, 'pf'),
    '--lock-file', path.join(dir, 'smtpguard.lock'),
    '--state-dir', path.join(dir, 'state'),
    '--log', path.join(dir, 'mail.log'),
    '--window', '1d',
    '--no-reload',
    '--config', path.join(dir, 'smtpguard.conf'),
  ];
  expect(smtpguard(['install', ...flags, ...installPaths(dir)]).code).toBe(0);
  // from here on the config file holds every setting: the verbs need only --config and --now
  flags = ['--config', path.join(dir, 'smtpguard.conf')];
  expect(smtpguard(['run', ...flags, ...NOW]).code).toBe(0);
  expect(rules()).toContain('-A ufw-smtpguard -s 198.51.100.0/24 -j');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('safe without a command', () => {
  it('bare smtpguard prints a summary, exits 0 and changes nothing', () => {
    const before = rules();
    const r = smtpguard(flags);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Blocked now: 2 (192.0.2.7/32, 198.51.100.0/24)');
    expect(r.stdout).toMatch(/^Last run: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d, blocks: 2 \(\+2 -0\)/m);
    expect(r.stdout).toMatch(/^ {2}unblock +remove a block now/m);
    expect(rules()).toBe(before);
  });

  it('an unknown command: did you mean, exit 2', () => {
    const r = smtpguard(['stauts']);
    expect(r.stderr).toMatch(/^smtpguard: unknown command 'stauts' \(did you mean 'status'\?\)/);
    expect(r.code).toBe(2);
  });

  it('extra arguments that look like an expanded glob get the hint to quote it', () => {
    const r = smtpguard(['scan', '--log', '/var/log/mail.log', '/var/log/mail.log.1', '/var/log/mail.log.2.gz']);
    expect(r.stderr).toMatch(/^smtpguard: unexpected arguments for 'scan': \/var\/log\/mail\.log\.1 \/var\/log\/mail\.log\.2\.gz -- these look like files the shell expanded from an unquoted glob: quote it/);
    expect(r.code).toBe(2);
  });
});

describe('unblock', () => {
  it('an address inside a /24 block splits it: the others stay blocked one by one, and run keeps it so', () => {
    const dry = smtpguard(['unblock', '198.51.100.3', '--dry-run', ...flags, ...NOW]);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(/^smtpguard --dry-run: would unblock 198\.51\.100\.3\/32 until 2026-11-23T11:37:32\.000Z/);
    expect(existsSync(path.join(dir, 'state', 'overrides.json'))).toBe(false);
    const r = smtpguard(['unblock', '198.51.100.3', ...flags, ...NOW]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('unblock 198.51.100.3/32 until 2026-11-23T11:37:32.000Z; blocks: 6 (+5 -1) +198.51.100.1/32 +198.51.100.2/32 +198.51.100.4/32 +198.51.100.5/32 +198.51.100.6/32 -198.51.100.0/24\n');
    expect(rules()).not.toContain('198.51.100.3');
    expect(rules()).toContain('-A ufw-smtpguard -s 198.51.100.4/32 -j');
    const overrides = JSON.parse(readFileSync(path.join(dir, 'state', 'overrides.json'), 'utf8')) as { entries: Array<{ cidr: string; kind: string; until: string | null }> };
    expect(overrides.entries).toEqual([expect.objectContaining({ cidr: '198.51.100.3/32', kind: 'unblock', until: '2026-11-23T11:37:32.000Z', comment: null })]);
    // the cron job keeps it out...
    expect(smtpguard(['run', ...flags, ...NOW])).toEqual({ code: 0, stdout: '', stderr: '' });
    // ...until the events have left the window
    const later = smtpguard(['run', ...flags, '--now', '2026-11-23T11:40:00Z', '--window', '2d']);
    expect(later.stdout).toContain('+198.51.100.0/24');
  });

  it('--for, --json; an address that is not blocked', () => {
    const json = JSON.parse(smtpguard(['unblock', '192.0.2.7', '--for', '2h', '--json', ...flags, ...NOW]).stdout) as { override: { until: string }; plan: { summary: { removedCidrs: string[] } } };
    expect(json.override.until).toBe('2026-11-22T14:00:00.000Z');
    expect(json.plan.summary.removedCidrs).toEqual(['192.0.2.7/32']);
    expect(smtpguard(['unblock', '203.0.113.1', ...flags, ...NOW]).stdout).toBe('203.0.113.1/32 is not blocked: nothing to unblock (--for DURATION keeps it from being blocked anyway)\n');
    expect(smtpguard(['unblock', 'nonsense', ...flags]).code).toBe(2);
  });
});

describe('block', () => {
  it('a manual block that run keeps, with reason manual', () => {
    const r = smtpguard(['block', '203.0.113.0/25', '--comment', 'spam run', ...flags, ...NOW]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^block 203\.0\.113\.0\/25 for good \(manual: spam run\); blocks: 3 \(\+1 -0\) \+203\.0\.113\.0\/25 \(manual\)$/m);
    expect(readFileSync(path.join(dir, 'client_access'), 'utf8')).toContain('203.0.113.0/25 REJECT');
    expect(smtpguard(['run', ...flags, ...NOW]).stdout).toBe('');
    // labelled by its reason in the plan, never "over threshold" (issue 21)
    const plan = smtpguard(['run', '--dry-run', ...flags, ...NOW]).stdout;
    expect(plan).toMatch(/^ {2}203\.0\.113\.0\/25 +manual \(smtpguard block\)/m);
    expect(plan).not.toMatch(/203\.0\.113\.0\/25 +0 events, over threshold/);
    const status = JSON.parse(smtpguard(['status', '--json', ...flags, ...NOW]).stdout) as { blocks: Array<{ cidr: string; record: { reason: string } | null }> };
    expect(status.blocks.find((b) => b.cidr === '203.0.113.0/25')?.record?.reason).toBe('manual');
    // unblock takes it away again
    expect(smtpguard(['unblock', '203.0.113.0/25', ...flags, ...NOW]).stdout).toContain('-203.0.113.0/25');
  });

  it('refuses ranges that overlap mynetworks or ALLOW, and host bits', () => {
    const mynet = smtpguard(['block', '203.0.113.0/24', ...flags, ...NOW]);
    expect(mynet.stderr).toBe('smtpguard: 203.0.113.0/24 overlaps mynetworks 203.0.113.192/26: smtpguard never blocks that -- block a range outside it\n');
    expect(mynet.code).toBe(3);
    smtpguard(['allow', '198.51.100.77', ...flags, ...NOW]);
    expect(smtpguard(['block', '198.51.100.64/26', ...flags, ...NOW]).stderr).toMatch(/overlaps allow 198\.51\.100\.77: smtpguard never blocks that -- take it out of ALLOW first \(smtpguard allow --remove 198\.51\.100\.77\)/);
    expect(smtpguard(['block', '203.0.113.5/24', ...flags]).stderr).toMatch(/"203\.0\.113\.5\/24" has host bits set: did you mean 203\.0\.113\.0\/24\?/);
    expect(existsSync(path.join(dir, 'state', 'overrides.json'))).toBe(false);
  });
});

describe('allow', () => {
  it('adds it to ALLOW with the comment and unblocks it now; --remove takes it out and it is blocked again', () => {
    const r = smtpguard(['allow', '192.0.2.7', '--comment', 'our backup MX', ...flags, ...NOW]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('-192.0.2.7/32');
    expect(readFileSync(path.join(dir, 'smtpguard.conf'), 'utf8')).toMatch(/\nALLOW=192\.0\.2\.7  # our backup MX\n$/);
    expect(rules()).not.toContain('192.0.2.7');
    expect(smtpguard(['run', ...flags, ...NOW]).stdout).toBe('');
    expect(smtpguard(['allow', '192.0.2.7', ...flags, ...NOW]).stdout).toBe('192.0.2.7 is already in ALLOW: nothing to do\n');
    const removed = smtpguard(['allow', '--remove', '192.0.2.7', ...flags, ...NOW]);
    expect(removed.stdout).toContain('+192.0.2.7/32');
    expect(readFileSync(path.join(dir, 'smtpguard.conf'), 'utf8')).not.toContain('ALLOW=192.0.2.7');
    expect(smtpguard(['allow', '--remove', '192.0.2.99', ...flags]).code).toBe(3);
  });
});

describe('explain', () => {
  it('shows the lines with file:line, the counts and the block with its reason', () => {
    const r = smtpguard(['explain', '198.51.100.2', ...flags, ...NOW]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^198\.51\.100\.2: blocked: in 198\.51\.100\.0\/24 \(subnet\): 6 offenders in this \/24 \(SUBNET_HOSTS=5\)$/m);
    expect(r.stdout).toContain('Counts in the window: 10 of THRESHOLD=10; offenders in its /24: 6 of SUBNET_HOSTS=5');
    expect(r.stdout).toContain(`  ${path.join(dir, 'mail.log')}:23: 2026-11-22T11:37:32.000000+00:00 mx postfix/smtpd[1]: warning: unknown[198.51.100.2]`);
    const mynet = JSON.parse(smtpguard(['explain', '203.0.113.200', '--json', ...flags, ...NOW]).stdout) as { verdict: string };
    expect(mynet.verdict).toBe('not blocked: never blocked (mynetworks 203.0.113.192/26)');
    smtpguard(['unblock', '198.51.100.2', ...flags, ...NOW]);
    expect(smtpguard(['explain', '198.51.100.2', ...flags, ...NOW]).stdout).toMatch(/^198\.51\.100\.2: not blocked: unblocked until 2026-11-23T11:37:32\.000Z \(198\.51\.100\.2\/32\)$/m);
  });
});

describe('status tells the truth about enforcement', () => {
  it('says a reload is owed, warns first when ufw is off, and --json carries the same', () => {
    writeFileSync(path.join(dir, 'ufw.conf'), 'ENABLED=no\nLOGLEVEL=low\n');
    const r = smtpguard(['status', ...flags, ...NOW]);
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe('WARNING: ufw is not enabled (ENABLED=no in ufw.conf): the firewall enforces none of these blocks; "ufw enable" turns it on');
    expect(r.stdout).toMatch(/^ufw reload owed since \d\d:\d\d: the firewall does not have these blocks yet/m);
    const json = JSON.parse(smtpguard(['status', '--json', ...flags, ...NOW]).stdout) as { enforcement: { ufwEnabled: boolean; owed: Array<{ what: string }> } };
    expect(json.enforcement.ufwEnabled).toBe(false);
    expect(json.enforcement.owed.map((o) => o.what)).toEqual(['map', 'ufw']);
  });

  it('before install: "not installed" as one clear line, exit 3', () => {
    copyFileSync(path.join(FIXTURES, 'debian12-before.rules'), path.join(dir, 'before.rules'));
    copyFileSync(path.join(FIXTURES, 'debian12-before6.rules'), path.join(dir, 'before6.rules'));
    const r = smtpguard(['status', ...flags, ...NOW]);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^smtpguard: smtpguard is not installed: .*before\.rules and .*before6\.rules have no "# BEGIN smtpguard" section -- run "smtpguard install"/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.code).toBe(3);
  });
});

describe('help and manual', () => {
  it('each command ends with examples; --no-X described; run lists exit codes; scan lists only what it uses', () => {
    for (const command of ['run', 'scan', 'status', 'unblock', 'block', 'allow', 'explain', 'install', 'uninstall', 'config']) {
      const help = smtpguard([command, '--help']).stdout;
      expect(help, command).toMatch(/\nExamples:\n( {2}(smtpguard|zcat) .*\n){2,3}\n?$/);
      expect(help, command).toMatch(/-q, --quiet/);
    }
    const run = smtpguard(['run', '--help']).stdout;
    expect(run).toMatch(/--no-reload +only write the files: no\s+postmap,\s+postfix\s+reload\s+or\s+ufw\s+reload/); // wraps where the widest option puts the column
    expect(run).toMatch(/Exit status:\n {2}0 +done/);
    expect(run).toMatch(/ {2}7 +writing a file failed/);
    const scan = smtpguard(['scan', '--help']).stdout;
    expect(scan).not.toContain('--ufw-rules');
    expect(scan).toContain('--threshold <n>');
  });

  it('install puts the manual page where man finds it and the bash completion', () => {
    const page = path.join(dir, 'man1', 'smtpguard.1');
    const man = spawnSync('man', ['-l', page], { encoding: 'utf8', env: { PATH: process.env.PATH, MANWIDTH: '100', MANPAGER: 'cat', PAGER: 'cat' } });
    expect(man.status).toBe(0);
    for (const section of ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'COMMANDS', 'OPTIONS', 'FILES', 'EXIT STATUS', 'EXAMPLES', 'SEE ALSO']) expect(man.stdout).toMatch(new RegExp(`^${section}$`, 'm'));
    const completion = path.join(dir, 'completion', 'smtpguard');
    const bash = spawnSync('bash', ['-c', `source ${completion}; COMP_WORDS=(smtpguard un); COMP_CWORD=1; _smtpguard; echo "\${COMPREPLY[*]}"`], { encoding: 'utf8' });
    expect(bash.stdout.trim().split(' ').sort()).toEqual(['unblock', 'uninstall']);
  });
});
