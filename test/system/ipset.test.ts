/**
 * --firewall ipset on the real stack (stack.ts): real ipset sets in the MX namespace, real
 * ufw loading the `--match-set` lines, real ufw-init running the generated before.init at a
 * simulated boot, a real failed `ipset restore`, and backend switches watched by a client
 * that keeps connecting from a blocked address the whole time.
 */
import { spawn } from 'node:child_process';
import { chmodSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, CLIENTS, missingRequirements, MX4, Stack, type Run } from './stack.js';
import { installPaths } from '../helpers.js';

const missing = missingRequirements();
if (missing.length > 0 && process.env.CI) throw new Error(`system tests cannot run in CI: missing ${missing.join(', ')} (.ci/run must install them)`);

let stack: Stack;
let flags: string[];
let files: { v4: string; v6: string; init: string; save: string };
let originalInit: Buffer;

const smtpguard = (command: string, extra: string[] = []): Run => stack.smtpguard([command, ...flags, ...extra]);
const install = (extra: string[] = []) =>
  smtpguard('install', [...installPaths(stack.dir), ...extra]);
const members = (set: string) => {
  const out = stack.nsRun(stack.mx, ['ipset', 'list', set]);
  return out.code !== 0 ? null : (out.stdout.split(/\nMembers:\n/)[1] ?? '').split('\n').filter((l) => l !== '').sort();
};
const ruleCounters = (chain: string) => stack.nsRun(stack.mx, ['iptables', '-L', chain, '-v', '-x', '-n']).stdout;
const ufwInit = (action: string) => stack.fwRun(['/lib/ufw/ufw-init', action]);
/** As after a reboot: ufw stopped, every rule and chain gone (ufw's stop leaves chains it does not know), no sets. */
function reboot(): void {
  expect(ufwInit('stop').code).toBe(0);
  for (const command of ['iptables', 'ip6tables']) for (const flag of ['-F', '-X']) expect(stack.nsRun(stack.mx, [command, flag]).code).toBe(0);
  for (const set of ['smtpguard4', 'smtpguard6']) expect(stack.nsRun(stack.mx, ['ipset', 'destroy', set]).code).toBe(0);
}

/**
 * From `from` in CLIENT, a new TCP connection to the MX's port 25 every 10 ms until stop()
 * (each waits up to 0.5 s): resolves with the attempts and how many were answered. From a
 * blocked address every answered one is a moment the firewall let it through.
 */
