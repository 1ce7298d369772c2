/**
 * The bench's stack: the system tests' Stack (test/system/stack.ts: network namespaces MX and
 * CLIENT joined by a veth pair, ufw inside MX on a private tree bind-mounted in a private mount
 * namespace, a private Postfix, every command through the guard that refuses this machine's own
 * network namespace), with Postfix on the unfirewalled port 2525 only and longer command limits.
 *
 * What only the bench has: MX routes the blocks (10.0.0.0/8) to CLIENT; a plain listener on
 * MX:25 and on the control port (listener.py) and a stand-in CrowdSec Local API (lapi.cjs), both
 * run from this folder; smtpguard installed with the firewall mode under test, its blocks pulled
 * from that LAPI, and the commands it runs timed by wrappers first in its PATH; the client
 * program (client.py) in CLIENT; reading back the kernel's blocks and counters. No command starts
 * after Ctrl-C but those that take the stack down.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CLIENTS, MX4, Stack, waitFor, type Run } from '../../test/system/stack.js';
import { interrupted, ROOT, sh } from './common.js';

export { MX4 };
export type Mode = 'rules' | 'ipset' | 'nftables';

/** The innocent client (one of the stack's client addresses): never in a block (the blocks are all in 10.0.0.0/8). */
export const INNOCENT = CLIENTS.innocent;
export const LAPI_PORT = 18_099;
/** A port ufw allows that does not go through the smtpguard chain: the control, measured in turn with port 25. */
export const CONTROL_PORT = 2526;
/** Where the blocks are: MX routes them to CLIENT, where a blocked address is probed from. */
const BLOCKS = '10.0.0.0/8';
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
/** The helper programs: run from the repository (they are not compiled). */
const HELPERS = path.join(ROOT, 'bench', 'firewall');
/** Commands smtpguard runs that are timed one by one (a wrapper first in its PATH logs start and end). */
const WRAPPED = ['ufw', 'ipset', 'nft', 'postmap', 'postfix', 'ss'];

export class BenchStack extends Stack {
  readonly state: string;
  readonly desired: string;
  readonly timesFile: string;
  private readonly wrapDir: string;
  private children: ChildProcess[] = [];
  /** Set by down(): its commands run also after Ctrl-C. */
  private stopping = false;

  constructor(readonly mode: Mode) {
    super({ smtpd: 'unfirewalled', timeout: 600_000, maxBuffer: 1 << 30 });
    this.state = path.join(this.dir, 'state');
    this.desired = path.join(this.dir, 'desired.json');
    this.timesFile = path.join(this.dir, 'times.log');
    this.wrapDir = path.join(this.dir, 'wrap');
  }

  /** Stack's nsRun, which refuses this machine's own network namespace; after Ctrl-C, only while taking the stack down. */
  override nsRun(ns: string, argv: readonly string[], input = ''): Run {
    if (interrupted && !this.stopping) throw new Error('interrupted');
    return super.nsRun(ns, argv, input);
  }

  /** A long-lived process in `ns`, with the same guard; its PID is the program's own (exec all the way). */
  nsSpawn(ns: string, argv: readonly string[]): ChildProcess {
    const child = spawn('ip', this.nsArgv(ns, argv), { stdio: ['ignore', 'pipe', 'inherit'] });
    this.children.push(child);
    return child;
  }

  /** smtpguard itself, with the timing wrappers first in its PATH. */
  override smtpguard(args: readonly string[]): Run {
    return super.smtpguard(args, { PATH: `${this.wrapDir}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`, SGB_TIMES: this.timesFile });
  }

  mustMx(argv: readonly string[], input = ''): string {
    const r = this.nsRun(this.mx, argv, input);
    if (r.code !== 0) throw new Error(`${argv.join(' ')} in MX failed (${r.code}): ${r.stderr}${r.stdout.slice(0, 500)}`);
    return r.stdout;
  }

