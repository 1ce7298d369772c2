/**
 * The real stack, end to end: Postfix writes the log, smtpguard reads it and changes
 * ufw and the access map for real, and the real programs are asked whether the
 * blocks hold. See stack.ts for the setup and its safety rules.
 */
import { spawn } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, CLIENTS, missingRequirements, MX4, Stack, waitFor, type Run } from './stack.js';
import { installPaths } from '../helpers.js';

const missing = missingRequirements();
if (missing.length > 0) {
  if (process.env.CI) throw new Error(`system tests cannot run in CI: missing ${missing.join(', ')} (.ci/run must install them)`);
  console.log(`system tests not run: this machine lacks ${missing.join(', ')}`);
}

const PORTS = ['25', '587', '2525'];
let stack: Stack;
let flags: string[];
let ufwPath: { v4: string; v6: string };

/** smtpguard with the stack's files; threshold 3 keeps the swaks traffic short. */
const smtpguard = (command: string, extra: string[] = [], env: Record<string, string> = {}): Run =>
  stack.smtpguard([command, ...flags, ...extra], env);

const authFail = (from: string, mech: 'LOGIN' | 'PLAIN', user = 'testuser') => stack.authFail(from, mech, user);
const rcpt = (from: string, to: string, port = '25') => stack.rcpt(from, to, port);
const postfixSays = (from: string) => stack.postfixSays(from);
const banner = (from: string) => stack.banner(from);
/**
 * An SMTP session on 587 held open from `from` (in CLIENT): it reads the banner, then, when
 * told, says EHLO and reports what came back: `alive` (a 250), or `cut` (reset or closed).
 */
function openSession(from: string) {
  const script = `
import socket, sys
c = socket.create_connection((sys.argv[1], 587), timeout=10, source_address=(sys.argv[2], 0))
print("banner" if c.recv(512).startswith(b"220") else "no banner", flush=True)
sys.stdin.readline()
try:
    c.sendall(b"EHLO client.example.test\\r\\n")
    c.settimeout(5)
    data = c.recv(512)
    print("alive" if data.startswith(b"250") else "cut", flush=True)
except socket.timeout:
    print("timeout", flush=True)
except OSError:
    print("cut", flush=True)
`;
  const child = spawn('ip', ['netns', 'exec', stack.client, 'python3', '-c', script, MX4, from], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    /** Resolves with the first line: `banner` once the server greeted it. */
    banner: async () => {
      for (let waited = 0; !out.includes('\n') && waited < 15_000; waited += 50) await new Promise((r) => setTimeout(r, 50));
      return out.split('\n')[0];
    },
    /** Says EHLO now; resolves with alive, cut or timeout. */
    probe: async () => {
      child.stdin.end('go\n');
      await exited;
      return out.split('\n')[1];
    },
  };
}

const counters = () => stack.nsRun(stack.mx, ['iptables', '-L', 'ufw-smtpguard-log', '-v', '-x', '-n']).stdout;

