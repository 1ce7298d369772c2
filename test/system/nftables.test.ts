/**
 * --firewall nftables on the real stack (stack.ts): real nft in the MX namespace beside an enabled
 * ufw, kernel timeouts that end a ban with no run, the boot unit's load after a simulated reboot,
 * a transaction the kernel rejects, and switches from and to ufw's backends watched by a client
 * that keeps connecting from a blocked address the whole time.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENTS, missingRequirements, MX4, Stack, waitFor, type Run } from './stack.js';
import { runWatched as runWatchedBy, startProber } from './prober.js';
import { installPaths } from '../helpers.js';

const missing = missingRequirements();
if (missing.length > 0 && process.env.CI) throw new Error(`system tests cannot run in CI: missing ${missing.join(', ')} (.ci/run must install them)`);

let stack: Stack;
let flags: string[];
let files: { v4: string; save: string; unit: string };

const smtpguard = (command: string, extra: string[] = []): Run => stack.smtpguard([command, ...flags, ...extra]);
const install = (extra: string[] = []) => smtpguard('install', [...installPaths(stack.dir), ...extra]);
const nft = (...args: string[]) => stack.nsRun(stack.mx, ['nft', ...args]);
/** The elements of one set as nft lists them (`198.51.100.1 counter packets 0 bytes 0 timeout 1d expires ...`), or null when the table is not there. */
function elements(set: string): string[] | null {
  const out = nft('list', 'set', 'inet', 'smtpguard', set);
  if (out.code !== 0) return null;
  const m = /elements = \{([^}]*)\}/.exec(out.stdout);
  return m === null ? [] : m[1]!.split(',').map((e) => e.trim().replace(/\s+/g, ' ')).filter((e) => e !== '');
}
const addresses = (set: string) => elements(set)?.map((e) => e.split(' ')[0]!).sort() ?? null;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** A plain TCP listener that greets and closes (the "container"'s SMTP server). */
const LISTENER = `
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", 25)); s.listen(16)
while True:
    c, _ = s.accept(); c.sendall(b"220 container\\r\\n"); c.close()
`;
/** Whether a TCP connection from \`from\` in CLIENT to MX's \`port\` gets a greeting ('banner') or times out (2 s). */
function tcpSays(from: string, port: number): string {
  const script = 'import socket,sys\ns=socket.socket(); s.settimeout(2); s.bind((sys.argv[1],0))\ntry:\n    s.connect((sys.argv[2], int(sys.argv[3]))); print("banner" if s.recv(64).startswith(b"220") else "other")\nexcept socket.timeout:\n    print("timeout")';
  return stack.nsRun(stack.client, ['python3', '-c', script, from, MX4, String(port)]).stdout.trim();
}
const runWatched = () => runWatchedBy(stack, startProber(stack, CLIENTS.subnet[0]), flags);

describe.runIf(missing.length === 0)('--firewall nftables on the real stack', () => {
  beforeAll(() => {
    stack = new Stack();
    stack.up();
    files = { v4: path.join(stack.ufwTree, 'etc/ufw/before.rules'), save: path.join(stack.dir, 'state', 'nftables.save'), unit: path.join(stack.dir, 'systemd', 'smtpguard-nftables.service') };
    flags = stack.flags();
    stack.enableUfwWithTwoAttackers();
  }, 240_000);

  afterAll(() => {
    stack?.down();
  });

  it('rules first (the default), as an existing install has it', () => {
    expect(install().code).toBe(0);
    const run = smtpguard('run');
    expect(run.stderr).toBe('');
    expect(run.stdout).toBe('blocks: 2 (+2 -0) +198.51.100.1/32 +2001:db8:1:2::/64\n');
    expect(stack.iptables()).toMatch(/^-A ufw-smtpguard -s 198\.51\.100\.1\/32 -j ufw-smtpguard-log$/m);
  });

  it('install --firewall nftables: the boot unit (systemd-analyze verify accepts it) and the save file; ufw\'s files as they were', () => {
    const rulesBefore = readFileSync(files.v4, 'utf8');
    const r = install(['--firewall', 'nftables']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`created ${files.unit}`);
    const unit = readFileSync(files.unit, 'utf8');
    expect(unit).toMatch(/^Before=network-pre\.target postfix\.service shutdown\.target$/m);
    expect(unit).toMatch(/^Wants=network-pre\.target$/m);
    expect(unit).toMatch(new RegExp(`^ExecStart=\\S+node \\S+smtpguard\\.js load-firewall --config ${stack.dir}/smtpguard\\.conf$`, 'm'));
    expect(execFileSync('systemd-analyze', ['verify', files.unit], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })).toBe('');
    expect(readFileSync(files.save, 'utf8')).toMatch(/^ports 25,465,587$/m);
    expect(readFileSync(files.v4, 'utf8')).toBe(rulesBefore);
    expect(readFileSync(path.join(stack.dir, 'smtpguard.conf'), 'utf8')).toMatch(/^FIREWALL=nftables$/m);
  });

  it('rules -> nftables is one run: the table is loaded before ufw\'s section empties, and the blocked client never gets through', async () => {
    const { run, probe } = await runWatched();
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('blocks: 2 (+0 -0)\n');
    expect(probe.tries).toBeGreaterThan(50);
    expect(probe.answered).toBe(0);
    expect(addresses('hosts4')).toEqual(['198.51.100.1']);
    expect(addresses('ranges6')).toEqual(['2001:db8:1:2::/64']);
    // the ban's time left is the element's timeout (24 h after the last failure at most)
    expect(elements('hosts4')![0]).toMatch(/^198\.51\.100\.1 counter packets \d+ bytes \d+ timeout (2[0-3]h|1d)\S* expires \S+$/);
    expect(stack.iptables()).not.toMatch(/^-A ufw-smtpguard -s /m);
    expect(readFileSync(files.v4, 'utf8')).toContain('# BEGIN smtpguard (generated by "smtpguard run": do not edit between these markers)\n# END smtpguard\n');
    expect(readFileSync(files.save, 'utf8')).toMatch(/^block 198\.51\.100\.1\/32 until=2\d{3}-\S+Z\nblock 2001:db8:1:2::\/64 until=\S+Z\n$/m);
  }, 60_000);

  it('beside an enabled ufw that accepts port 25: blocked clients time out, the innocent get the banner, Postfix rejects from the map', () => {
    expect(stack.banner(CLIENTS.subnet[0])).toBe('timeout');
    expect(stack.banner(CLIENTS.v6pair[0])).toBe('timeout');
    expect(stack.banner(CLIENTS.subnet[1])).toBe('banner');
    expect(stack.banner(CLIENTS.innocent)).toBe('banner');
    expect(stack.banner(CLIENTS.innocent6)).toBe('banner');
    expect(stack.postfixSays(CLIENTS.subnet[0])).toBe('rejected');
    expect(nft('list', 'chain', 'inet', 'smtpguard', 'input').stdout).toMatch(/ip saddr @hosts4 counter packets [1-9]\d* bytes \d+ jump block/);
  });

  it('a run that only renews a ban (Postfix logged the blocked client\'s rejects) says nothing; the next one changes nothing and runs nothing', () => {
    expect(smtpguard('run')).toEqual({ code: 0, stdout: '', stderr: '' });
    const save = readFileSync(files.save);
    const counters = nft('list', 'chain', 'inet', 'smtpguard', 'input').stdout;
    expect(smtpguard('run')).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(readFileSync(files.save)).toEqual(save);
    expect(nft('list', 'chain', 'inet', 'smtpguard', 'input').stdout).toBe(counters);
  });

  it('block --for 3s: dropped at once, and the kernel drops the element when the time is up, with no run; status does not call it missing', async () => {
    const r = smtpguard('block', [CLIENTS.later, '--for', '3s']);
    expect(r.code).toBe(0);
    expect(elements('hosts4')!.find((e) => e.startsWith(CLIENTS.later))).toMatch(/ timeout [1-3]s expires /);
    expect(stack.banner(CLIENTS.later)).toBe('timeout');
    await sleep(3_500);
    expect(addresses('hosts4')).toEqual(['198.51.100.1']);
    expect(stack.banner(CLIENTS.later)).toBe('banner');
    const status = smtpguard('status');
    expect(status.stdout).not.toMatch(/Not in the kernel|but not in the save file/);
    expect(status.stdout).toContain('Blocked now: 2');
  });

  it('a 3 s block extended to 1 h is a delete and an add in one transaction: still dropped after the first 3 s', async () => {
    expect(smtpguard('block', [CLIENTS.later, '--for', '3s']).code).toBe(0);
    expect(smtpguard('block', [CLIENTS.later, '--for', '1h']).code).toBe(0);
    expect(elements('hosts4')!.find((e) => e.startsWith(CLIENTS.later))).toMatch(/ timeout (59m5\d|1h)\S* expires /);
    await sleep(3_500);
    expect(stack.banner(CLIENTS.later)).toBe('timeout');
    expect(smtpguard('unblock', [CLIENTS.later]).code).toBe(0);
    expect(addresses('hosts4')).toEqual(['198.51.100.1']);
    expect(stack.banner(CLIENTS.later)).toBe('banner');
  });

  it('status: each block with the kernel\'s expiry, the drop counters per set, and an element removed by hand named', () => {
    const r = smtpguard('status');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/KERNEL EXPIRES/);
    expect(r.stdout).toMatch(/^ {2}198\.51\.100\.1\/32 .* \d{4}-\d\d-\d\d \d\d:\d\d *$/m);
    expect(r.stdout).toMatch(/^Set inet smtpguard hosts4: 1 member, [1-9]\d* packets dropped since its rule was loaded$/m);
    expect(r.stdout).toMatch(/^Set inet smtpguard ranges6: 1 member, [1-9]\d* packets dropped/m);
    expect(nft('delete', 'element', 'inet', 'smtpguard', 'hosts4', '{ 198.51.100.1 }').code).toBe(0);
    expect(smtpguard('status').stdout).toMatch(/^Not in the kernel's nftables sets \(in the save file only\): 198\.51\.100\.1\/32$/m);
    expect(nft('add', 'element', 'inet', 'smtpguard', 'ranges4', '{ 192.0.2.128/25 }').code).toBe(0);
    expect(smtpguard('status').stdout).toMatch(/^In the kernel's nftables sets but not in the save file: 192\.0\.2\.128\/25$/m);
    expect(nft('delete', 'element', 'inet', 'smtpguard', 'ranges4', '{ 192.0.2.128/25 }').code).toBe(0);
  });

  it('a table gone behind smtpguard\'s back is loaded whole by the next run, though the decision did not change', () => {
    expect(nft('delete', 'table', 'inet', 'smtpguard').code).toBe(0);
    expect(stack.banner(CLIENTS.subnet[0])).toBe('banner');
    const r = smtpguard('run');
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('blocks: 2 (+0 -0)\n');
    expect(addresses('hosts4')).toEqual(['198.51.100.1']);
    expect(stack.banner(CLIENTS.subnet[0])).toBe('timeout');
  });

  it('a reboot: the unit\'s load-firewall puts the table back with the time each ban has left; a ban that ended meanwhile is left out', async () => {
    expect(smtpguard('block', [CLIENTS.later, '--for', '2s']).code).toBe(0);
    const before = elements('hosts4')!.find((e) => e.startsWith('198.51.100.1'))!;
    expect(nft('delete', 'table', 'inet', 'smtpguard').code).toBe(0);
    await sleep(2_500);
    const loaded = smtpguard('load-firewall');
    expect(loaded.stderr).toBe('');
    expect(loaded.stdout).toBe('smtpguard load-firewall: loaded 2 block(s) as 2 element(s) into inet smtpguard; 1 whose ban ended while it was not loaded left out\n');
    expect(addresses('hosts4')).toEqual(['198.51.100.1']);
    const left = (e: string) => /expires (?:(\d+)h)?(?:(\d+)m)?/.exec(e)!.slice(1).reduce((sum, n, i) => sum + Number(n ?? 0) * (i === 0 ? 60 : 1), 0);
    expect(left(elements('hosts4')![0]!)).toBeLessThanOrEqual(left(before)); // the time left, not a fresh ban
    expect(stack.banner(CLIENTS.subnet[0])).toBe('timeout');
    expect(stack.banner(CLIENTS.later)).toBe('banner');
  });

  it('Postfix in a container behind DNAT (port 465 -> CT:25): the forward chain drops a blocked client that the input chain never sees', () => {
    // a third namespace, the "container", reached from MX through a veth; MX forwards and NATs
    const id = String(process.pid % 100000);
    const ct = `sgct${id}`;
    const [mxIf, ctIf] = [`sgx${id}`, `sgy${id}`];
    let listener: ChildProcess | null = null;
    try {
      execFileSync('ip', ['netns', 'add', ct]);
      execFileSync('ip', ['link', 'add', mxIf, 'type', 'veth', 'peer', 'name', ctIf]);
      execFileSync('ip', ['link', 'set', mxIf, 'netns', stack.mx]);
      execFileSync('ip', ['link', 'set', ctIf, 'netns', ct]);
      for (const argv of [['ip', 'addr', 'add', '10.203.0.1/24', 'dev', mxIf], ['ip', 'link', 'set', mxIf, 'up'], ['sysctl', '-qw', 'net.ipv4.ip_forward=1']]) expect(stack.nsRun(stack.mx, argv).code).toBe(0);
      for (const argv of [['ip', 'addr', 'add', '10.203.0.2/24', 'dev', ctIf], ['ip', 'link', 'set', ctIf, 'up'], ['ip', 'link', 'set', 'lo', 'up'], ['ip', 'route', 'add', 'default', 'via', '10.203.0.1']]) expect(stack.nsRun(ct, argv).code).toBe(0);
      const nat = stack.nsRun(stack.mx, ['nft', '-f', '-'], 'table ip sgnat {\n  chain prerouting {\n    type nat hook prerouting priority dstnat;\n    tcp dport 465 dnat to 10.203.0.2:25\n  }\n}\n');
      expect(nat.code).toBe(0);
      expect(stack.ufw(['route', 'allow', 'proto', 'tcp', 'to', '10.203.0.2', 'port', '25']).code).toBe(0); // ufw's forward policy is DROP
      listener = spawn('ip', stack.nsArgv(ct, ['python3', '-c', LISTENER]), { stdio: ['ignore', 'pipe', 'inherit'] });
      waitFor(() => stack.nsRun(ct, ['ss', '-ltn']).stdout.includes(':25 '), 'the container listener');
      expect(tcpSays(CLIENTS.innocent, 465)).toBe('banner');
      expect(addresses('hosts4')).toContain(CLIENTS.subnet[0]);
      expect(tcpSays(CLIENTS.subnet[0], 465)).toBe('timeout');
      expect(nft('list', 'chain', 'inet', 'smtpguard', 'forward').stdout).toMatch(/ip saddr @hosts4 counter packets [1-9]\d* bytes \d+ jump block/);
    } finally {
      if (listener?.pid !== undefined && listener.exitCode === null) process.kill(listener.pid, 'SIGTERM');
      stack.nsRun(stack.mx, ['nft', 'delete', 'table', 'ip', 'sgnat']);
      stack.ufw(['route', 'delete', 'allow', 'proto', 'tcp', 'to', '10.203.0.2', 'port', '25']);
      spawnSync('ip', ['netns', 'del', ct]);
    }
  });

  it('a transaction the kernel rejects: exit 5, the table and the save file as they were; the next run applies', () => {
    // the fault, for real: a range put in the set by hand overlaps the new block, and an interval set refuses overlaps
    expect(nft('add', 'element', 'inet', 'smtpguard', 'ranges4', '{ 203.0.113.128/25 }').code).toBe(0);
    const save = readFileSync(files.save);
    const r = smtpguard('block', ['203.0.113.0/24']);
    expect(r.stderr).toMatch(/^smtpguard: nft rejected the change, the table inet smtpguard in the kernel is as it was \(one transaction\): .*interval overlaps with an existing one.* -- /);
    expect(r.code).toBe(5);
    expect(readFileSync(files.save)).toEqual(save);
    expect(addresses('ranges4')).toEqual(['203.0.113.128/25']);
    expect(stack.banner(CLIENTS.relay)).toBe('banner'); // 203.0.113.5: not in the /25
    expect(nft('delete', 'element', 'inet', 'smtpguard', 'ranges4', '{ 203.0.113.128/25 }').code).toBe(0);
    const again = smtpguard('run');
    expect(again.stderr).toBe('');
    expect(again.stdout).toBe('blocks: 3 (+1 -0) +203.0.113.0/24 (manual)\n');
    expect(addresses('ranges4')).toEqual(['203.0.113.0/24']);
    expect(stack.banner(CLIENTS.relay)).toBe('timeout');
    expect(smtpguard('unblock', ['203.0.113.0/24']).code).toBe(0);
    expect(addresses('ranges4')).toEqual([]);
  });

  it('nftables -> ipset is one run too, with no gap; the table and its save file go', async () => {
    expect(install(['--firewall', 'ipset']).code).toBe(0);
    const { run, probe } = await runWatched();
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(probe.tries).toBeGreaterThan(50);
    expect(probe.answered).toBe(0);
    expect(nft('list', 'table', 'inet', 'smtpguard').code).not.toBe(0);
    expect(existsSync(files.save)).toBe(false);
    expect(stack.iptables()).toMatch(/^-A ufw-smtpguard -m set --match-set smtpguard4 src -j ufw-smtpguard-log$/m);
    expect(stack.banner(CLIENTS.subnet[0])).toBe('timeout');
  }, 60_000);

  it('uninstall removes the unit, the save file and the table, and nothing else of nftables', async () => {
    expect(install(['--firewall', 'nftables']).code).toBe(0);
    const { run, probe } = await runWatched();
    expect(run.code).toBe(0);
    expect(probe.answered).toBe(0);
    expect(addresses('hosts4')).toEqual(['198.51.100.1']);
    expect(nft('add', 'table', 'inet', 'other').code).toBe(0);
    const r = smtpguard('uninstall', [...installPaths(stack.dir)]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(existsSync(files.unit)).toBe(false);
    expect(existsSync(files.save)).toBe(false);
    expect(nft('list', 'table', 'inet', 'smtpguard').code).not.toBe(0);
    expect(nft('list', 'table', 'inet', 'other').code).toBe(0);
    expect(stack.banner(CLIENTS.subnet[0])).toBe('banner');
  }, 60_000);
});