  /** The client program (client.py) in CLIENT. */
  runClient(args: readonly string[]): string {
    const r = this.nsRun(this.client, [PYTHON, path.join(HELPERS, 'client.py'), ...args]);
    if (r.code !== 0) throw new Error(`client ${args[0]} failed (${r.code}): ${r.stderr}`);
    return r.stdout.trim();
  }

  /** Flags every smtpguard command here gets (not the system tests'): all paths in the temp directory, an empty log. */
  override flags(): string[] {
    return [
      '--log', path.join(this.dir, 'mail.log'),
      '--window', 'all',
      '--postfix-config-dir', this.etc,
      '--access-map', path.join(this.dir, 'sender_access'),
      '--map-type', 'hash',
      '--lock-file', path.join(this.dir, 'smtpguard.lock'),
      '--state-dir', this.state,
      '--config', path.join(this.dir, 'smtpguard.conf'),
      '--max-blocks', '0',
      '--firewall', this.mode,
    ];
  }

  /** The flags of a run: the blocks come from the stand-in LAPI. */
  runFlags(): string[] {
    return [...this.flags(), '--crowdsec-url', `http://127.0.0.1:${LAPI_PORT}`, '--crowdsec-bouncer-key-file', path.join(this.dir, 'bouncer.key')];
  }

  /** The stack (namespaces, Postfix on 2525, the private ufw tree), then the bench's: route, listener, LAPI, ufw enabled, smtpguard installed. */
  override up(): void {
    mkdirSync(this.state, { recursive: true, mode: 0o700 });
    writeFileSync(path.join(this.dir, 'mail.log'), '');
    writeFileSync(path.join(this.dir, 'bouncer.key'), 'bench-bouncer-key', { mode: 0o600 });
    writeFileSync(this.desired, '[]');
    this.writeWrappers();
    super.up();
    this.mustMx(['ip', 'route', 'add', BLOCKS, 'dev', this.veth[0]]);
    const listener = this.nsSpawn(this.mx, [PYTHON, path.join(HELPERS, 'listener.py'), String(CONTROL_PORT)]);
    const lapi = this.nsSpawn(this.mx, [process.execPath, path.join(HELPERS, 'lapi.cjs'), String(LAPI_PORT), this.desired, 'bench-bouncer-key']);
    for (const child of [listener, lapi]) child.stdout?.resume();
    waitFor(() => {
      const listening = this.nsRun(this.mx, ['ss', '-ltn']).stdout;
      return listening.includes(':25 ') && listening.includes(`:${CONTROL_PORT} `) && listening.includes(`:${LAPI_PORT} `);
    }, 'the listener on port 25 and the stand-in LAPI', 20_000);

    const enabled = this.fwRun(['ufw', '--force', 'enable']);
    if (enabled.code !== 0) throw new Error(`ufw enable failed: ${enabled.stderr}`);
    for (const port of [25, CONTROL_PORT]) {
      const allowed = this.fwRun(['ufw', 'allow', `${port}/tcp`]);
      if (allowed.code !== 0) throw new Error(`ufw allow failed: ${allowed.stderr}`);
    }
    const installed = this.smtpguard([
      'install', ...this.flags(),
      '--cron-file', path.join(this.dir, 'cron'),
      '--systemd-dir', path.join(this.dir, 'systemd'),
      '--man-dir', path.join(this.dir, 'man1'),
      '--completion-dir', path.join(this.dir, 'completion'),
    ]);
    if (installed.code !== 0) throw new Error(`smtpguard install failed (${installed.code}): ${installed.stderr}${installed.stdout}`);
    if (this.mode === 'nftables') return; // its table comes with the first run; ufw stays as it is
    const chain = this.mustMx(['iptables', '-S', 'ufw-before-input']);
    if (!/--dports 25,465,587 -j ufw-smtpguard/.test(chain)) throw new Error(`after install, ufw has no jump to the smtpguard chain:\n${chain}`);
  }

