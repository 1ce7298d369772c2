/**
 * What an outsider (or another local user) could try against a run that nobody watches:
 * each test first builds the attack the review found, then checks what smtpguard does.
 * The built binary on files in a temp directory, with --no-reload (no firewall touched).
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BIN, installPaths, makeServerDir, runBin, saslLines, serverFlags } from './helpers.js';
import { acquireLock } from '../src/cli/lock.js';
import { checkTrustedPaths } from '../src/trust.js';

const STAMP = '2026-11-22T11:37:32.000000+00:00 mx';

let dir: string;
let flags: string[];

const smtpguard = (args: string[], input = '') => runBin(args, { input });

const sasl = saslLines;
const login = (address: string, user: string) => `${STAMP} postfix/submission/smtpd[2]: 4ABC123: client=phone[${address}], sasl_method=PLAIN, sasl_username=${user}\n`;
const unknownUser = (client: string, i: number) =>
  `${STAMP} postfix/smtpd[3]: NOQUEUE: reject: RCPT from ${client}: 550 5.1.1 <nobody${i}@example.org>: Recipient address rejected: User unknown in local recipient table; from=<a@provider.example> to=<nobody${i}@example.org> proto=ESMTP helo=<x>\n`;

const sources = (file: string) => Array.from(readFileSync(path.join(dir, file), 'utf8').matchAll(/^-A ufw6?-smtpguard -s (\S+) /gm), (m) => m[1]);
const blocked = () => sources('before.rules');
const blocked6 = () => sources('before6.rules');

beforeEach(() => {
  dir = makeServerDir('smtpguard-hostile-');
  flags = serverFlags(dir);
  writeFileSync(path.join(dir, 'smtpguard.conf'), '# test\n');
  writeFileSync(path.join(dir, 'mail.log'), '');
  const install = smtpguard(['install', ...flags, ...installPaths(dir)]);
  expect(install.code).toBe(0);
  expect(install.stderr).toMatch(/^(smtpguard: warning: RELOAD=no is kept[^\n]*\n)?$/);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('a bystander cannot be blocked', () => {
  it("a provider's named MTAs relaying typos: neither they nor their /24; an unknown dictionary spambot is blocked", () => {
    let log = '';
    for (let h = 1; h <= 5; h++) for (let i = 0; i < 12; i++) log += unknownUser(`mail-out${h}.provider.example[198.51.100.${h}]`, i);
    log += `${STAMP} postfix/smtpd[3]: 1ABC234: client=mail-out1.provider.example[198.51.100.1]\n`;
    for (let i = 0; i < 50; i++) log += unknownUser('unknown[203.0.113.66]', i);
    writeFileSync(path.join(dir, 'mail.log'), log);
    const dry = smtpguard(['run', '--dry-run', ...flags]);
    expect(dry.stdout).toMatch(/^Spared: 198\.51\.100\.1 \(12 recipient rejects not counted: mail was accepted from it\)$/m);
    expect(dry.stdout).toMatch(/^Spared: 198\.51\.100\.2 \(12 recipient rejects not counted: Postfix confirmed its hostname\)$/m);
    const run = smtpguard(['run', ...flags]);
    expect(run.code).toBe(0);
    expect(blocked()).toEqual(['203.0.113.66/32']);
    expect(readFileSync(path.join(dir, 'access'), 'utf8')).not.toMatch(/198\.51\.100/);
  });

  it('a login as alice does not spare failures as bob', () => {
    writeFileSync(path.join(dir, 'mail.log'), sasl('203.0.113.66', 3, 'alice') + login('203.0.113.66', 'alice') + sasl('203.0.113.66', 12, 'bob') + sasl('192.0.2.9', 12, 'carol') + login('192.0.2.9', 'carol'));
    const dry = smtpguard(['run', '--dry-run', ...flags]);
    expect(dry.stdout).toMatch(/^Spared: 203\.0\.113\.66 \(3 SASL failures as alice not counted: logged in as alice\)$/m);
    const json = JSON.parse(smtpguard(['scan', '--json', '--no-state', '--log', path.join(dir, 'mail.log'), '--window', 'all']).stdout) as { spared: Array<{ address: string; users: string[]; loggedInAs: string[] }> };
    expect(json.spared.find((s) => s.address === '203.0.113.66')).toMatchObject({ users: ['alice'], loggedInAs: ['alice'] });
    smtpguard(['run', ...flags]);
    expect(blocked()).toEqual(['203.0.113.66/32']);
  });
});

describe('no flood stops the blocking', () => {
  /** n distinct addresses, 1-2 rejects each, plus 20 SASL failures from one IPv4 attacker. */
  function flood(n: number, address: (i: number) => string): string {
    const parts: string[] = [];
    for (let i = 0; i < n; i++) {
      const line = `${STAMP} postfix/smtpd[4]: NOQUEUE: reject: RCPT from unknown[${address(i)}]: 554 5.7.1 <unknown[${address(i)}]>: Client host rejected: Access denied; from=<a@b> to=<x@example.org> proto=ESMTP helo=<x>\n`;
      parts.push(i % 3 === 0 ? line + line : line);
    }
    return parts.join('') + sasl('203.0.113.9', 20);
  }
  const hex = (i: number) => `${((i >>> 16) + 1).toString(16)}:${((i & 0xffff) + 1).toString(16)}`;

  it.each([
    ['1M distinct addresses in one /64', (i: number) => `2001:db8:68:1:1:1:${hex(i)}`, ['2001:db8:68:1::/64']],
    ['1M distinct /64s in one /48', (i: number) => `2001:db8:68:${(i & 0xffff).toString(16)}:${(i >>> 16) + 1}::1`, ['2001:db8:68::/48']],
  ])('%s: run exits 0, the IPv4 attacker and the flood are blocked, the map is valid', (_name, address, expected6) => {
    writeFileSync(path.join(dir, 'mail.log'), flood(1_000_000, address));
    const run = smtpguard(['run', ...flags]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^blocks: 2 \(\+2 -0\) \S+ \S+, \d+ addresses of IPv6 range blocks left out of the access map/);
    expect(run.stdout.startsWith(`blocks: 2 (+2 -0) +203.0.113.9/32 +${expected6[0]!}, `)).toBe(true);
    expect(blocked()).toEqual(['203.0.113.9/32']);
    expect(blocked6()).toEqual(expected6);
    const map = readFileSync(path.join(dir, 'access'), 'utf8');
    expect(map.match(/ REJECT /g)).toHaveLength(1 + 256);
    // --no-reload: build the index here, as the run would, to prove postmap takes the map
    expect(spawnSync('postmap', [`hash:${path.join(dir, 'access')}`], { encoding: 'utf8' }).status).toBe(0);
    expect(spawnSync('postmap', ['-q', '203.0.113.9', `hash:${path.join(dir, 'access')}`], { encoding: 'utf8' }).stdout).toMatch(/^REJECT/);
  }, 300_000);
});

