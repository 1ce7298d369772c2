/**
 * Two servers, one memory, through a real CrowdSec Local API (Debian's crowdsec package,
 * LAPI only, inside the test namespace). mx2 is the real stack: Postfix, ufw loaded in its
 * namespace. mx1 is a second smtpguard with its own log, rules files, access map and state
 * directory (it writes and does not reload: its firewall would be another machine's).
 * Nothing here is a stand-in for LAPI: faults are made by killing the real one.
 */
import { copyFileSync, mkdirSync, readFileSync, writeFileSync, appendFileSync, chmodSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lapi, missingLapi } from './lapi.js';
import { CLIENTS, missingRequirements, Stack, type Run } from './stack.js';
import { installPaths } from '../helpers.js';

const missing = [...missingRequirements(), ...missingLapi()];
if (missing.length > 0) {
  if (process.env.CI) throw new Error(`the CrowdSec system test cannot run in CI: missing ${missing.join(', ')} (.ci/run must install them)`);
  console.log(`CrowdSec system test not run: this machine lacks ${missing.join(', ')}`);
}

const ATTACKER = CLIENTS.relay; // 203.0.113.5
const LATER = CLIENTS.later; // 203.0.113.77, attacks mx1 while LAPI is down
const ALLOWED = CLIENTS.innocent; // 192.0.2.99: mx1 blocks it, mx2 allows it

let stack: Stack;
let lapi: Lapi;
let mx1: { dir: string; flags: string[] };
let mx2: { flags: string[]; rules: string; map: string; state: string };

const run1 = (extra: string[] = []): Run => stack.smtpguard(['run', ...mx1.flags, ...extra]);
const run2 = (extra: string[] = []): Run => stack.smtpguard(['run', ...mx2.flags, ...extra]);
const mx1Rules = () => readFileSync(path.join(mx1.dir, 'before.rules'), 'utf8');
const records = (stateDir: string) => JSON.parse(readFileSync(path.join(stateDir, 'blocks.json'), 'utf8')) as Array<{ cidr: string; reason: string; fleet?: { scenario: string; origin: string } }>;

/** Postfix's own SASL failure lines, as mx1's Postfix would have written them just now. */
function attackMx1(address: string, n: number): void {
  const stamp = new Date().toISOString().replace('Z', '+00:00');
  let text = '';
  for (let i = 0; i < n; i++) text += `${stamp} mx1 postfix/submission/smtpd[4242]: warning: unknown[${address}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username=admin\n`;
  appendFileSync(path.join(mx1.dir, 'mail.log'), text);
}

/** What mx2's Postfix says at RCPT on the port ufw does not guard: its access map alone. */
const postfixSays = (from: string) => {
  const out = stack.swaks(from, ['--port', '2525', '--to', 'root@mx.example.test', '--quit-after', 'RCPT']).stdout;
  return /554 5\.7\.1 .*Client host rejected/.test(out) ? 'rejected' : /250 2\.1\.5 Ok/.test(out) ? 'accepted' : `unclear: ${out.slice(-300)}`;
};
const firewall = () => stack.iptables();

