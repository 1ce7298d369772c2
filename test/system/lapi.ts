/**
 * A real CrowdSec Local API for the system tests: Debian's `crowdsec` package, run as LAPI
 * only (`crowdsec -no-cs`) inside a test network namespace, on its loopback, with its own
 * config, data and database in a temp directory (FIELD-NOTES §6): no central API, no
 * metrics port, nothing of /etc/crowdsec or /var/lib/crowdsec written. Stopped by its PID.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { waitFor, type Run, type Stack } from './stack.js';

export const LAPI_COMMANDS = ['crowdsec', 'cscli'];

/** What this machine lacks for a LAPI; empty when it can run one. */
export function missingLapi(): string[] {
  const missing = LAPI_COMMANDS.filter((c) => spawnSync('sh', ['-c', `command -v ${c}`]).status !== 0);
  if (!existsSync('/etc/crowdsec/profiles.yaml')) missing.push('/etc/crowdsec (the crowdsec package)');
  return missing;
}

export class Lapi {
  readonly dir: string;
  readonly config: string;
  readonly url: string;
  private process: ChildProcess | null = null;

  constructor(
    private readonly stack: Stack,
    readonly port = 18080,
  ) {
    this.dir = path.join(stack.dir, 'crowdsec');
    this.config = path.join(this.dir, 'config.yaml');
    this.url = `http://127.0.0.1:${port}`;
  }

  /** Writes the private config (once) and starts LAPI; waits until it listens. */
  start(): void {
    if (!existsSync(this.config)) this.writeConfig();
    const out = openSync(path.join(this.dir, 'lapi.out'), 'a');
    // `ip netns exec` execs crowdsec itself: the child's PID is LAPI's
    this.process = spawn('ip', ['netns', 'exec', this.stack.mx, 'crowdsec', '-c', this.config, '-no-cs'], { stdio: ['ignore', out, out] });
    const listening = () => this.stack.nsRun(this.stack.mx, ['ss', '-ltn']).stdout.includes(`127.0.0.1:${this.port} `);
    waitFor(() => listening() || !alive(this.process!.pid ?? -1), 'LAPI to listen', 30_000);
    if (!listening()) throw new Error(`LAPI did not start: ${readFileSync(path.join(this.dir, 'lapi.out'), 'utf8').slice(-2000)}`);
  }

  /** Kills LAPI by its PID and waits until it is gone. */
  stop(): void {
    const child = this.process;
    if (child === null || child.pid === undefined || !alive(child.pid)) return;
    process.kill(child.pid, 'SIGTERM');
    waitFor(() => !alive(child.pid!), 'LAPI to stop', 15_000, false);
    if (alive(child.pid)) process.kill(child.pid, 'SIGKILL');
    waitFor(() => !this.stack.nsRun(this.stack.mx, ['ss', '-ltn']).stdout.includes(`127.0.0.1:${this.port} `), 'the LAPI port to close', 10_000);
    this.process = null;
  }

  cscli(args: readonly string[]): Run {
    return this.stack.nsRun(this.stack.mx, ['cscli', '-c', this.config, '--error', ...args]);
  }

  /** A machine with this password; its credentials file as cscli writes it. */
  addMachine(id: string, password: string): string {
    const file = path.join(this.dir, `${id}.yaml`);
    const r = this.cscli(['machines', 'add', id, '--password', password, '-f', file]);
    if (r.code !== 0) throw new Error(`cscli machines add ${id} failed: ${r.stderr}`);
    return file;
  }

  /** A bouncer; its key. */
  addBouncer(name: string): string {
    const r = this.cscli(['bouncers', 'add', name, '-o', 'raw']);
    if (r.code !== 0 || r.stdout.trim() === '') throw new Error(`cscli bouncers add ${name} failed: ${r.stderr}`);
    return r.stdout.trim();
  }

  /** `cscli decisions list -o json`: scope:value scenario origin, one per active decision. */
  decisions(): string[] {
    const r = this.cscli(['decisions', 'list', '-o', 'json']);
    if (r.code !== 0) throw new Error(`cscli decisions list failed: ${r.stderr}`);
    const alerts = (JSON.parse(r.stdout.trim() || 'null') ?? []) as Array<{ decisions?: Array<{ scope: string; value: string; scenario: string; origin: string }> }>;
    return alerts.flatMap((a) => (a.decisions ?? []).map((d) => `${d.scope}:${d.value} ${d.scenario} ${d.origin}`)).sort();
  }

  private writeConfig(): void {
    mkdirSync(path.join(this.dir, 'data'), { recursive: true });
    const conf = path.join(this.dir, 'etc');
    cpSync('/etc/crowdsec', conf, { recursive: true });
    // no central API, no registration, no config.yaml.local merged from the package
    for (const f of ['online_api_credentials.yaml', 'config.yaml.local', 'local_api_credentials.yaml']) rmSync(path.join(conf, f), { force: true });
    const d = this.dir;
    writeFileSync(
      this.config,
      `common:
  daemonize: false
  log_media: file
  log_level: info
  log_dir: ${d}/
  working_dir: .
config_paths:
  config_dir: ${conf}/
  data_dir: ${d}/data/
  simulation_path: ${conf}/simulation.yaml
  hub_dir: /var/lib/crowdsec/hub/
  index_path: /var/lib/crowdsec/hub/.index.json
  notification_dir: ${conf}/notifications/
  plugin_dir: /usr/lib/crowdsec/plugins/
crowdsec_service:
  acquisition_path: ${conf}/acquis.yaml
db_config:
  log_level: info
  type: sqlite
  db_path: ${d}/data/crowdsec.db
  use_wal: false
api:
  client:
    insecure_skip_verify: false
    credentials_path: ${d}/cscli.yaml
  server:
    log_level: info
    listen_uri: 127.0.0.1:${this.port}
    profiles_path: ${conf}/profiles.yaml
    console_path: ${conf}/console.yaml
    trusted_ips:
      - 127.0.0.1
prometheus:
  enabled: false
`,
    );
    // cscli's own machine, for "cscli decisions list/delete" (it logs in like any machine; cscli writes the database directly)
    const r = this.cscli(['machines', 'add', 'cscli-test', '--auto', '--force', '-f', path.join(d, 'cscli.yaml')]);
    if (r.code !== 0) throw new Error(`cscli machines add (for cscli itself) failed: ${r.stderr}`);
  }
}

/** Running: not gone and not a zombie (the tests wait synchronously, so Node reaps the child only later). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