describe.runIf(missing.length === 0)('the real stack: Postfix, Dovecot SASL, postmap, ufw', () => {
  beforeAll(() => {
    stack = new Stack();
    stack.up();
    ufwPath = { v4: path.join(stack.ufwTree, 'etc/ufw/before.rules'), v6: path.join(stack.ufwTree, 'etc/ufw/before6.rules') };
    flags = stack.flags();
    // ufw on, the SMTP ports open, as on a real server
    const enabled = stack.ufw(['--force', 'enable']);
    if (enabled.code !== 0) throw new Error(`ufw enable failed: ${enabled.stderr}`);
    for (const port of PORTS) stack.ufw(['allow', `${port}/tcp`]);

    // the attackers, the users and the innocent, each through a real SMTP session
    let fails = 0;
    for (const [i, a] of CLIENTS.subnet.entries()) for (let n = 0; n < 3; n++, fails++) authFail(a, (i + n) % 2 ? 'LOGIN' : 'PLAIN');
    for (const a of CLIENTS.v6pair) for (let n = 0; n < (a === CLIENTS.v6pair[0] ? 2 : 1); n++, fails++) authFail(a, n % 2 ? 'PLAIN' : 'LOGIN');
    for (let n = 0; n < 3; n++) rcpt(CLIENTS.relay, 'victim@example.org');
    for (let n = 0; n < 3; n++) rcpt(CLIENTS.unknownUser, `nosuchuser${n}@mx.example.test`);
    for (let n = 0; n < 4; n++, fails++) authFail(CLIENTS.sparedUser, 'PLAIN');
    stack.swaks(CLIENTS.sparedUser, ['--port', '587', '--auth', 'PLAIN', '--auth-user', 'testuser', '--auth-password', 's3cret', '--to', 'root@mx.example.test']);
    // a client whose AUTH user name holds another address: only the client counts
    for (let n = 0; n < 2; n++, fails++) authFail(CLIENTS.usernameTrap, 'LOGIN', `x[${CLIENTS.namedInUsername}]`);
    stack.waitForLog(/SASL (LOGIN|PLAIN) authentication failed/, fails);
    stack.waitForLog(/NOQUEUE: reject: RCPT/, 6);
    stack.waitForLog(/sasl_method=PLAIN/, 1);
  }, 240_000);

  afterAll(() => {
    stack?.down();
  });

  it('Postfix logged what the clients did', () => {
    const log = stack.logText();
    expect(log).toMatch(/warning: unknown\[198\.51\.100\.1\]: SASL (LOGIN|PLAIN) authentication failed/);
    expect(log).toMatch(/warning: unknown\[2001:db8:1:2::b\]: SASL LOGIN authentication failed/);
    expect(log).toMatch(/sasl_username=x\[192\.0\.2\.77\]/);
    expect(log).toMatch(/client=unknown\[192\.0\.2\.20\], sasl_method=PLAIN, sasl_username=testuser/);
    expect(log).toMatch(/NOQUEUE: reject: RCPT from unknown\[203\.0\.113\.5\]: 554 5\.7\.1 <victim@example\.org>: Relay access denied/);
    expect(log).toMatch(/NOQUEUE: reject: RCPT from unknown\[203\.0\.113\.6\]: 550 5\.1\.1 <nosuchuser0@mx\.example\.test>: Recipient address rejected: User unknown in local recipient table/);
  });

  it('install prepares ufw and Postfix, and ufw loads it', () => {
    const r = smtpguard('install', [...installPaths(stack.dir)]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const restrictions = stack.nsRun(stack.mx, ['postconf', '-c', stack.etc, '-h', 'smtpd_client_restrictions']).stdout.trim();
    expect(restrictions).toBe(`check_client_access hash:${path.join(stack.dir, 'sender_access')}`);
    expect(stack.iptables()).toMatch(/^-A ufw-before-input -p tcp -m multiport --dports 25,465,587 -j ufw-smtpguard$/m);
    expect(stack.iptables(true)).toMatch(/^-A ufw6-before-input -p tcp -m multiport --dports 25,465,587 -j ufw6-smtpguard$/m);
    copyFileSync(ufwPath.v4, path.join(stack.dir, 'before.rules.installed'));
    copyFileSync(ufwPath.v6, path.join(stack.dir, 'before6.rules.installed'));
    copyFileSync(path.join(stack.dir, 'sender_access'), path.join(stack.dir, 'sender_access.installed'));
    // nothing is blocked yet
    expect(postfixSays(CLIENTS.subnet[0])).toBe('accepted');
    expect(banner(CLIENTS.subnet[0])).toBe('banner');
  });

  it('run blocks the offenders in ufw and Postfix, and says so in one line', () => {
    // (after install wrote the config file) what smtpguard makes of Postfix's own lines: a recipient reject of an unknown[ADDR] client, failures per username
    const scan = JSON.parse(smtpguard('scan', ['--json', '--no-state']).stdout) as { addresses: Array<{ address: string; events: Record<string, number> }> };
    const events = (a: string) => scan.addresses.find((x) => x.address === a)?.events;
    expect(events(CLIENTS.unknownUser)).toMatchObject({ recipientReject: 3, reject: 0 });
    expect(events(CLIENTS.relay)).toMatchObject({ messageReject: 3, reject: 0, recipientReject: 0 }); // Relay access denied: about the message
    expect(events(CLIENTS.sparedUser)).toMatchObject({ saslFailure: 4, saslSuccess: 1 });
    const r = smtpguard('run');
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('blocks: 4 (+4 -0) +198.51.100.0/24 +203.0.113.5/32 +203.0.113.6/32 +2001:db8:1:2::/64\n');
    expect(r.code).toBe(0);
    const v4 = stack.iptables();
    expect(v4).toMatch(/^-A ufw-smtpguard -s 198\.51\.100\.0\/24 -j ufw-smtpguard-log$/m);
    expect(v4).toMatch(/^-A ufw-smtpguard -s 203\.0\.113\.5\/32 -j ufw-smtpguard-log$/m);
    expect(v4).toMatch(/^-A ufw-smtpguard -s 203\.0\.113\.6\/32 -j ufw-smtpguard-log$/m);
    expect(stack.iptables(true)).toMatch(/^-A ufw6-smtpguard -s 2001:db8:1:2::\/64 -j ufw6-smtpguard-log$/m);
    for (const never of [CLIENTS.sparedUser, CLIENTS.usernameTrap, CLIENTS.namedInUsername]) expect(v4).not.toContain(never);
    expect(stack.logText()).toMatch(/postfix\/(postfix-script|master)\[\d+\]: (refreshing the Postfix mail system|reload)/);
  });

  it('Postfix now rejects the offenders and the rest of their /24, and not the spared user or the address in the user name', () => {
    expect(postfixSays(CLIENTS.subnet[0])).toBe('rejected');
    expect(postfixSays(CLIENTS.subnetBystander)).toBe('rejected'); // never offended: its /24 did
    expect(postfixSays(CLIENTS.relay)).toBe('rejected');
    expect(postfixSays(CLIENTS.v6pair[1])).toBe('rejected');
    expect(postfixSays(CLIENTS.sparedUser)).toBe('accepted');
    expect(postfixSays(CLIENTS.namedInUsername)).toBe('accepted');
    expect(postfixSays(CLIENTS.usernameTrap)).toBe('accepted'); // 2 failures, under the threshold
    expect(postfixSays(CLIENTS.innocent)).toBe('accepted');
    // a hash map holds IPv6 addresses, not prefixes: a bystander in the /64 passes Postfix (the firewall stops it)
    expect(postfixSays(CLIENTS.v6Bystander)).toBe('accepted');
  });

  it('the firewall drops new connections from blocked clients; the innocent get the banner', () => {
    expect(banner(CLIENTS.subnet[3])).toBe('timeout');
    expect(banner(CLIENTS.subnetBystander)).toBe('timeout');
    expect(banner(CLIENTS.v6Bystander)).toBe('timeout');
    expect(banner(CLIENTS.innocent)).toBe('banner');
    expect(banner(CLIENTS.innocent6)).toBe('banner');
    expect(banner(CLIENTS.sparedUser)).toBe('banner');
    expect(counters()).toMatch(/^\s+[1-9]\d*\s+\d+\s+LOG/m);
  });

  it('status shows the blocks with their reasons and the packets the firewall dropped', () => {
    const r = smtpguard('status');
    expect(r.code).toBe(0);
    writeFileSync(path.join(process.env.SMTPGUARD_STATUS_SCREEN ?? path.join(stack.dir, 'status.txt')), r.stdout);
    expect(r.stdout).toContain('Blocked now: 4');
    // the connections that timed out above went through the /24's rule, for real
    expect(r.stdout).toMatch(/^ {2}198\.51\.100\.0\/24 +subnet +18 +\S+ \S+ +\S+ \S+ +\S+ \S+ +\S+ \S+ +1 +[1-9]\d* +/m);
    expect(r.stdout).toMatch(/^ {2}2001:db8:1:2::\/64 +prefix +3 +.* [1-9]\d* +\S+$/m);
    expect(r.stdout).toMatch(/^Close to the threshold \(not blocked\):\n {2}192\.0\.2\.30 +2 of 3$/m);
    expect(r.stdout).not.toMatch(/cannot read the ip(6)?tables counters/);
  });

  it("the metrics carry the firewall's drop counters: the connections that timed out above", () => {
    const file = path.join(stack.dir, 'smtpguard.prom');
    const r = smtpguard('run', ['--metrics-file', file]);
    expect(r).toEqual({ code: 0, stdout: '', stderr: '' }); // nothing changed: silent, metrics or not
    const text = readFileSync(file, 'utf8');
    const dropped = /^smtpguard_firewall_dropped_packets_total\{family="ipv4"\} (\d+)$/m.exec(text);
    expect(Number(dropped?.[1])).toBeGreaterThan(0);
    expect(text).toMatch(/^smtpguard_firewall_dropped_packets_total\{family="ipv6"\} [1-9]\d*$/m);
    expect(text).toMatch(/^smtpguard_reload_owed\{target="ufw"\} 0$/m);
    expect(text).toMatch(/^smtpguard_blocks\{reason="subnet",family="ipv4"\} 1$/m);
  });

  it('a second run changes nothing, says nothing and reloads nothing', () => {
    const files = [ufwPath.v4, ufwPath.v6, path.join(stack.dir, 'sender_access'), path.join(stack.dir, 'sender_access.db')].map((f) => readFileSync(f));
    const before = { counters: counters(), reloads: (stack.logText().match(/refreshing the Postfix mail system/g) ?? []).length };
    const r = smtpguard('run');
    expect(r).toEqual({ code: 0, stdout: '', stderr: '' });
    expect([ufwPath.v4, ufwPath.v6, path.join(stack.dir, 'sender_access'), path.join(stack.dir, 'sender_access.db')].map((f) => readFileSync(f))).toEqual(files);
    // a ufw reload would have reset the packet counters; a postfix reload would be logged
    expect(counters()).toBe(before.counters);
    expect((stack.logText().match(/refreshing the Postfix mail system/g) ?? []).length).toBe(before.reloads);
  });

  it('with a cidr map, Postfix rejects the whole IPv6 /64 too', () => {
    const cidr = ['--map-type', 'cidr', '--access-map', path.join(stack.dir, 'access.cidr')];
    expect(smtpguard('install', [...cidr, ...installPaths(stack.dir)]).code).toBe(0);
    const r = smtpguard('run', cidr);
    expect(r.stdout).toBe('blocks: 4 (+0 -0)\n'); // same blocks, one more map
    expect(readFileSync(path.join(stack.dir, 'access.cidr'), 'utf8')).toContain('2001:db8:1:2::/64 REJECT');
    expect(postfixSays(CLIENTS.v6Bystander)).toBe('rejected');
    expect(postfixSays(CLIENTS.subnetBystander)).toBe('rejected');
    expect(postfixSays(CLIENTS.innocent6)).toBe('accepted');
  });

  it('a failed ufw reload: the previous rules go back, ufw loads them again, exit 5', () => {
    for (let n = 0; n < 3; n++) rcpt(CLIENTS.later, 'victim@example.org');
    stack.waitForLog(/reject: RCPT from unknown\[203\.0\.113\.77\]/, 3);
    const previous = { v4: readFileSync(ufwPath.v4, 'utf8'), v6: readFileSync(ufwPath.v6, 'utf8') };
    // The fault: on its first call, this ufw breaks the rules file smtpguard just wrote
    // (a jump to a chain that does not exist), then runs the real ufw reload, which fails
    // for real and takes the firewall down. Later calls are the real ufw.
    const bin = path.join(stack.dir, 'faulty-bin');
    mkdirSync(bin, { recursive: true });
    writeFileSync(
      path.join(bin, 'ufw'),
      `#!/bin/sh
if [ ! -e ${stack.dir}/ufw-broke-once ]; then
  touch ${stack.dir}/ufw-broke-once
  sed -i 's/^COMMIT$/-A ufw-before-input -j ufw-no-such-chain\\nCOMMIT/' /etc/ufw/before.rules
fi
exec /usr/sbin/ufw "$@"
`,
    );
    chmodSync(path.join(bin, 'ufw'), 0o755);
    const r = smtpguard('run', [], { PATH: `${bin}:${process.env.PATH}` });
    expect(existsSync(path.join(stack.dir, 'ufw-broke-once'))).toBe(true);
    expect(r.stderr).toMatch(/^smtpguard: ufw reload failed: .* -- the previous before\.rules were put back and ufw reloaded with them/);
    expect(r.code).toBe(5);
    expect(readFileSync(ufwPath.v4, 'utf8')).toBe(previous.v4);
    expect(readFileSync(ufwPath.v6, 'utf8')).toBe(previous.v6);
    const v4 = stack.iptables();
    expect(v4).toMatch(/^-A ufw-before-input -i lo -j ACCEPT$/m);
    expect(v4).toMatch(/^-A ufw-before-input -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT$/m);
    expect(v4).toMatch(/^-A ufw-smtpguard -s 198\.51\.100\.0\/24 -j ufw-smtpguard-log$/m);
    expect(v4).not.toContain('203.0.113.77');
    expect(readFileSync(path.join(stack.ufwTree, 'etc/ufw/ufw.conf'), 'utf8')).toMatch(/^ENABLED=yes$/m);
    expect(stack.ufw(['status']).stdout).toMatch(/^Status: active$/m);
    expect(banner(CLIENTS.innocent)).toBe('banner');
    expect(banner(CLIENTS.subnet[0])).toBe('timeout');
  });

  it('killed with SIGKILL in the middle: every file is its old or new version, and the next run takes over the lock', async () => {
    const map = path.join(stack.dir, 'sender_access');
    const old = { map: readFileSync(map), db: readFileSync(`${map}.db`) };
    // a slow postmap: smtpguard is killed while it waits for it
    const bin = path.join(stack.dir, 'slow-bin');
    mkdirSync(bin, { recursive: true });
    writeFileSync(path.join(bin, 'postmap'), `#!/bin/sh\necho $$ > ${stack.dir}/postmap.pid\nsleep 5\nexec /usr/sbin/postmap "$@"\n`);
    chmodSync(path.join(bin, 'postmap'), 0o755);
    const child = spawn('ip', stack.fwArgv([process.execPath, BIN, 'run', ...flags], { PATH: `${bin}:${process.env.PATH}` }), { stdio: 'ignore' });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    waitFor(() => existsSync(path.join(stack.dir, 'postmap.pid')), 'the slow postmap to start', 60_000);
    expect(existsSync(path.join(stack.dir, 'smtpguard.lock'))).toBe(true);
    child.kill('SIGKILL');
    await exited;
    process.kill(Number(readFileSync(path.join(stack.dir, 'postmap.pid'), 'utf8')), 'SIGKILL');
    // the firewall part was done (new version); the map part was not (old version), never half
    expect(readFileSync(ufwPath.v4, 'utf8')).toMatch(/^-A ufw-smtpguard -s 203\.0\.113\.77\/32 -j ufw-smtpguard-log$/m);
    expect(readFileSync(map)).toEqual(old.map);
    expect(readFileSync(`${map}.db`)).toEqual(old.db);
    expect(existsSync(path.join(stack.dir, 'smtpguard.lock'))).toBe(true); // left behind by the killed run
    const next = smtpguard('run');
    expect(next.stderr).toBe('');
    expect(next.stdout).toBe('blocks: 5 (+0 -0)\n'); // the firewall had it; the map gets it now
    expect(readFileSync(map, 'utf8')).toContain('203.0.113.77 REJECT');
    expect(postfixSays(CLIENTS.later)).toBe('rejected');
    expect(existsSync(path.join(stack.dir, 'smtpguard.lock'))).toBe(false);
  });

  it('a full file system: a clear error, exit 7, and no file half-written', () => {
    // copies of the installed files on a tiny tmpfs, filled up, in a private mount namespace
    const full = path.join(stack.dir, 'full');
    mkdirSync(full, { recursive: true });
    const script = `set -e
mount -t tmpfs -o size=64k smtpguard-full ${full}
cp ${stack.dir}/before.rules.installed ${full}/before.rules
cp ${stack.dir}/before6.rules.installed ${full}/before6.rules
cp ${stack.dir}/sender_access.installed ${full}/sender_access
sha256sum ${full}/before.rules ${full}/before6.rules ${full}/sender_access > ${stack.dir}/full.before
dd if=/dev/zero of=${full}/filler bs=1k count=1000 2>/dev/null || true
# the test is only worth its name on a full file system: a 1-byte write must fail with ENOSPC
# (its error goes outside the full tmpfs, where it can be written)
if dd if=/dev/zero of=${full}/probe bs=1 count=1 2> ${stack.dir}/probe.err; then echo "machine: the tmpfs is not full after filling it"; exit 0; fi
grep -q 'No space left' ${stack.dir}/probe.err || { echo "machine: a write failed, but not for lack of space: $(cat ${stack.dir}/probe.err)"; exit 0; }
rm -f ${full}/probe
set +e
"$@"
echo "rc=$?"
sha256sum ${full}/before.rules ${full}/before6.rules ${full}/sender_access > ${stack.dir}/full.after
ls -a ${full}
`;
    const r = stack.nsRun(stack.mx, [
      'unshare', '-m', '--propagation', 'private', 'sh', '-c', script, 'sh',
      process.execPath, BIN, 'run', ...flags,
      '--ufw-rules', `${full}/before.rules`, '--ufw6-rules', `${full}/before6.rules`, '--access-map', `${full}/sender_access`, '--no-reload',
    ]);
    expect(r.stdout, 'the test machine could not fill a tmpfs').not.toMatch(/^machine: .*/m);
    expect(r.stderr).toMatch(/^smtpguard: cannot write .*full\/before(6)?\.rules(\.smtpguard-prev)?: the file system is full -- nothing was half-written/m);
    expect(r.stdout).toMatch(/^rc=7$/m);
    expect(readFileSync(path.join(stack.dir, 'full.after'), 'utf8')).toBe(readFileSync(path.join(stack.dir, 'full.before'), 'utf8'));
    expect(r.stdout).not.toMatch(/smtpguard-\d+/); // no temp file left behind
  });

  it("a client blocked in the middle of an open session is cut off at once; an innocent's open session stays", async () => {
    const blocked = openSession(CLIENTS.usernameTrap);
    const innocent = openSession(CLIENTS.innocent);
    expect(await blocked.banner()).toBe('banner');
    expect(await innocent.banner()).toBe('banner');
    expect(stack.nsRun(stack.mx, ['ss', '-tn', 'state', 'established', `dst ${CLIENTS.usernameTrap}`]).stdout).toContain(`${CLIENTS.usernameTrap}:`);
    authFail(CLIENTS.usernameTrap, 'LOGIN'); // its third failure, in a new session: over the threshold
    stack.waitForLog(new RegExp(`unknown\\[${CLIENTS.usernameTrap.replace(/\./g, '\\.')}\\]: SASL LOGIN authentication failed`), 3);
    const r = smtpguard('run');
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(new RegExp(`^blocks: \\d+ \\(\\+1 -0\\) \\+${CLIENTS.usernameTrap.replace(/\./g, '\\.')}/32`));
    // the session it had open before the block is gone, with no waiting for the client
    expect(stack.nsRun(stack.mx, ['ss', '-tn', 'state', 'established', `dst ${CLIENTS.usernameTrap}`]).stdout).not.toContain(`${CLIENTS.usernameTrap}:`);
    expect(await blocked.probe()).toBe('cut');
    expect(await innocent.probe()).toBe('alive');
  });

  it('ban memory on the real firewall: still blocked after the window moved past its events, removed when the ban ends, back twice as long', () => {
    // the block of the previous test began now, with the default ban time (24h)
    const trap = `${CLIENTS.usernameTrap}/32`;
    const later = (hours: number) => new Date(Date.now() + hours * 3_600_000).toISOString();
    const inFirewall = () => stack.iptables().includes(`-A ufw-smtpguard -s ${trap} -j ufw-smtpguard-log`);
    const extra = path.join(stack.dir, 'later.log');
    writeFileSync(extra, '');
    const at = (hours: number, window = '1h') => smtpguard('run', ['--log', extra, '--window', window, '--now', later(hours)]);
    expect(inFirewall()).toBe(true);
    // 23 hours on, a 1 h window holds none of its events: the ban keeps it
    const held = at(23);
    expect(held.stderr).toBe('');
    expect(held.stdout).not.toContain(trap);
    expect(inFirewall()).toBe(true);
    // past 24 hours: the ban is over, the run removes it from ufw
    const ended = at(25);
    expect(ended.stdout).toContain(`-${trap}`);
    expect(inFirewall()).toBe(false);
    // it comes back at +26 h: the 2nd time, for twice as long
    const line = `${later(26)} mx postfix/submission/smtpd[4242]: warning: unknown[${CLIENTS.usernameTrap}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username=testuser\n`;
    writeFileSync(extra, line.repeat(3));
    const again = at(26.1);
    expect(again.stderr).toBe('');
    expect(again.stdout).toContain(`+${trap} (2nd time, 2d)`);
    expect(inFirewall()).toBe(true);
    const status = JSON.parse(smtpguard('status', ['--json', '--now', later(26.2)]).stdout) as { blocks: Array<{ cidr: string; record: { times?: number; until?: string } | null }> };
    expect(status.blocks.find((b) => b.cidr === trap)?.record).toMatchObject({ times: 2 });
  });

  it('a /24 where a user logged in is blocked whole with the user as an exception: ufw returns early for it, the map says DUNNO', () => {
    const stamp = new Date().toISOString();
    const fail = (a: string) => `${stamp} mx postfix/smtpd[4243]: warning: unknown[${a}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username=admin\n`.repeat(3);
    const offenders = [CLIENTS.namedInUsername, CLIENTS.innocent, '192.0.2.40', '192.0.2.41', '192.0.2.42'];
    const log = path.join(stack.dir, 'exceptions.log');
    writeFileSync(log, offenders.map(fail).join('') + `${stamp} mx postfix/submission/smtpd[4244]: 4ABC123: client=unknown[${CLIENTS.sparedUser}], sasl_method=PLAIN, sasl_username=testuser\n`);
    const state = path.join(stack.dir, 'state-exceptions');
    const r = smtpguard('run', ['--log', log, '--window', '1h', '--state-dir', state]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('+192.0.2.0/24');
    const v4 = stack.iptables();
    const returnAt = v4.indexOf(`-A ufw-smtpguard -s ${CLIENTS.sparedUser}/32 -j RETURN`);
    expect(returnAt).toBeGreaterThan(-1);
    expect(returnAt).toBeLessThan(v4.indexOf('-A ufw-smtpguard -s 192.0.2.0/24 -j ufw-smtpguard-log'));
    expect(banner(CLIENTS.sparedUser)).toBe('banner');
    expect(banner(CLIENTS.usernameTrap)).toBe('timeout'); // no offender, no login: the /24 holds it
    expect(postfixSays(CLIENTS.sparedUser)).toBe('accepted');
    expect(postfixSays(CLIENTS.usernameTrap)).toBe('rejected');
    const dry = smtpguard('run', ['--dry-run', '--log', log, '--window', '1h', '--state-dir', state]).stdout;
    expect(dry).toMatch(/192\.0\.2\.0\/24 +\d+ events, \d+ offenders in this \/24; except 192\.0\.2\.20\/32 \(someone logged in there\)/);
  });
});