describe.runIf(missing.length === 0)('several servers, one memory: CrowdSec LAPI', () => {
  beforeAll(() => {
    stack = new Stack();
    stack.up();
    if (stack.ufw(['--force', 'enable']).code !== 0) throw new Error('ufw enable failed');
    for (const port of ['25', '587', '2525']) stack.ufw(['allow', `${port}/tcp`]);

    lapi = new Lapi(stack);
    lapi.start();
    const secret = (file: string, text: string) => {
      writeFileSync(file, text);
      chmodSync(file, 0o600);
      return file;
    };
    const common = (url: string) => ['--postfix-config-dir', stack.etc, '--map-type', 'hash', '--window', '1d', '--crowdsec-url', url];

    // mx2: the real stack; a high threshold, so the test's own probes never block anyone here
    mx2 = { flags: [], rules: path.join(stack.ufwTree, 'etc/ufw/before.rules'), map: path.join(stack.dir, 'sender_access'), state: path.join(stack.dir, 'state') };
    const mx2Base = ['--log', stack.log, '--access-map', mx2.map, '--lock-file', path.join(stack.dir, 'mx2.lock'), '--state-dir', mx2.state, '--threshold', '50', '--postfix-config-dir', stack.etc, '--map-type', 'hash', '--config', path.join(stack.dir, 'mx2.conf')]; // install writes its settings there, not to /etc/smtpguard
    // every file install writes stays in the test's directory (no man page or completion in /usr/local or /etc)
    const install = stack.smtpguard(['install', ...mx2Base, ...installPaths(stack.dir)]);
    if (install.code !== 0) throw new Error(`install failed: ${install.stderr}`);
    lapi.addMachine('mx2', 'mx2-password-0123456789');
    mx2.flags = [
      ...mx2Base,
      ...common(lapi.url),
      '--allow', ALLOWED,
      '--crowdsec-machine', 'mx2',
      '--crowdsec-password-file', secret(path.join(stack.dir, 'mx2.password'), 'mx2-password-0123456789\n'),
      '--crowdsec-bouncer-key-file', secret(path.join(stack.dir, 'mx2.key'), `${lapi.addBouncer('mx2')}\n`),
    ];

    // mx1: its own files, as install left them on mx2 (empty sections), and its own log
    mx1 = { dir: path.join(stack.dir, 'mx1'), flags: [] };
    mkdirSync(mx1.dir);
    copyFileSync(mx2.rules, path.join(mx1.dir, 'before.rules'));
    copyFileSync(path.join(stack.ufwTree, 'etc/ufw/before6.rules'), path.join(mx1.dir, 'before6.rules'));
    copyFileSync(mx2.map, path.join(mx1.dir, 'sender_access'));
    writeFileSync(path.join(mx1.dir, 'mail.log'), '');
    writeFileSync(path.join(mx1.dir, 'smtpguard.conf'), '# mx1: everything is on the command line\n');
    mx1.flags = [
      '--config', path.join(mx1.dir, 'smtpguard.conf'),
      '--log', path.join(mx1.dir, 'mail.log'),
      '--ufw-rules', path.join(mx1.dir, 'before.rules'),
      '--ufw6-rules', path.join(mx1.dir, 'before6.rules'),
      '--access-map', path.join(mx1.dir, 'sender_access'),
      '--state-dir', path.join(mx1.dir, 'state'),
      '--lock-file', path.join(mx1.dir, 'lock'),
      '--threshold', '3',
      '--no-reload',
      ...common(lapi.url),
      '--crowdsec-machine', 'mx1',
      // the credentials file cscli writes serves as the password file
      '--crowdsec-password-file', lapi.addMachine('mx1', 'mx1-password-0123456789'),
      '--crowdsec-bouncer-key-file', secret(path.join(mx1.dir, 'key'), `${lapi.addBouncer('mx1')}\n`),
    ];
    chmodSync(path.join(lapi.dir, 'mx1.yaml'), 0o600);
  }, 240_000);

  afterAll(() => {
    lapi?.stop();
    stack?.down();
  }, 60_000);

  it('mx1 blocks an attacker and pushes it: cscli decisions list shows it', () => {
    attackMx1(ATTACKER, 5);
    const r = run1();
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(`blocks: 1 (+1 -0) +${ATTACKER}/32\n`);
    expect(r.code).toBe(0);
    expect(mx1Rules()).toContain(`-s ${ATTACKER}/32 -j`);
    expect(lapi.decisions()).toEqual([`Ip:${ATTACKER} smtpguard/host crowdsec`]);
    const human = lapi.cscli(['decisions', 'list']).stdout;
    expect(human).toMatch(new RegExp(`Ip:${ATTACKER.replaceAll('.', '\\.')} +\\| smtpguard/host +\\| ban`));
  });

  it('mx2 blocks it after its next run, reason fleet: in ufw, in the map, and Postfix and the firewall stop it', () => {
    expect(postfixSays(ATTACKER)).toBe('accepted');
    const r = run2();
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(`blocks: 1 (+1 -0) +${ATTACKER}/32 (fleet)\n`);
    expect(r.code).toBe(0);
    expect(firewall()).toMatch(new RegExp(`^-A ufw-smtpguard -s ${ATTACKER.replaceAll('.', '\\.')}/32 -j ufw-smtpguard-log$`, 'm'));
    expect(readFileSync(mx2.map, 'utf8')).toMatch(new RegExp(`^${ATTACKER.replaceAll('.', '\\.')} REJECT `, 'm'));
    expect(records(mx2.state)).toEqual([expect.objectContaining({ cidr: `${ATTACKER}/32`, reason: 'fleet', fleet: expect.objectContaining({ scenario: 'smtpguard/host', origin: 'crowdsec' }) })]);
    expect(postfixSays(ATTACKER)).toBe('rejected');
    const status = stack.smtpguard(['status', ...mx2.flags]);
    expect(status.stdout).toMatch(new RegExp(`^ {2}${ATTACKER.replaceAll('.', '\\.')}/32 +fleet `, 'm'));
    // mx2 pushes nothing back: a fleet block is not its own finding
    expect(lapi.decisions()).toEqual([`Ip:${ATTACKER} smtpguard/host crowdsec`]);
  });

  it("mx1 does not pull its own decision back as a second block", () => {
    const r = run1();
    expect(r).toMatchObject({ code: 0, stdout: '', stderr: '' });
    expect(records(path.join(mx1.dir, 'state'))).toEqual([expect.objectContaining({ cidr: `${ATTACKER}/32`, reason: 'host' })]);
    expect(mx1Rules().match(new RegExp(`-s ${ATTACKER.replaceAll('.', '\\.')}/32 `, 'g'))).toHaveLength(1);
  });

  it('an address mx1 blocks and pushes, but mx2 allows, is never blocked on mx2', () => {
    attackMx1(ALLOWED, 5);
    expect(run1().stdout).toBe(`blocks: 2 (+1 -0) +${ALLOWED}/32\n`);
    expect(lapi.decisions()).toContain(`Ip:${ALLOWED} smtpguard/host crowdsec`);
    const r = run2();
    expect(r).toMatchObject({ code: 0, stdout: '', stderr: '' });
    expect(firewall()).not.toContain(ALLOWED);
    expect(readFileSync(mx2.map, 'utf8')).not.toContain(ALLOWED);
    expect(postfixSays(ALLOWED)).toBe('accepted');
    const dry = run2(['--dry-run']);
    expect(dry.stdout).toContain(`Never blocked: ${ALLOWED}/32 (0 events; allow ${ALLOWED} (fleet decision smtpguard/host from crowdsec))`);
  });

  it('cscli decisions delete on the LAPI removes the block from mx2 at its next run', () => {
    const deleted = lapi.cscli(['decisions', 'delete', '--ip', ATTACKER]);
    expect(deleted.code).toBe(0);
    expect(lapi.decisions()).not.toContain(`Ip:${ATTACKER} smtpguard/host crowdsec`);
    const r = run2();
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(`blocks: 0 (+0 -1) -${ATTACKER}/32\n`);
    expect(firewall()).not.toContain(ATTACKER);
    expect(readFileSync(mx2.map, 'utf8')).not.toContain(ATTACKER);
    expect(postfixSays(ATTACKER)).toBe('accepted');
    // mx1's own evidence still blocks it there
    expect(mx1Rules()).toContain(`-s ${ATTACKER}/32 -j`);
  });

  it('LAPI killed between runs: mx1 still blocks locally with one warning, and its alert arrives when LAPI is back', () => {
    lapi.stop();
    attackMx1(LATER, 5);
    const started = Date.now();
    const metrics = path.join(mx1.dir, 'smtpguard.prom');
    const series = (name: string) => Number(new RegExp(`^${name.replace(/[{}]/g, '\\$&')} (\\d+)$`, 'm').exec(readFileSync(metrics, 'utf8'))?.[1]);
    const down = run1(['--metrics-file', metrics]);
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(down.code).toBe(0);
    expect(down.stdout).toBe(`blocks: 3 (+1 -0) +${LATER}/32\n`);
    expect(mx1Rules()).toContain(`-s ${LATER}/32 -j`);
    expect(readFileSync(path.join(mx1.dir, 'sender_access'), 'utf8')).toContain(`${LATER} REJECT`);
    const warnings = down.stderr.trimEnd().split('\n');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^smtpguard: warning: CrowdSec http:\/\/127\.0\.0\.1:\d+: GET .*decisions\/stream: ECONNREFUSED: pull failed, .* stay in use; POST .*: ECONNREFUSED: 1 alert\(s\) wait in .*crowdsec-queue\.json for the next run$/);
    // the metrics say it too: an alert waits, the faults count under stage fleet, the run itself succeeded
    expect(series('smtpguard_fleet_alerts_queued')).toBe(1);
    expect(series('smtpguard_errors_total{stage="fleet"}')).toBeGreaterThanOrEqual(1);
    expect(series('smtpguard_last_run_success')).toBe(1);

    lapi.start();
    const back = run1(['--metrics-file', metrics]);
    expect(back).toMatchObject({ code: 0, stdout: '', stderr: '' });
    expect(series('smtpguard_fleet_alerts_queued')).toBe(0);
    expect(series('smtpguard_fleet_alerts_sent_total')).toBe(1);
    expect(series('smtpguard_fleet_decisions')).toBeGreaterThanOrEqual(1);
    expect(lapi.decisions()).toContain(`Ip:${LATER} smtpguard/host crowdsec`);
    // and mx2 takes it at its next run
    expect(run2().stdout).toBe(`blocks: 1 (+1 -0) +${LATER}/32 (fleet)\n`);
    expect(firewall()).toContain(`-s ${LATER}/32 -j ufw-smtpguard-log`);
    // sent once: a run after that sends nothing new
    expect(run1()).toMatchObject({ code: 0, stdout: '', stderr: '' });
    expect(lapi.decisions().filter((d) => d.startsWith(`Ip:${LATER} `))).toHaveLength(1);
  });

  it("smtpguard unblock on mx2 wins over the fleet's decision, which stands for the others", () => {
    const u = stack.smtpguard(['unblock', LATER, ...mx2.flags]);
    expect(u.stderr).toBe('');
    expect(u.code).toBe(0);
    expect(firewall()).not.toContain(LATER);
    expect(run2()).toMatchObject({ code: 0, stdout: '', stderr: '' });
    expect(firewall()).not.toContain(LATER);
    expect(readFileSync(mx2.map, 'utf8')).not.toContain(LATER);
    expect(lapi.decisions()).toContain(`Ip:${LATER} smtpguard/host crowdsec`);
  });

  it('credentials LAPI refuses: exit 3 naming the setting, and the local block is still made', () => {
    const wrong = path.join(mx1.dir, 'wrong.key');
    writeFileSync(wrong, 'not-a-bouncer-key\n');
    chmodSync(wrong, 0o600);
    attackMx1('203.0.113.200', 5);
    const r = run1(['--crowdsec-bouncer-key-file', wrong]);
    expect(r.code).toBe(3);
    expect(r.stdout).toBe('blocks: 4 (+1 -0) +203.0.113.200/32\n');
    expect(r.stderr).toMatch(/^smtpguard: CrowdSec refused the credentials of --crowdsec-bouncer-key-file: GET .*decisions\/stream: 403 .* -- check --crowdsec-bouncer-key-file/m);
    expect(mx1Rules()).toContain('-s 203.0.113.200/32 -j');
  });
});