describe('the cap speaks', () => {
  it('offenders left out by --max-blocks are in the cron line every run, and in the plan', () => {
    writeFileSync(path.join(dir, 'mail.log'), [1, 2, 3, 4].map((h) => sasl(`192.0.2.${h * 10}`, 10 + h)).join(''));
    const first = smtpguard(['run', '--max-blocks', '3', ...flags]);
    expect(first.stdout).toBe('blocks: 3 (+3 -0) +192.0.2.20/32 +192.0.2.30/32 +192.0.2.40/32, 1 offender left out by --max-blocks\n');
    const again = smtpguard(['run', '--max-blocks', '3', ...flags]);
    expect(again.stdout).toBe('blocks: 3 (+0 -0), 1 offender left out by --max-blocks, nothing changed\n');
    expect(smtpguard(['run', '--dry-run', '--max-blocks', '3', ...flags]).stdout).toMatch(/^Note: --max-blocks left out 1 offender\(s\) with fewer events: they are NOT blocked/m);
    expect(smtpguard(['run', ...flags]).stdout).toBe('blocks: 4 (+1 -0) +192.0.2.10/32\n');
    expect(smtpguard(['run', ...flags]).stdout).toBe('');
  });
});

describe('local files', () => {
  it('the lock never writes through a planted link (LOCK.PID or LOCK itself)', async () => {
    const victim = path.join(dir, 'victim');
    writeFileSync(victim, 'precious\n');
    const lock = path.join(dir, 'planted.lock');
    symlinkSync(victim, `${lock}.${process.pid}`);
    symlinkSync(victim, lock);
    const release = await acquireLock(lock);
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
    expect(readFileSync(lock, 'utf8')).toBe(`${process.pid}\n`);
    expect(existsSync(`${lock}.${process.pid}`)).toBe(false);
    await release();
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
  });

  it('as root, a state dir, lock dir or config file others can write is refused, naming it and the fix', async () => {
    const state = path.join(dir, 'state');
    mkdirSync(state, { recursive: true });
    chmodSync(state, 0o777);
    await expect(checkTrustedPaths([{ path: state, what: 'the state directory (--state-dir)' }], 0)).rejects.toThrow(
      process.getuid?.() === 0 ? /state directory .*state is writable by every user \(mode 0777\)/ : /is owned by uid/,
    );
    if (process.getuid?.() === 0) {
      const run = smtpguard(['run', ...flags]);
      expect(run.code).toBe(3);
      expect(run.stderr).toMatch(/the state directory \(--state-dir\) \S+state is writable by every user .* -- run "chown root:root \S+ && chmod go-w \S+"/);
      chmodSync(state, 0o755);
      chmodSync(path.join(dir, 'smtpguard.conf'), 0o666);
      expect(smtpguard(['run', ...flags]).stderr).toMatch(/the config file \S+smtpguard\.conf is writable by every user/);
      chmodSync(path.join(dir, 'smtpguard.conf'), 0o644);
      expect(smtpguard(['run', ...flags]).code).toBe(0);
    }
    // an unprivileged user's own files are not checked: it cannot change the firewall
    await expect(checkTrustedPaths([{ path: state, what: 'x' }], 1000)).resolves.toBeUndefined();
  });

  it('a corrupt blocks.json or tally is a warning and a rebuild, never an exit 1', () => {
    writeFileSync(path.join(dir, 'mail.log'), sasl('203.0.113.9', 20));
    expect(smtpguard(['run', ...flags]).code).toBe(0);
    const state = path.join(dir, 'state');
    writeFileSync(path.join(state, 'blocks.json'), '[null]');
    const tally = readdirSync(state).find((f) => f.startsWith('tally-'))!;
    const data = readFileSync(path.join(state, tally));
    data[data.indexOf(Buffer.from([4, 203, 0, 113, 9]))] = 9; // 203.0.113.9's tag (4: IPv4) made one that is none
    writeFileSync(path.join(state, tally), data);
    writeFileSync(path.join(dir, 'mail.log'), sasl('203.0.113.9', 20) + sasl('192.0.2.44', 20));
    const run = smtpguard(['run', ...flags]);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('blocks: 2 (+1 -0) +192.0.2.44/32\n');
    expect(run.stderr).toMatch(/blocks\.json is not valid \(it does not hold block records\): moved aside as \S+blocks\.json\.corrupt-\d{8}T\d{6}Z/);
    expect(run.stderr).toMatch(/not an address/);
    expect(blocked()).toEqual(['192.0.2.44/32', '203.0.113.9/32']);
    expect(smtpguard(['run', ...flags])).toMatchObject({ code: 0, stdout: '', stderr: '' });
  });

  it('--log naming a FIFO or a device is refused by name; a run that hangs stops at --timeout and frees the lock', async () => {
    spawnSync('mkfifo', [path.join(dir, 'fifo')]);
    const fifo = smtpguard(['run', ...flags, '--log', path.join(dir, 'fifo')]);
    expect(fifo).toMatchObject({ code: 3 });
    expect(fifo.stderr).toMatch(/--log \S+fifo is a FIFO \(named pipe\)/);
    // the machine first: this part needs /dev/zero to be the device it should be
    expect(statSync('/dev/zero').isCharacterDevice(), '/dev/zero on this machine is not a character device: restore it (mknod -m 666 /dev/zero c 1 5)').toBe(true);
    expect(smtpguard(['scan', '--log', '/dev/zero']).stderr).toMatch(/--log \/dev\/zero is a character device/);

    // stdin that never ends: the run waits, until --timeout
    const started = Date.now();
    const child = spawn(process.execPath, [BIN, 'run', ...flags, '--log', '-', '--timeout', '2s'], { env: { PATH: process.env.PATH, TZ: 'UTC' }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin.write(sasl('203.0.113.9', 20));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(8);
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(stderr).toMatch(/took longer than --timeout 2s and was stopped before it changed anything/);
    expect(existsSync(path.join(dir, 'smtpguard.lock'))).toBe(false);
    expect(blocked()).toEqual([]);
  });

  it('--allow takes canonical addresses only: octal, short and host-bit forms are errors that say so', () => {
    for (const [value, message] of [
      ['010.0.0.1', /"010\.0\.0\.1" is not a dotted-quad IPv4 address/],
      ['10', /"10" is not a dotted-quad IPv4 address/],
      ['0x0a000001', /is not a dotted-quad IPv4 address/],
      ['192.0.2.5/24', /has host bits set: did you mean 192\.0\.2\.0\/24\?/],
      ['2001:db8::g', /is not a valid IPv6 address/],
    ] as const) {
      const r = smtpguard(['run', '--dry-run', ...flags, '--allow', value]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
    }
    writeFileSync(path.join(dir, 'smtpguard.conf'), 'ALLOW=010.0.0.1\n');
    expect(smtpguard(['run', '--dry-run', ...flags]).stderr).toMatch(/smtpguard\.conf:1: ALLOW=010\.0\.0\.1: "010\.0\.0\.1" is not a dotted-quad/);
    // the allowlist is joined from the file and the flags: a bad entry in the file is an error whatever the flags say
    expect(smtpguard(['run', '--dry-run', ...flags, '--allow', '10.0.0.0/8']).code).toBe(3);
    writeFileSync(path.join(dir, 'smtpguard.conf'), 'ALLOW=10.1.0.0/16\n');
    expect(smtpguard(['run', '--dry-run', ...flags, '--allow', '10.0.0.0/8', '--allow', '2001:db8::/32']).code).toBe(0);
  });
});

describe('ban memory (the window alone no longer decides how long a block lasts)', () => {
  const at = (iso: string, address: string, n: number) =>
    `${iso} mx postfix/smtpd[1]: warning: unknown[${address}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username=admin\n`.repeat(n);
  const runAt = (now: string) => smtpguard(['run', ...flags, '--window', '2h', '--ban-time', '1d', '--now', now]);

  it('a block outlives the window until --ban-time ends, then goes; back within --recidive-window, it gets twice as long', () => {
    writeFileSync(path.join(dir, 'mail.log'), at('2026-11-22T10:00:00.000000+00:00', '203.0.113.5', 12));
    expect(runAt('2026-11-22T11:00:00Z').stdout).toBe('blocks: 1 (+1 -0) +203.0.113.5/32\n');
    // 10 hours on: nothing of it in the 2 h window, the ban holds it
    expect(runAt('2026-11-22T20:00:00Z')).toMatchObject({ code: 0, stdout: '' });
    expect(blocked()).toEqual(['203.0.113.5/32']);
    const json = JSON.parse(smtpguard(['scan', '--json', ...flags.filter((f) => f !== '--no-reload'), '--window', '2h', '--ban-time', '1d', '--now', '2026-11-22T20:00:00Z']).stdout) as { blocks: Array<{ cidr: string; until: string; times: number }> };
    expect(json.blocks).toMatchObject([{ cidr: '203.0.113.5/32', until: '2026-11-23T10:00:00.000Z', times: 1 }]);
    // a day after its last event: gone
    expect(runAt('2026-11-23T10:30:00Z').stdout).toBe('blocks: 0 (+0 -1) -203.0.113.5/32\n');
    expect(blocked()).toEqual([]);
    // back two days later: the 2nd time, for 2 days
    writeFileSync(path.join(dir, 'mail.log'), at('2026-11-22T10:00:00.000000+00:00', '203.0.113.5', 12) + at('2026-11-25T10:00:00.000000+00:00', '203.0.113.5', 12));
    expect(runAt('2026-11-25T11:00:00Z').stdout).toBe('blocks: 1 (+1 -0) +203.0.113.5/32 (2nd time, 2d)\n');
    expect(runAt('2026-11-26T12:00:00Z').stdout).toBe(''); // a day and more later: still blocked
    expect(runAt('2026-11-27T10:30:00Z').stdout).toBe('blocks: 0 (+0 -1) -203.0.113.5/32\n');
    const bans = JSON.parse(readFileSync(path.join(dir, 'state', 'bans.json'), 'utf8')) as { bans: Array<{ cidr: string; times: number }> };
    expect(bans.bans).toMatchObject([{ cidr: '203.0.113.5/32', times: 2 }]);
    // explain shows the history
    const explain = smtpguard(['explain', '203.0.113.5', ...flags.filter((f) => f !== '--no-reload'), '--window', '2h', '--now', '2026-11-27T11:00:00Z']);
    expect(explain.stdout).toMatch(/^Ban history: 203\.0\.113\.5\/32 \(host\), 2nd time, 2d, ended 2026-11-27 10:00:00; first blocked 2026-11-22 11:00:00, last event 2026-11-25 10:00:00$/m);
  });

  it('--max-blocks holds for the blocks bans keep too: the current offender comes first', () => {
    writeFileSync(path.join(dir, 'mail.log'), at('2026-11-22T10:00:00.000000+00:00', '203.0.113.5', 12));
    expect(runAt('2026-11-22T11:00:00Z').stdout).toBe('blocks: 1 (+1 -0) +203.0.113.5/32\n');
    writeFileSync(path.join(dir, 'mail.log'), at('2026-11-22T10:00:00.000000+00:00', '203.0.113.5', 12) + at('2026-11-22T19:00:00.000000+00:00', '198.51.100.7', 12));
    const capped = smtpguard(['run', ...flags, '--window', '2h', '--ban-time', '1d', '--now', '2026-11-22T20:00:00Z', '--max-blocks', '1']);
    expect(capped.stdout).toBe('blocks: 1 (+1 -1) +198.51.100.7/32 -203.0.113.5/32, 1 offender left out by --max-blocks\n');
  });

  it('unblock ends a ban now; --forget drops its history too', () => {
    writeFileSync(path.join(dir, 'mail.log'), at('2026-11-22T10:00:00.000000+00:00', '203.0.113.5', 12));
    expect(runAt('2026-11-22T11:00:00Z').stdout).toBe('blocks: 1 (+1 -0) +203.0.113.5/32\n');
    const unblock = smtpguard(['unblock', '203.0.113.5', ...flags, '--window', '2h', '--ban-time', '1d', '--now', '2026-11-22T20:00:00Z', '--for', '1h']);
    expect(unblock.code).toBe(0);
    expect(blocked()).toEqual([]);
    expect(runAt('2026-11-22T21:30:00Z').stdout).toBe(''); // the unblock is over, the ban was ended: nothing comes back
    const bans = () => (JSON.parse(readFileSync(path.join(dir, 'state', 'bans.json'), 'utf8')) as { bans: Array<{ cidr: string; until: number; times: number }> }).bans;
    expect(bans()).toMatchObject([{ cidr: '203.0.113.5/32', until: Date.parse('2026-11-22T20:00:00Z'), times: 1 }]); // ended, remembered
    smtpguard(['unblock', '203.0.113.5', '--forget', ...flags, '--now', '2026-11-22T21:40:00Z', '--for', '1m']);
    expect(bans()).toEqual([]);
  });
});

describe('nothing an outsider or a fleet peer can turn against you (issue 20)', () => {
  const relay = (client: string, i: number) =>
    `${STAMP} postfix/smtpd[3]: NOQUEUE: reject: RCPT from ${client}: 554 5.7.1 <x${i}@attacker.example>: Relay access denied; from=<a@provider.example> to=<x${i}@attacker.example> proto=ESMTP helo=<mail-out.provider.example>\n`;

  it("relay rejects through a provider's named MTAs block neither them nor their /24 (finding 1)", () => {
    let log = '';
    for (let h = 10; h < 15; h++) for (let i = 0; i < 10; i++) log += relay(`mail-out${h}.provider.example[209.85.129.${h}]`, i);
    for (let i = 0; i < 10; i++) log += relay('mail-out.provider.example[2001:4860:4864:20::30]', i);
    writeFileSync(path.join(dir, 'mail.log'), log);
    const run = smtpguard(['run', ...flags]);
    expect(run).toMatchObject({ code: 0, stdout: '' });
    expect(blocked()).toEqual([]);
    expect(blocked6()).toEqual([]);
    const scan = JSON.parse(smtpguard(['scan', '--json', ...flags.filter((f) => f !== '--no-reload')]).stdout) as { addresses: Array<{ address: string; events: Record<string, number> }> };
    expect(scan.addresses.find((a) => a.address === '209.85.129.10')?.events.messageReject).toBe(10);
  });

  it('special addresses named as the client are never blocked; link-local only with --block-link-local (finding 6)', () => {
    const specials = ['0.0.0.0', '255.255.255.255', '224.0.0.1', '::', 'ff02::1', '169.254.7.7', 'fe80::1'];
    writeFileSync(path.join(dir, 'mail.log'), specials.map((a) => sasl(a, 20)).join('') + sasl('203.0.113.9', 20));
    const run = smtpguard(['run', ...flags]);
    expect(run).toMatchObject({ code: 0, stdout: 'blocks: 1 (+1 -0) +203.0.113.9/32\n' });
    const dry = smtpguard(['run', '--dry-run', ...flags]).stdout;
    for (const [address, why] of [['0.0.0.0', 'unspecified'], ['255.255.255.255', 'broadcast'], ['224.0.0.1', 'multicast'], ['::', 'unspecified'], ['ff02::1', 'multicast'], ['169.254.7.7', 'link-local'], ['fe80::1', 'link-local']]) {
      expect(dry).toContain(`Never blocked: ${address} (20 events; ${why} `);
    }
    // fe80::1 alone, not its /64: this host's own link-local addresses are in fe80::/64
    expect(smtpguard(['run', ...flags, '--block-link-local']).stdout).toBe('blocks: 3 (+2 -0) +169.254.7.7/32 +fe80::1/128\n');
  });

  it('a newline or control character in any setting or flag is refused by name, before anything is written (finding 6)', () => {
    const cron = path.join(dir, 'cron');
    const before = readFileSync(cron, 'utf8');
    for (const args of [
      ['install', ...flags, '--config', `${dir}/x\n* * * * * root touch /tmp/owned`],
      ['install', ...flags, '--cron-file', `${cron}\nExecStartPre=/bin/true`],
      ['install', ...flags, '--state-dir', `${dir}/state\r`],
      ['run', '--dry-run', ...flags, '--reject-text', 'no\u0085'],
      ['block', '203.0.113.7', ...flags, '--comment', 'x\ny'],
    ]) {
      const r = smtpguard(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/holds a control character \(U\+00/);
      expect(r.stderr).not.toMatch(/\n.*\n.*\n/); // one line (and a hint), the value escaped
    }
    const env = runBin(['install', ...flags], { env: { PATH: process.env.PATH, TZ: 'UTC', SMTPGUARD_THRESHOLD: '5\n* * * * * root id' } });
    expect(env.code).toBe(2);
    expect(env.stderr).toMatch(/SMTPGUARD_THRESHOLD=5\\n\* \* \* \* \* root id in the environment: holds a control character \(U\+000A, a newline\)/);
    writeFileSync(path.join(dir, 'smtpguard.conf'), 'REJECT_TEXT="a\tb"\n');
    expect(smtpguard(['run', '--dry-run', ...flags]).stderr).toMatch(/smtpguard\.conf:1: REJECT_TEXT=a\\tb: holds a control character \(U\+0009, a tab\)/);
    expect(readFileSync(cron, 'utf8')).toBe(before);
    expect(existsSync('/tmp/owned')).toBe(false);
  });

  it('a link at a state file is never followed: its target keeps its bytes (finding 6)', () => {
    const state = path.join(dir, 'state');
    const target = path.join(dir, 'precious');
    writeFileSync(target, 'precious bytes\n', { mode: 0o644 });
    mkdirSync(state, { recursive: true });
    for (const name of ['scan-state.json', 'bans.json', 'blocks.json', 'pending-reloads', 'last-run.json', 'mynetworks.json']) {
      rmSync(path.join(state, name), { force: true });
      symlinkSync(target, path.join(state, name));
    }
    writeFileSync(path.join(dir, 'mail.log'), sasl('203.0.113.9', 20));
    const run = smtpguard(['run', ...flags]);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('blocks: 1 (+1 -0) +203.0.113.9/32\n');
    expect(run.stderr).toMatch(/scan-state\.json is a symbolic link, not a regular file: moved aside as \S+scan-state\.json\.corrupt-\d{8}T\d{6}Z/);
    expect(readFileSync(target, 'utf8')).toBe('precious bytes\n');
    expect(smtpguard(['run', ...flags])).toMatchObject({ code: 0, stdout: '', stderr: '' });
    expect(readFileSync(target, 'utf8')).toBe('precious bytes\n');
    // overrides.json is the admin's own orders: a link there is an error that says so (exit 3)
    symlinkSync(target, path.join(state, 'overrides.json'));
    const refused = smtpguard(['run', ...flags]);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/overrides\.json is not a regular file/);
    expect(readFileSync(target, 'utf8')).toBe('precious bytes\n');
  });

  it('a bans.json with a time no date can hold, or that is a directory, is set aside; the bans in force stay (finding 6)', () => {
    writeFileSync(path.join(dir, 'mail.log'), sasl('203.0.113.9', 20));
    expect(smtpguard(['run', ...flags]).code).toBe(0);
    const bans = path.join(dir, 'state', 'bans.json');
    const data = JSON.parse(readFileSync(bans, 'utf8')) as { bans: Array<{ until: number }> };
    data.bans[0]!.until = 1e300;
    writeFileSync(bans, JSON.stringify(data));
    writeFileSync(path.join(dir, 'mail.log'), ''); // the events left the logs: only the ban keeps the block
    const first = smtpguard(['run', ...flags]);
    expect(first.code).toBe(0);
    expect(first.stderr).toMatch(/bans\.json is not valid \(not a ban list\): moved aside as \S+; the bans in force are taken from blocks\.json/);
    expect(blocked()).toEqual(['203.0.113.9/32']);
    rmSync(bans);
    mkdirSync(bans);
    const second = smtpguard(['run', ...flags]);
    expect(second.code).toBe(0);
    expect(second.stderr).toMatch(/bans\.json is a directory, not a regular file: moved aside/);
    expect(blocked()).toEqual(['203.0.113.9/32']);
    expect(smtpguard(['run', ...flags])).toMatchObject({ code: 0, stderr: '' });
    expect(readdirSync(path.join(dir, 'state')).filter((f) => f.startsWith('bans.json.corrupt-')).length).toBeGreaterThanOrEqual(1);
  });

  it('a failing postconf does not drop the mynetworks exemption: the last one read is used (finding 5)', () => {
    writeFileSync(path.join(dir, 'pf', 'main.cf'), 'mynetworks = 127.0.0.0/8 192.0.2.0/24\n');
    const past = new Date(Date.now() - 10_000);
    utimesSync(path.join(dir, 'pf', 'main.cf'), past, past);
    writeFileSync(path.join(dir, 'mail.log'), sasl('192.0.2.7', 20));
    expect(smtpguard(['run', ...flags])).toMatchObject({ code: 0, stdout: '' });
    rmSync(path.join(dir, 'pf', 'main.cf')); // postconf now fails
    const run = smtpguard(['run', ...flags]);
    expect(run).toMatchObject({ code: 0, stdout: '' });
    expect(run.stderr).toMatch(/cannot ask Postfix for mynetworks \(postconf: .*\); using the mynetworks it gave on \S+, kept in \S+mynetworks\.json/);
    expect(blocked()).toEqual([]);
  });
});