  /** The listener and the LAPI by their PIDs, then the stack (Postfix, the namespaces, the temp directory). */
  override down(): void {
    this.stopping = true;
    for (const child of this.children) {
      if (child.pid !== undefined && child.exitCode === null) {
        try {
          process.kill(child.pid, 'SIGTERM');
        } catch {
          // gone already
        }
      }
    }
    super.down();
  }

  private writeWrappers(): void {
    mkdirSync(this.wrapDir);
    for (const name of WRAPPED) {
      const real = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).stdout.trim();
      if (real === '') throw new Error(`${name} is not installed`);
      const file = path.join(this.wrapDir, name);
      writeFileSync(
        file,
        `#!/bin/sh\ns=$(date +%s%N)\n${sh(real)} "$@"\nrc=$?\ne=$(date +%s%N)\necho "${name} $s $e $rc" >> "\${SGB_TIMES:-/dev/null}"\nexit $rc\n`,
      );
      chmodSync(file, 0o755);
    }
  }

  /** Seconds per wrapped command since the last call, and empties the log. */
  takeTimes(): Record<string, number> {
    const times: Record<string, number> = {};
    if (!existsSync(this.timesFile)) return times;
    for (const line of readFileSync(this.timesFile, 'utf8').split('\n')) {
      const [name, s, e] = line.split(' ');
      if (name === undefined || s === undefined || e === undefined) continue;
      times[name] = (times[name] ?? 0) + (Number(BigInt(e) - BigInt(s)) / 1e9);
    }
    writeFileSync(this.timesFile, '');
    return times;
  }

  /** Adds (or removes) an address on CLIENT's side of the veth; removing it is cleanup, so it runs also after Ctrl-C. */
  clientAddress(address: string, add: boolean): void {
    const argv = ['ip', 'addr', add ? 'add' : 'del', `${address}/32`, 'dev', this.veth[1]];
    if (add) this.nsRun(this.client, argv);
    else super.nsRun(this.client, argv);
  }

  /** How many blocks the kernel has: rules in the chain, members of smtpguard4, or elements of hosts4 (the blocks are IPv4 hosts). */
  kernelBlocks(): number {
    if (this.mode === 'nftables') {
      const listed = this.nsRun(this.mx, ['nft', '-j', 'list', 'set', 'inet', 'smtpguard', 'hosts4']);
      if (listed.code !== 0) return 0;
      const set = (JSON.parse(listed.stdout) as { nftables: Array<{ set?: { elem?: unknown[] } }> }).nftables.find((i) => i.set !== undefined)?.set;
      return set?.elem?.length ?? 0;
    }
    if (this.mode === 'rules') return this.mustMx(['iptables', '-S', 'ufw-smtpguard']).split('\n').filter((l) => l.startsWith('-A ufw-smtpguard -s ')).length;
    const header = this.mustMx(['ipset', '-t', 'list', 'smtpguard4']);
    return Number(/Number of entries: (\d+)/.exec(header)?.[1] ?? NaN);
  }

  /** Packets counted by the DROP rule of the log-and-drop chain, and by the jump into the smtpguard chain (nftables: its input rules' counters, both). */
  counters(): { dropped: number; walked: number } {
    if (this.mode === 'nftables') {
      const rules = this.mustMx(['nft', 'list', 'chain', 'inet', 'smtpguard', 'input']);
      const packets = [...rules.matchAll(/counter packets (\d+)/g)].reduce((sum, m) => sum + Number(m[1]), 0);
      return { dropped: packets, walked: packets };
    }
    const drop = this.mustMx(['iptables', '-L', 'ufw-smtpguard-log', '-v', '-x', '-n']);
    const jump = this.mustMx(['iptables', '-L', 'ufw-before-input', '-v', '-x', '-n']);
    const dropped = drop.split('\n').find((l) => /\bDROP\b/.test(l));
    const walked = jump.split('\n').find((l) => /\bufw-smtpguard\b/.test(l));
    return { dropped: Number(dropped?.trim().split(/\s+/)[0] ?? NaN), walked: Number(walked?.trim().split(/\s+/)[0] ?? NaN) };
  }
}
