/**
 * A real mail server on one machine, for the system tests: a private Postfix instance
 * (own config, queue and maillog_file) with Dovecot SASL in network namespace MX; clients
 * with documentation addresses in namespace CLIENT, joined by a veth pair; ufw enabled
 * inside MX on a private copy of /etc/ufw, bind-mounted in a private mount namespace.
 *
 * Safety: every command that touches a firewall or a namespace runs through nsRun(),
 * which refuses to run in this machine's own network namespace; nothing here writes the
 * host's /etc/ufw, /etc/postfix or binds its port 25. down() stops the daemons by their
 * PIDs and deletes the namespaces, also after a failed test.
 *
 * `npm run bench:firewall` builds on the same stack (bench/firewall/stack.ts): with
 * `smtpd: 'unfirewalled'` (its own listener takes port 25) and longer command limits.
 */
import { execFileSync, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { alive, gid, GUARD, makeUfwTree, ROOT_NETNS, uid, waitFor } from './namespaces.js';

export { waitFor };

/** The repository: two up from test/system/, three from dist-bench/test/system/ (the firewall bench compiles this file). */
export const ROOT = fileURLToPath(new URL(import.meta.url.includes('/dist-bench/test/system/') ? '../../..' : '../..', import.meta.url));
export const BIN = path.join(ROOT, 'bin', 'smtpguard.js');
const COMMANDS = ['ip', 'unshare', 'postfix', 'postmap', 'postconf', 'dovecot', 'swaks', 'ufw', 'iptables', 'ip6tables', 'ss', 'ipset', 'nft', 'systemd-analyze'];

/** What this machine lacks for the system tests; empty when they can run. */
export function missingRequirements(): string[] {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root');
  for (const command of COMMANDS) {
    if (spawnSync('sh', ['-c', `command -v ${command}`]).status !== 0) missing.push(command);
  }
  if (!existsSync('/usr/share/ufw/before.rules')) missing.push('/usr/share/ufw templates (ufw)');
  if (spawnSync('perl', ['-MIO::Socket::INET6', '-e', '1']).status !== 0) missing.push('libio-socket-inet6-perl');
  return missing;
}

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

const result = (r: SpawnSyncReturns<string>): Run => ({ code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' });

/** Client addresses, on the CLIENT side of the veth. */
export const CLIENTS = {
  subnet: ['198.51.100.1', '198.51.100.2', '198.51.100.3', '198.51.100.4', '198.51.100.5', '198.51.100.6'],
  subnetBystander: '198.51.100.50',
  v6pair: ['2001:db8:1:2::a', '2001:db8:1:2::b'],
  v6Bystander: '2001:db8:1:2::99',
  relay: '203.0.113.5',
  unknownUser: '203.0.113.6',
  later: '203.0.113.77',
  sparedUser: '192.0.2.20',
  usernameTrap: '192.0.2.30',
  namedInUsername: '192.0.2.77',
  innocent: '192.0.2.99',
  innocent6: '2001:db8:9::1',
} as const;
const ALL_CLIENTS = [
  ...CLIENTS.subnet,
  CLIENTS.subnetBystander,
  ...CLIENTS.v6pair,
  CLIENTS.v6Bystander,
  CLIENTS.relay,
  CLIENTS.unknownUser,
  CLIENTS.later,
  CLIENTS.sparedUser,
  CLIENTS.usernameTrap,
  CLIENTS.namedInUsername,
  CLIENTS.innocent,
  CLIENTS.innocent6,
];
export const MX4 = '100.64.0.1';
export const MX6 = 'fd00:64::1';

export interface StackOptions {
  /**
   * Postfix's smtpd services: 'mail' (the default) listens on 25 and 587 with Dovecot SASL,
   * and on 2525, which the firewall does not guard; 'unfirewalled' on 2525 alone, without
   * Dovecot (the firewall bench puts its own listener on port 25).
   */
  smtpd?: 'mail' | 'unfirewalled';
  /** Limits of each command run in a namespace: milliseconds (default 120 s) and bytes of output (default: Node's). */
  timeout?: number;
  maxBuffer?: number;
}

export class Stack {
  readonly dir: string;
  readonly mx: string;
  readonly client: string;
  readonly etc: string;
  readonly ufwTree: string;
  readonly log: string;
  /** The veth pair: MX's end, CLIENT's end. */
  readonly veth: readonly [string, string];
  private namespaces: string[] = [];
  private readonly smtpd: 'mail' | 'unfirewalled';
  private readonly limits: { timeout: number; maxBuffer?: number };

  constructor(options: StackOptions = {}) {
    this.smtpd = options.smtpd ?? 'mail';
    this.limits = { timeout: options.timeout ?? 120_000, ...(options.maxBuffer === undefined ? {} : { maxBuffer: options.maxBuffer }) };
    const id = String(process.pid % 100000);
    this.dir = mkdtempSync('/var/tmp/smtpguard-stack-');
    chmodSync(this.dir, 0o755); // the postfix and dovecot users walk through it
    this.mx = `sgmx${id}`;
    this.client = `sgcl${id}`;
    this.veth = [`sgm${id}`, `sgc${id}`];
    this.etc = path.join(this.dir, 'etc');
    this.ufwTree = path.join(this.dir, 'ufw');
    this.log = path.join(this.dir, 'postfix.log');
  }

  /** Runs argv inside namespace `ns`; refuses (exit 99) if that would be this machine's own. */
  nsRun(ns: string, argv: readonly string[], input = ''): Run {
    return result(spawnSync('ip', this.nsArgv(ns, argv), { encoding: 'utf8', input, ...this.limits }));
  }

  /** The arguments of `ip` that run argv inside namespace `ns` through the guard, for a process a caller spawns itself. */
  nsArgv(ns: string, argv: readonly string[]): string[] {
    return ['netns', 'exec', ns, 'sh', '-c', GUARD + 'exec "$@"', ROOT_NETNS, ...argv];
  }

  /**
   * Runs argv in MX with the private ufw tree bind-mounted over /etc/ufw and
   * /etc/default/ufw in a private mount namespace: how smtpguard and ufw run here.
   */
  fwRun(argv: readonly string[], env: Record<string, string> = {}): Run {
    const envArgs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
    return this.nsRun(this.mx, ['unshare', '-m', '--propagation', 'private', 'sh', '-c', this.bindScript() + 'exec env "$@"', 'sh', ...envArgs, ...argv]);
  }

  /** The argv that fwRun would spawn, for a test that needs the child process itself. */
  fwArgv(argv: readonly string[], env: Record<string, string> = {}): string[] {
    const envArgs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
    return this.nsArgv(this.mx, ['unshare', '-m', '--propagation', 'private', 'sh', '-c', this.bindScript() + 'exec env "$@"', 'sh', ...envArgs, ...argv]);
  }

  private bindScript(): string {
    return `mount --bind ${this.ufwTree}/etc/ufw /etc/ufw && mount --bind ${this.ufwTree}/etc/default/ufw /etc/default/ufw || exit 98; `;
  }

  /** The flags that point smtpguard at this stack's files (install writes its settings to the config here, not /etc/smtpguard); threshold 3 keeps the swaks traffic short. */
  flags(): string[] {
    return [
      '--log', this.log,
      '--postfix-config-dir', this.etc,
      '--access-map', path.join(this.dir, 'sender_access'),
      '--map-type', 'hash',
      '--lock-file', path.join(this.dir, 'smtpguard.lock'),
      '--state-dir', path.join(this.dir, 'state'),
      '--config', path.join(this.dir, 'smtpguard.conf'),
      '--threshold', '3',
      '--threshold6', '3',
      '--window', '1d',
    ];
  }

  /**
   * What the firewall backends' tests start from: ufw enabled with 25, 587 and 2525 allowed, and
   * two attackers in the log (3 SASL failures each from CLIENTS.subnet[0] and CLIENTS.v6pair[0]).
   */
  enableUfwWithTwoAttackers(): void {
    const enabled = this.ufw(['--force', 'enable']);
    if (enabled.code !== 0) throw new Error(`ufw enable failed: ${enabled.stderr}`);
    for (const port of ['25', '587', '2525']) this.ufw(['allow', `${port}/tcp`]);
    for (let n = 0; n < 3; n++) this.authFail(CLIENTS.subnet[0], 'LOGIN');
    for (let n = 0; n < 3; n++) this.authFail(CLIENTS.v6pair[0], 'PLAIN');
    this.waitForLog(/SASL (LOGIN|PLAIN) authentication failed/, 6);
  }

  /** smtpguard itself, run as cron would but inside the stack. */
  smtpguard(args: readonly string[], env: Record<string, string> = {}): Run {
    return this.fwRun([process.execPath, BIN, ...args], { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', TZ: 'UTC', ...env });
  }

  ufw(args: readonly string[]): Run {
    return this.fwRun(['ufw', ...args]);
  }

  iptables(v6 = false): string {
    return this.nsRun(this.mx, [v6 ? 'ip6tables' : 'iptables', '-S']).stdout;
  }

  /** swaks from `from` in CLIENT to the MX. */
  swaks(from: string, args: readonly string[]): Run {
    const server = from.includes(':') ? MX6 : MX4;
    return this.nsRun(this.client, ['swaks', '--server', server, '--local-interface', from, '--helo', 'client.example.test', '--from', 'probe@client.example.test', '--timeout', '5', ...args]);
  }

  authFail(from: string, mech: 'LOGIN' | 'PLAIN', user = 'testuser'): Run {
    return this.swaks(from, ['--port', '587', '--auth', mech, '--auth-user', user, '--auth-password', 'wrong', '--quit-after', 'AUTH']);
  }

  rcpt(from: string, to: string, port = '25'): Run {
    return this.swaks(from, ['--port', port, '--to', to, '--quit-after', 'RCPT']);
  }

  /** What Postfix says at RCPT on the port the firewall does not guard: the access map alone. */
  postfixSays(from: string): string {
    const out = this.rcpt(from, 'root@mx.example.test', '2525').stdout;
    return /554 5\.7\.1 .*Client host rejected/.test(out) ? 'rejected' : /250 2\.1\.5 Ok/.test(out) ? 'accepted' : `unclear: ${out.slice(-300)}`;
  }

  /** Whether a TCP connection to the SMTP port gets the banner or times out. */
  banner(from: string): string {
    const r = this.swaks(from, ['--port', '25', '--quit-after', 'CONNECT', '--timeout', '3']);
    return /220 mx\.example\.test/.test(r.stdout) ? 'banner' : /timed? ?out|Timeout/i.test(r.stdout + r.stderr) ? 'timeout' : `unclear: ${r.stdout}${r.stderr}`;
  }

  postfix(args: readonly string[]): Run {
    return this.nsRun(this.mx, ['postfix', '-c', this.etc, ...args]);
  }

  up(): void {
    this.writeConfigs();
    this.makeNetwork();
    writeFileSync(this.log, '');
    const started = this.postfix(['start']);
    if (started.code !== 0) throw new Error(`postfix start failed: ${started.stderr}${started.stdout}\n${readFileSync(this.log, 'utf8')}`);
    if (this.smtpd === 'mail') {
      // dovecot keeps the stdio it was given: hand it none, or spawnSync waits for it
      const dovecot = this.nsRun(this.mx, ['sh', '-c', 'exec dovecot -c "$0" </dev/null >/dev/null 2>&1', path.join(this.dir, 'dovecot', 'dovecot.conf')]);
      if (dovecot.code !== 0) throw new Error(`dovecot failed: ${dovecot.stderr}`);
    }
    waitFor(() => this.nsRun(this.mx, ['ss', '-ltn']).stdout.includes(':2525 '), 'postfix listening');
    if (this.smtpd === 'mail') waitFor(() => existsSync(path.join(this.dir, 'spool', 'private', 'auth')), 'dovecot auth socket');
    makeUfwTree(this.ufwTree);
  }

  down(): void {
    const pidOf = (file: string) => (existsSync(file) ? Number(readFileSync(file, 'utf8').trim()) : NaN);
    const master = pidOf(path.join(this.dir, 'spool', 'pid', 'master.pid'));
    if (Number.isInteger(master) && alive(master)) {
      this.postfix(['stop']);
      waitFor(() => !alive(master), 'postfix to stop', 10_000, false);
      if (alive(master)) process.kill(master, 'SIGKILL');
    }
    const dovecot = pidOf(path.join(this.dir, 'dovecot', 'run', 'master.pid'));
    if (Number.isInteger(dovecot) && alive(dovecot)) {
      process.kill(dovecot, 'SIGTERM');
      waitFor(() => !alive(dovecot), 'dovecot to stop', 10_000, false);
    }
    for (const ns of this.namespaces) spawnSync('ip', ['netns', 'del', ns]);
    rmSync(this.dir, { recursive: true, force: true });
  }

  private writeConfigs(): void {
    const S = this.dir;
    for (const d of ['etc', 'spool', 'data', 'dovecot/run', 'dovecot/state']) mkdirSync(path.join(S, d), { recursive: true });
    chownSync(path.join(S, 'data'), uid('postfix'), 0);
    writeFileSync(
      path.join(this.etc, 'main.cf'),
      `compatibility_level = 3.6
queue_directory = ${S}/spool
data_directory = ${S}/data
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.example.test
mydomain = example.test
myorigin = $myhostname
mydestination = $myhostname, localhost
inet_interfaces = all
inet_protocols = all
mynetworks = 127.0.0.0/8 [::1]/128
maillog_file_prefixes = /var, /dev/stdout, ${S}
maillog_file = ${this.log}
alias_maps =
alias_database =
smtpd_tls_security_level = none
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = private/auth
smtpd_sasl_security_options = noanonymous
broken_sasl_auth_clients = yes
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
smtpd_soft_error_limit = 100
smtpd_hard_error_limit = 200
smtpd_error_sleep_time = 0
smtpd_peername_lookup = no
biff = no
default_transport = discard:test-no-delivery
local_transport = discard:test-no-local-delivery
relay_transport = discard:test-no-relay
`,
    );
    const services = [
      ...(this.smtpd === 'mail'
        ? ['25        inet  n       -       n       -       -       smtpd', '587       inet  n       -       n       -       -       smtpd', '  -o syslog_name=postfix/submission']
        : []),
      '2525      inet  n       -       n       -       -       smtpd',
      '  -o syslog_name=postfix/unfirewalled',
    ];
    const internal = `pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
local unix - n n - - local
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
`;
    writeFileSync(path.join(this.etc, 'master.cf'), services.join('\n') + '\n' + internal);
    // Postfix waits until a just-written main.cf is a few seconds old before reading it
    const past = new Date(Date.now() - 10_000);
    utimesSync(path.join(this.etc, 'main.cf'), past, past);
    utimesSync(path.join(this.etc, 'master.cf'), past, past);
    if (this.smtpd === 'mail') this.writeDovecot();
  }

  private writeDovecot(): void {
    const S = this.dir;
    writeFileSync(
      path.join(S, 'dovecot', 'dovecot.conf'),
      `instance_name = smtpguardtest${process.pid}
base_dir = ${S}/dovecot/run
state_dir = ${S}/dovecot/state
protocols =
ssl = no
log_path = ${S}/dovecot/dovecot.log
auth_mechanisms = plain login
disable_plaintext_auth = no
auth_failure_delay = 0
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${S}/dovecot/users
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}
service auth {
  unix_listener ${S}/spool/private/auth {
    mode = 0660
    user = postfix
    group = postfix
  }
}
# no growing delay for repeated failures from one address: the tests make many on purpose
service anvil {
  chroot =
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
`,
    );
    writeFileSync(path.join(S, 'dovecot', 'users'), 'testuser:{PLAIN}s3cret\n');
    chownSync(path.join(S, 'dovecot', 'users'), 0, gid('dovecot'));
    chmodSync(path.join(S, 'dovecot', 'users'), 0o640);
  }

  private makeNetwork(): void {
    const [mxIf, clIf] = this.veth;
    execFileSync('ip', ['netns', 'add', this.mx]);
    this.namespaces.push(this.mx);
    execFileSync('ip', ['netns', 'add', this.client]);
    this.namespaces.push(this.client);
    execFileSync('ip', ['link', 'add', mxIf, 'type', 'veth', 'peer', 'name', clIf]);
    execFileSync('ip', ['link', 'set', mxIf, 'netns', this.mx]);
    execFileSync('ip', ['link', 'set', clIf, 'netns', this.client]);
    const mx = [
      'ip link set lo up',
      `ip addr add ${MX4}/32 dev ${mxIf}`,
      `ip -6 addr add ${MX6}/128 dev ${mxIf} nodad`,
      `ip link set ${mxIf} up`,
      ...['198.51.100.0/24', '203.0.113.0/24', '192.0.2.0/24'].map((net) => `ip route add ${net} dev ${mxIf}`),
      `ip -6 route add 2001:db8::/32 dev ${mxIf}`,
    ];
    const client = [
      'ip link set lo up',
      ...ALL_CLIENTS.map((a) => (a.includes(':') ? `ip -6 addr add ${a}/128 dev ${clIf} nodad` : `ip addr add ${a}/32 dev ${clIf}`)),
      `ip link set ${clIf} up`,
      `ip route add ${MX4}/32 dev ${clIf}`,
      `ip -6 route add ${MX6}/128 dev ${clIf}`,
    ];
    for (const [ns, script] of [[this.mx, mx], [this.client, client]] as const) {
      const r = this.nsRun(ns, ['sh', '-ec', script.join('\n')]);
      if (r.code !== 0) throw new Error(`network setup in ${ns} failed: ${r.stderr}`);
    }
  }

  /** Postfix's log lines so far. */
  logText(): string {
    return readFileSync(this.log, 'utf8');
  }

  /** Waits until Postfix has logged `count` lines matching `re` (its log is written by postlogd, a moment later). */
  waitForLog(re: RegExp, count: number): void {
    waitFor(() => (this.logText().match(new RegExp(re.source, 'gm')) ?? []).length >= count, `${count} log lines matching ${re}`);
  }
}
