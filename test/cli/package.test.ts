/**
 * The Debian package and the npm tarball, for real (as root, as CI runs it): `npm run deb`'s
 * package built, its contents, control fields and lintian; installed with dpkg over a git-clone
 * install (the job, its config, its state and its blocks kept; `install` run again moves the job
 * to /usr/bin/smtpguard and says so), a newer package over it, then purged. And `npm pack`
 * installed globally into a temp prefix, scanning the examples with nothing but node.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installPaths, makeServerDir, runBin, saslLines, serverFlags } from '../helpers.js';

const ROOT = path.join(import.meta.dirname, '..', '..');
const VERSION = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const missing = [
  ...(process.getuid?.() === 0 ? [] : ['root']),
  ...['dpkg-deb', 'dpkg', 'lintian', 'npm'].filter((c) => spawnSync('sh', ['-c', `command -v ${c}`]).status !== 0),
  ...(spawnSync('dpkg-query', ['-W', 'smtpguard']).status === 0 ? ['a machine without smtpguard installed as a package'] : []),
];
if (missing.length > 0 && process.env.CI) throw new Error(`the package test cannot run in CI: missing ${missing.join(', ')} (.ci/run must install them)`);

const run = (file: string, args: readonly string[], options: { cwd?: string } = {}) => {
  const r = spawnSync(file, args, { encoding: 'utf8', env: { ...process.env, PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', TZ: 'UTC' } /* npm needs the machine's own settings (HOME, CA certificates) */, input: '', timeout: 300_000, ...options });
  return { code: r.status, stdout: String(r.stdout), stderr: String(r.stderr) };
};
const build = (version?: string) => {
  const r = run(process.execPath, [path.join(ROOT, 'packaging', 'build-deb.mjs'), '--out', out, ...(version === undefined ? [] : ['--version', version])]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return r.stdout.trim();
};

let out: string;
let dir: string;

describe.runIf(missing.length === 0)('the Debian package and the npm tarball', () => {
  beforeAll(() => {
    out = mkdtempSync(path.join(tmpdir(), 'smtpguard-deb-out-'));
    dir = makeServerDir('smtpguard-deb-');
    writeFileSync(path.join(dir, 'mail.log'), saslLines('203.0.113.9', 12));
  });
  afterAll(() => {
    spawnSync('dpkg', ['-P', 'smtpguard']);
    for (const d of [out, dir]) if (d !== undefined) rmSync(d, { recursive: true, force: true });
  });

  it('npm run deb: the bundle and what install reads, /usr/bin/smtpguard, man page, completion, units, example config; no node_modules; control fields; lintian without errors or warnings', () => {
    const deb = build();
    expect(path.basename(deb)).toBe(`smtpguard_${VERSION}_all.deb`);
    const listing = execFileSync('dpkg-deb', ['-c', deb], { encoding: 'utf8' });
    const paths = listing.split('\n').filter((l) => l !== '').map((l) => l.split(/\s+/).slice(5).join(' '));
    for (const p of ['./usr/bin/smtpguard -> ../lib/smtpguard/bin/smtpguard.js', './usr/lib/smtpguard/bin/smtpguard.js', './usr/lib/smtpguard/dist/bundle/main.js', './usr/lib/smtpguard/dist/bundle/scan-worker.js', './usr/lib/smtpguard/templates/cron', './usr/share/man/man1/smtpguard.1.gz', './usr/share/bash-completion/completions/smtpguard', './usr/share/doc/smtpguard/examples/smtpguard.conf', './usr/share/doc/smtpguard/copyright', './usr/share/smtpguard/smtpguard.service', './usr/share/smtpguard/smtpguard.timer', './usr/share/smtpguard/smtpguard-nftables.service']) {
      expect(paths).toContain(p);
    }
    expect(paths.filter((p) => p.includes('node_modules'))).toEqual([]);
    const field = (name: string) => execFileSync('dpkg-deb', ['-f', deb, name], { encoding: 'utf8' }).trim();
    expect(field('Package')).toBe('smtpguard');
    expect(field('Version')).toBe(VERSION);
    expect(field('Architecture')).toBe('all');
    expect(field('Depends')).toBe('nodejs (>= 20)');
    expect(field('Recommends')).toBe('postfix, ufw | nftables');
    expect(field('Suggests')).toBe('ipset, crowdsec, prometheus-node-exporter');
    const lintian = run('lintian', ['--fail-on', 'error,warning', deb]);
    expect(lintian.stdout.split('\n').filter((l) => /^[EW]: /.test(l))).toEqual([]);
    expect(lintian.code).toBe(0);
  });

  it('installed over a git-clone install: the config, state and blocks stay; install again moves the job to /usr/bin/smtpguard and says so; a newer package over it keeps all; purge removes it', () => {
    const flags = serverFlags(dir);
    // the git clone's install and first run, as the README's "Install on a server" had it
    expect(runBin(['install', ...flags, ...installPaths(dir)]).code).toBe(0);
    expect(readFileSync(path.join(dir, 'cron'), 'utf8')).toContain(`${path.join(ROOT, 'bin', 'smtpguard.js')} run --config ${dir}/smtpguard.conf`);
    expect(runBin(['run', ...flags]).stdout).toBe('blocks: 1 (+1 -0) +203.0.113.9/32\n');
    const kept = ['smtpguard.conf', 'before.rules', 'access', 'state/blocks.json', 'state/scan-state.json'].map((f) => [f, readFileSync(path.join(dir, f))] as const);

    const deb = build();
    const installed = run('dpkg', ['-i', deb]);
    expect(installed.stderr).toBe('');
    expect(installed.code).toBe(0);
    expect(run('/usr/bin/smtpguard', ['--version']).stdout.trim()).toBe(VERSION);
    const scan = run('/usr/bin/smtpguard', ['scan', '--log', 'examples/logs/mail.log*', '--window', 'all', '--no-state'], { cwd: ROOT });
    expect(scan.code).toBe(0);
    expect(scan.stdout).toMatch(/^smtpguard run would apply: Blocks \(2\):$/m);
    expect(existsSync('/usr/share/man/man1/smtpguard.1.gz')).toBe(true);
    for (const [file, bytes] of kept) expect(readFileSync(path.join(dir, file)), file).toEqual(bytes);
    expect(run('/usr/bin/smtpguard', ['run', ...flags])).toEqual({ code: 0, stdout: '', stderr: '' });

    const again = run('/usr/bin/smtpguard', ['install', ...flags, ...installPaths(dir)]);
    expect(again.stderr.split('\n').filter((l) => l !== '' && !l.includes('RELOAD=no is kept'))).toEqual([]); // the test's --no-reload, said as install says it
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`smtpguard install: the job now runs /usr/bin/smtpguard run --config ${dir}/smtpguard.conf (it ran ${process.execPath} ${path.join(ROOT, 'bin', 'smtpguard.js')} run --config ${dir}/smtpguard.conf)`);
    expect(readFileSync(path.join(dir, 'cron'), 'utf8')).toMatch(new RegExp(`^\\*/15 \\* \\* \\* \\* root /usr/bin/smtpguard run --config ${dir}/smtpguard\\.conf$`, 'm'));
    expect(readFileSync(path.join(dir, 'before.rules'))).toEqual(kept.find(([f]) => f === 'before.rules')![1]);

    // a newer package over the older one
    const newer = build(`${VERSION}+1`);
    expect(run('dpkg', ['-i', newer]).code).toBe(0);
    expect(run('/usr/bin/smtpguard', ['--version']).stdout.trim()).toBe(`${VERSION}+1`);
    expect(run('/usr/bin/smtpguard', ['run', ...flags])).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(readFileSync(path.join(dir, 'cron'), 'utf8')).toContain('root /usr/bin/smtpguard run --config');
    expect(run('/usr/bin/smtpguard', ['install', ...flags, ...installPaths(dir)]).stdout).toBe('smtpguard install: nothing to do, already done\n');

    expect(run('dpkg', ['-P', 'smtpguard']).code).toBe(0);
    expect(existsSync('/usr/bin/smtpguard')).toBe(false);
    expect(existsSync('/usr/lib/smtpguard')).toBe(false);
    expect(readFileSync(path.join(dir, 'smtpguard.conf'))).toEqual(kept[0]![1]);
  });

  it('npm pack, npm install -g into a temp prefix: smtpguard scans the examples with nothing but node', () => {
    const packed = run('npm', ['pack', '--ignore-scripts', '--pack-destination', out], { cwd: ROOT });
    expect(packed.code).toBe(0);
    const tarball = path.join(out, readdirSync(out).find((f) => f.endsWith('.tgz'))!);
    const prefix = path.join(out, 'prefix');
    const installed = run('npm', ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', tarball]);
    expect(installed.code, installed.stderr).toBe(0);
    const bin = path.join(prefix, 'bin', 'smtpguard');
    expect(run(bin, ['--version']).stdout.trim()).toBe(VERSION);
    const scan = run(bin, ['scan', '--log', 'examples/logs/mail.log*', '--window', 'all', '--no-state'], { cwd: ROOT });
    expect(scan.code).toBe(0);
    expect(scan.stdout).toMatch(/^smtpguard run would apply: Blocks \(2\):$/m);
  });
});