function prober(from: string) {
  const script = `
import os, select, socket, sys, time
mx, src, stop = sys.argv[1], sys.argv[2], sys.argv[3]
pending, tries, answered = [], 0, 0
print("started", flush=True)
while not os.path.exists(stop) or pending:
    now = time.time()
    if not os.path.exists(stop):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.bind((src, 0))
        try:
            s.connect((mx, 25))
        except BlockingIOError:
            pass
        pending.append((now, s))
        tries += 1
    _, writable, _ = select.select([], [s for _, s in pending], [], 0.01)
    for t, s in list(pending):
        if s in writable or now - t > 0.5:
            if s in writable and s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                answered += 1
            s.close()
            pending.remove((t, s))
print(tries, answered, flush=True)
`;
  const stopFile = path.join(stack.dir, `stop-prober-${Date.now()}`);
  const child = spawn('ip', ['netns', 'exec', stack.client, 'python3', '-c', script, MX4, from, stopFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    started: async () => {
      for (let waited = 0; !out.includes('started') && waited < 10_000; waited += 20) await new Promise((r) => setTimeout(r, 20));
    },
    stop: async () => {
      stack.nsRun(stack.client, ['touch', stopFile]);
      await exited;
      const [tries, answered] = out.trim().split('\n').at(-1)!.split(' ').map(Number);
      return { tries: tries!, answered: answered! };
    },
  };
}

/** Runs smtpguard in the background while the prober watches; the run's result and what the prober saw. */
async function runWatched(args: string[]): Promise<{ run: Run; probe: { tries: number; answered: number } }> {
  const watch = prober(CLIENTS.subnet[0]);
  await watch.started();
  await new Promise((r) => setTimeout(r, 300)); // attempts before the switch too
  const run = await new Promise<Run>((resolve) => {
    const child = spawn('ip', stack.fwArgv([process.execPath, BIN, 'run', ...flags, ...args], { PATH: process.env.PATH ?? '', TZ: 'UTC' }));
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
  await new Promise((r) => setTimeout(r, 300));
  return { run, probe: await watch.stop() };
}

describe.runIf(missing.length === 0)('--firewall ipset on the real stack', () => {
  beforeAll(() => {
    stack = new Stack();
    stack.up();
    const etcUfw = path.join(stack.ufwTree, 'etc/ufw');
    files = { v4: path.join(etcUfw, 'before.rules'), v6: path.join(etcUfw, 'before6.rules'), init: path.join(etcUfw, 'before.init'), save: path.join(stack.dir, 'state', 'ipset.save') };
    originalInit = readFileSync(files.init);
    flags = stack.flags();
    const enabled = stack.ufw(['--force', 'enable']);
    if (enabled.code !== 0) throw new Error(`ufw enable failed: ${enabled.stderr}`);
    for (const port of ['25', '587', '2525']) stack.ufw(['allow', `${port}/tcp`]);
    for (let n = 0; n < 3; n++) stack.authFail(CLIENTS.subnet[0], 'LOGIN');
    for (let n = 0; n < 3; n++) stack.authFail(CLIENTS.v6pair[0], 'PLAIN');
    stack.waitForLog(/SASL (LOGIN|PLAIN) authentication failed/, 6);
  }, 240_000);

  afterAll(() => {
    stack?.down();
  });

  it('install (rules, the default) adds an empty section to before.init and leaves it as it was otherwise', () => {
    const r = install();
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const init = readFileSync(files.init, 'utf8');
    expect(init).toMatch(/^set -e\n# BEGIN smtpguard \(generated by "smtpguard run": do not edit between these markers\)\n# END smtpguard\n\ncase "\$1" in/m);
    expect(statSync(files.init).mode & 0o777).toBe(0o640);
    const run = smtpguard('run');
    expect(run.stdout).toBe('blocks: 2 (+2 -0) +198.51.100.1/32 +2001:db8:1:2::/64\n');
    expect(stack.iptables()).toMatch(/^-A ufw-smtpguard -s 198\.51\.100\.1\/32 -j ufw-smtpguard-log$/m);
  });

  it('rules -> ipset is one run: the sets are filled before the chain names them, and the blocked client never gets through', async () => {
    const persisted = install(['--firewall', 'ipset']);
    expect(persisted.code).toBe(0);
    expect(readFileSync(path.join(stack.dir, 'smtpguard.conf'), 'utf8')).toMatch(/^FIREWALL=ipset$/m);
    expect(statSync(files.init).mode & 0o777).toBe(0o750); // ufw-init runs it only when executable
    const { run, probe } = await runWatched([]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('blocks: 2 (+0 -0)\n');
    expect(probe.tries).toBeGreaterThan(50);
    expect(probe.answered).toBe(0);
    const v4 = stack.iptables();
    expect(v4).toMatch(/^-A ufw-smtpguard -m set --match-set smtpguard4 src -j ufw-smtpguard-log$/m);
    expect(v4).not.toMatch(/^-A ufw-smtpguard -s /m);
    expect(stack.iptables(true)).toMatch(/^-A ufw6-smtpguard -m set --match-set smtpguard6 src -j ufw6-smtpguard-log$/m);
    expect(members('smtpguard4')).toEqual(['198.51.100.1']);
    expect(members('smtpguard6')).toEqual(['2001:db8:1:2::/64']);
    expect(readFileSync(files.v4, 'utf8')).toContain('# BEGIN smtpguard (generated by "smtpguard run": do not edit between these markers)\n-A ufw-smtpguard -m set --match-set smtpguard4 src -j ufw-smtpguard-log\n# END smtpguard\n');
    expect(readFileSync(files.save, 'utf8')).toMatch(/^create smtpguard4 hash:net family inet hashsize 1024 maxelem 131072\nadd smtpguard4 198\.51\.100\.1\/32\ncreate smtpguard6 hash:net family inet6 hashsize 1024 maxelem 131072\nadd smtpguard6 2001:db8:1:2::\/64\n$/m);
    expect(readFileSync(files.init, 'utf8')).toContain(`ipset -exist restore -file '${files.save}'`);
  }, 60_000);

  it('blocked clients time out, the innocent get the banner, Postfix rejects from the map as before', () => {
    expect(stack.banner(CLIENTS.subnet[0])).toBe('timeout');
    expect(stack.banner(CLIENTS.v6pair[0])).toBe('timeout');
    expect(stack.banner(CLIENTS.subnet[1])).toBe('banner'); // its /24 neighbour: not an offender
    expect(stack.banner(CLIENTS.innocent)).toBe('banner');
    expect(stack.banner(CLIENTS.innocent6)).toBe('banner');
    expect(stack.postfixSays(CLIENTS.subnet[0])).toBe('rejected');
    expect(stack.postfixSays(CLIENTS.innocent)).toBe('accepted');
  });

  it('a new block is one set swap: no ufw reload (ufw\'s own counters keep counting), the client blocked at once', () => {
    for (let n = 0; n < 3; n++) stack.rcpt(CLIENTS.later, 'victim@example.org');
    stack.waitForLog(/reject: RCPT from unknown\[203\.0\.113\.77\]/, 3);
    const before = ruleCounters('ufw-before-input');
    const packets = (text: string) => text.split('\n').slice(2).reduce((sum, line) => sum + (Number(line.trim().split(/\s+/)[0]) || 0), 0);
    expect(packets(before)).toBeGreaterThan(0);
    const r = smtpguard('run');
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('blocks: 3 (+1 -0) +203.0.113.77/32\n');
    expect(members('smtpguard4')).toEqual(['198.51.100.1', '203.0.113.77']);
    expect(packets(ruleCounters('ufw-before-input'))).toBeGreaterThanOrEqual(packets(before)); // a ufw reload resets them to 0
    expect(stack.banner(CLIENTS.later)).toBe('timeout');
    expect(ruleCounters('ufw-smtpguard')).toMatch(/^\s+[1-9]\d*\s+\d+\s+ufw-smtpguard-log .*match-set smtpguard4 src/m);
  });

  it('status reads the sets: members, maxelem and the packets their rule dropped; kernel and save file agree', () => {
    const r = smtpguard('status');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Blocked now: 3');
    expect(r.stdout).toMatch(/^Set smtpguard4: 2 members of at most 131072, [1-9]\d* packets dropped since ufw loaded its rule$/m);
    expect(r.stdout).toMatch(/^Set smtpguard6: 1 member of at most 131072, [1-9]\d* packets dropped/m);
    expect(r.stdout).not.toMatch(/Not in the kernel|but not in the save file/);
    // a member removed behind smtpguard's back is reported
    stack.nsRun(stack.mx, ['ipset', 'del', 'smtpguard4', '203.0.113.77']);
    expect(smtpguard('status').stdout).toMatch(/^Not in the kernel's sets \(in the save file only\): 203\.0\.113\.77\/32$/m);
    stack.nsRun(stack.mx, ['ipset', 'add', 'smtpguard4', '203.0.113.77']);
  });

  it('a before.init that lost its x bit (ufw-init would skip it at boot) is a warning in status and on every run', () => {
    chmodSync(files.init, 0o640);
    expect(smtpguard('status').stdout).toMatch(/^WARNING: \S+before\.init is not executable, so ufw-init skips it: at the next boot ufw cannot load its rules/m);
    const r = smtpguard('run');
    expect(r.stderr).toMatch(/before\.init is not executable/);
    expect(r.code).toBe(0);
    chmodSync(files.init, 0o750);
    expect(smtpguard('status').stdout).not.toContain('WARNING');
    expect(smtpguard('run').stderr).toBe('');
  });

  it('a second run changes nothing, says nothing and runs nothing', () => {
    const save = readFileSync(files.save);
    const counters = ruleCounters('ufw-smtpguard');
    expect(smtpguard('run')).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(readFileSync(files.save)).toEqual(save);
    expect(ruleCounters('ufw-smtpguard')).toBe(counters);
  });

  it('a reboot: ufw stopped, the sets gone, ufw-init start recreates them from the save file before it loads the rules', () => {
    reboot();
    expect(members('smtpguard4')).toBeNull();
    const started = ufwInit('start');
    expect(started.stderr + started.stdout).not.toMatch(/error|could not/i);
    expect(started.code).toBe(0);
    expect(members('smtpguard4')).toEqual(['198.51.100.1', '203.0.113.77']);
    expect(members('smtpguard6')).toEqual(['2001:db8:1:2::/64']);
    expect(stack.iptables()).toMatch(/^-A ufw-smtpguard -m set --match-set smtpguard4 src -j ufw-smtpguard-log$/m);
    expect(stack.banner(CLIENTS.subnet[0])).toBe('timeout');
    expect(stack.banner(CLIENTS.innocent)).toBe('banner');
    // and a plain ufw reload keeps them (before.init leaves existing sets alone)
    expect(stack.ufw(['reload']).code).toBe(0);
    expect(members('smtpguard4')).toEqual(['198.51.100.1', '203.0.113.77']);
  });

  it('a boot with no save file yet: empty sets, so ufw still loads its rules', () => {
    reboot();
    const saved = readFileSync(files.save);
    stack.nsRun(stack.mx, ['mv', files.save, `${files.save}.away`]);
    expect(ufwInit('start').code).toBe(0);
    expect(members('smtpguard4')).toEqual([]);
    expect(stack.iptables()).toMatch(/^-A ufw-smtpguard -m set --match-set smtpguard4 src -j ufw-smtpguard-log$/m);
    expect(stack.banner(CLIENTS.innocent)).toBe('banner');
    stack.nsRun(stack.mx, ['mv', `${files.save}.away`, files.save]);
    expect(readFileSync(files.save)).toEqual(saved);
    // the next run finds the kernel's sets short of the save file and loads them again, though the decision did not change
    const r = smtpguard('run');
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('blocks: 3 (+0 -0)\n');
    expect(members('smtpguard4')).toEqual(['198.51.100.1', '203.0.113.77']);
    expect(members('smtpguard6')).toEqual(['2001:db8:1:2::/64']);
    expect(smtpguard('run')).toEqual({ code: 0, stdout: '', stderr: '' });
  });

  it('a failed ipset restore: the sets in force stay as they were, the save file too, exit 5; the next run applies', () => {
    for (let n = 0; n < 3; n++) stack.rcpt(CLIENTS.relay, 'victim@example.org');
    stack.waitForLog(/reject: RCPT from unknown\[203\.0\.113\.5\]/, 3);
    // the fault, for real: a set of another type holds the temporary set's name, and a rule uses it, so it cannot be removed
    stack.nsRun(stack.mx, ['ipset', 'create', 'smtpguard4-new', 'hash:ip']);
    stack.nsRun(stack.mx, ['iptables', '-I', 'OUTPUT', '-m', 'set', '--match-set', 'smtpguard4-new', 'dst', '-j', 'ACCEPT']);
    const save = readFileSync(files.save);
    const r = smtpguard('run');
    expect(r.stderr).toMatch(/^smtpguard: ipset restore failed, the sets in force were not changed: ipset v[\d.]+: Error in line 1: Set cannot be created: set with the same name already exists -- /);
    expect(r.code).toBe(5);
    expect(members('smtpguard4')).toEqual(['198.51.100.1', '203.0.113.77']);
    expect(readFileSync(files.save)).toEqual(save);
    expect(stack.banner(CLIENTS.innocent)).toBe('banner');
    stack.nsRun(stack.mx, ['iptables', '-D', 'OUTPUT', '-m', 'set', '--match-set', 'smtpguard4-new', 'dst', '-j', 'ACCEPT']);
    stack.nsRun(stack.mx, ['ipset', 'destroy', 'smtpguard4-new']);
    const again = smtpguard('run');
    expect(again.stderr).toBe('');
    expect(again.stdout).toBe('blocks: 4 (+1 -0) +203.0.113.5/32\n');
    expect(members('smtpguard4')).toEqual(['198.51.100.1', '203.0.113.5', '203.0.113.77']);
    expect(stack.banner(CLIENTS.relay)).toBe('timeout');
  });

  it('ipset -> rules is one run too, with no gap; the sets and the save file go, before.init\'s section empties', async () => {
    expect(install(['--firewall', 'rules']).code).toBe(0);
    const { run, probe } = await runWatched([]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(probe.tries).toBeGreaterThan(50);
    expect(probe.answered).toBe(0);
    const v4 = stack.iptables();
    expect(v4).toMatch(/^-A ufw-smtpguard -s 198\.51\.100\.1\/32 -j ufw-smtpguard-log$/m);
    expect(v4).not.toContain('match-set');
    expect(members('smtpguard4')).toBeNull();
    expect(members('smtpguard6')).toBeNull();
    expect(() => statSync(files.save)).toThrow();
    expect(readFileSync(files.init, 'utf8')).toMatch(/^# BEGIN smtpguard .*\n# END smtpguard$/m);
    expect(stack.banner(CLIENTS.later)).toBe('timeout');
  }, 60_000);

  it('the control: the same watcher does see the moment a plain ufw reload lets everything through', async () => {
    const watch = prober(CLIENTS.later);
    await watch.started();
    await new Promise((r) => setTimeout(r, 300));
    expect(stack.ufw(['reload']).code).toBe(0);
    await new Promise((r) => setTimeout(r, 300));
    const probe = await watch.stop();
    expect(probe.answered).toBeGreaterThan(0);
    expect(stack.banner(CLIENTS.later)).toBe('timeout'); // blocked again once ufw has loaded
  });

  it('uninstall gives before.init back byte for byte', () => {
    const r = smtpguard('uninstall', [...installPaths(stack.dir)]);
    expect(r.code).toBe(0);
    expect(readFileSync(files.init)).toEqual(originalInit);
  });
});
