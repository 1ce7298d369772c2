/**
 * What an admin types means one thing (issue 21): the flags, the config file, the verbs and
 * explain read addresses with one parser, and ALLOW only grows. The built CLI on a temp dir.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { installPaths, makeServerDir, runBin, saslLines, serverFlags } from './helpers.js';

let dir: string;
let flags: string[];
const smtpguard = (args: string[]) => runBin(args);
const conf = () => path.join(dir, 'smtpguard.conf');

beforeEach(() => {
  dir = makeServerDir('smtpguard-admin-');
  flags = serverFlags(dir);
  writeFileSync(conf(), '# test\n');
  writeFileSync(path.join(dir, 'mail.log'), '');
  expect(smtpguard(['install', ...flags, ...installPaths(dir)]).code).toBe(0);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('one parser for what an admin types', () => {
  it.each([
    ['010.0.0.1', /"010\.0\.0\.1" is not a dotted-quad IPv4 address/],
    ['10', /"10" is not a dotted-quad IPv4 address/],
    ['127.1', /"127\.1" is not a dotted-quad IPv4 address/],
    ['0x7f.1', /"0x7f\.1" is not a dotted-quad IPv4 address/],
    ['fe80::1%eth0', /"fe80::1%eth0" has a zone index \(%eth0\): it names a network link, not an address/],
  ])('%s is refused the same way by the verbs, --allow, ALLOW and explain', (input, message) => {
    const before = readFileSync(conf(), 'utf8');
    for (const args of [['allow', input], ['unblock', input], ['block', input], ['explain', input], ['run', '--dry-run', '--allow', input]]) {
      const r = smtpguard([...args, ...flags]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(message);
    }
    writeFileSync(conf(), `ALLOW=${input}\n`);
    expect(smtpguard(['run', '--dry-run', ...flags]).stderr).toMatch(message);
    writeFileSync(conf(), before);
    expect(readFileSync(conf(), 'utf8')).not.toContain('ALLOW=8.0.0.1');
  });

  it('an IPv4-mapped address is the IPv4 address: allow ::ffff:10.108.80.3 protects 10.108.80.3', () => {
    const r = smtpguard(['allow', '::ffff:10.108.80.3', ...flags]);
    expect(r.code).toBe(0);
    expect(readFileSync(conf(), 'utf8')).toMatch(/^ALLOW=10\.108\.80\.3$/m);
    writeFileSync(path.join(dir, 'mail.log'), saslLines('10.108.80.3', 20));
    expect(smtpguard(['run', ...flags])).toMatchObject({ code: 0, stdout: '' });
    expect(smtpguard(['explain', '::ffff:10.108.80.3', ...flags]).stdout).toMatch(/^10\.108\.80\.3: not blocked: allow 10\.108\.80\.3/);
  });
});

describe('an allowlist only grows', () => {
  it('ALLOW from the config, the environment and --allow are joined, and config says where each came from', () => {
    writeFileSync(conf(), 'ALLOW=203.0.113.0/24 # our office\n');
    writeFileSync(path.join(dir, 'mail.log'), ['203.0.113.7', '203.0.113.8', '203.0.113.9', '203.0.113.10', '203.0.113.11'].map((a) => saslLines(a, 20)).join(''));
    const dry = smtpguard(['run', '--dry-run', ...flags, '--allow', '192.0.2.1']);
    expect(dry.code).toBe(0);
    expect(dry.stdout).not.toContain('+203.0.113');
    expect(dry.stdout).toContain('Never blocked: 203.0.113.7');
    const env = runBin(['config', ...flags, '--allow', '192.0.2.1'], { env: { PATH: process.env.PATH, TZ: 'UTC', SMTPGUARD_ALLOW: '198.51.100.0/24' } }).stdout;
    expect(env).toMatch(/^ALLOW=203\.0\.113\.0\/24 +# from \S+smtpguard\.conf:1$/m);
    expect(env).toMatch(/^ALLOW=198\.51\.100\.0\/24 +# from environment SMTPGUARD_ALLOW$/m);
    expect(env).toMatch(/^ALLOW=192\.0\.2\.1 +# from --allow$/m);
  });

  it('install --allow adds to ALLOW and keeps the entries (and comments) already there', () => {
    writeFileSync(conf(), 'ALLOW=203.0.113.0/24 # our office\n');
    expect(smtpguard(['install', ...flags, '--allow', '192.0.2.1', ...installPaths(dir)]).code).toBe(0);
    const text = readFileSync(conf(), 'utf8');
    expect(text).toMatch(/^ALLOW=203\.0\.113\.0\/24 # our office$/m);
    expect(text).toMatch(/^ALLOW=192\.0\.2\.1$/m);
  });
});

describe('found by review', () => {
  it('allow --remove finds an ALLOW entry written in another spelling (192.0.2.7/32, 2001:DB8::1)', () => {
    writeFileSync(conf(), 'ALLOW=192.0.2.7/32 2001:DB8::1\n');
    expect(smtpguard(['allow', '--remove', '192.0.2.7', ...flags]).code).toBe(0);
    expect(smtpguard(['allow', '--remove', '2001:db8::1/128', ...flags]).code).toBe(0);
    expect(readFileSync(conf(), 'utf8')).not.toMatch(/^ALLOW=/m);
  });

  it('scan, a dry run and explain leave a bad bans.json where it is; run sets it aside and keeps the bans', () => {
    writeFileSync(path.join(dir, 'mail.log'), saslLines('203.0.113.9', 20));
    expect(smtpguard(['run', ...flags]).code).toBe(0);
    const bans = path.join(dir, 'state', 'bans.json');
    writeFileSync(bans, '{"version":1,"bans":[null]}');
    writeFileSync(path.join(dir, 'mail.log'), '');
    for (const args of [['scan'], ['run', '--dry-run'], ['explain', '203.0.113.9']]) {
      smtpguard([...args, ...flags]);
      expect(readFileSync(bans, 'utf8'), args.join(' ')).toBe('{"version":1,"bans":[null]}');
    }
    const run = smtpguard(['run', ...flags]);
    expect(run.stderr).toMatch(/bans\.json is not valid .*moved aside/);
    expect(readFileSync(path.join(dir, 'before.rules'), 'utf8')).toContain('-s 203.0.113.9/32 -j');
  });
});
