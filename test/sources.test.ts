import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { collectEvents } from '../src/scan/collect.js';
import { ALL_TIME, DEFAULT_ADDRESS_LIMIT, setTallyBound } from '../src/count/tally.js';
import { DEFAULT_COUNTED_KINDS, FOLDED_ADDRESSES_SLOT, KIND_INDEX } from '../src/read/kinds.js';
import { STRIDE } from '../src/count/layout.js';
import { SmtpguardError } from '../src/errors.js';
import { findLogSources, openLog, orderLogPaths, parseRotation, widestFamilies } from '../src/read/sources.js';
import { NOW, tallyEvents } from './helpers.js';

const sasl = (address: string, second = 0) =>
  `2026-11-22T11:37:${String(second).padStart(2, '0')}.000000+00:00 mx postfix/smtpd[1]: warning: unknown[${address}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username=a\n`;
const reject = (address: string) =>
  `2026-11-22T11:38:00.000000+00:00 mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from unknown[${address}]: 554 5.7.1 <v@example.org>: Relay access denied; from=<a@b> to=<v@example.org> proto=ESMTP helo=<x>\n`;

let dir: string;
const warnings: string[] = [];
const warn = (message: string) => warnings.push(message);
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'smtpguard-sources-'));
  warnings.length = 0;
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function collect(logs: string[], stdin: Readable = Readable.from([])) {
  const collected = await collectEvents({ logs, usingDefaultLogs: false, now: NOW, warn, stdin, stateDir: null, saveState: false, window: ALL_TIME });
  return { events: tallyEvents(collected.tally), sources: collected.sources };
}

describe('rotation names', () => {
  it.each([
    ['mail.log', { stem: 'mail.log' }],
    ['mail.log.1', { stem: 'mail.log', number: 1 }],
    ['mail.log.12.gz', { stem: 'mail.log', number: 12 }],
    ['mail.log-20261122', { stem: 'mail.log', date: '20261122' }],
    ['postfix.log-20261122-123304.gz', { stem: 'postfix.log', date: '20261122123304' }],
    ['mail.warn.gz', { stem: 'mail.warn' }],
  ])('%s', (name, expected) => {
    expect(parseRotation(name)).toEqual(expected);
  });

  it('orders each family oldest first, the live file last', () => {
    const ordered = orderLogPaths([
      '/var/log/mail.log',
      '/var/log/mail.log.1',
      '/var/log/mail.log.10.gz',
      '/var/log/mail.log.2.gz',
      '/var/log/mail.warn',
      '/var/log/mail.warn.1',
      '/var/log/mail.log.4.gz',
      '/var/log/mail.log.3.gz',
    ]).map((s) => s.path);
    expect(ordered).toEqual([
      '/var/log/mail.log.10.gz',
      '/var/log/mail.log.4.gz',
      '/var/log/mail.log.3.gz',
      '/var/log/mail.log.2.gz',
      '/var/log/mail.log.1',
      '/var/log/mail.log',
      '/var/log/mail.warn.1',
      '/var/log/mail.warn',
    ]);
    expect(orderLogPaths(['p.log', 'p.log-20261122-000000.gz', 'p.log-20261115-000000.gz']).map((s) => s.path)).toEqual([
      'p.log-20261115-000000.gz',
      'p.log-20261122-000000.gz',
      'p.log',
    ]);
  });

  it('puts mail.log, mail.info, mail.warn and mail.err of one directory in one group, other logs in their own', () => {
    const sources = orderLogPaths(['/a/mail.log', '/a/mail.warn.1', '/b/mail.warn', '/a/postfix.log']);
    const group = Object.fromEntries(sources.map((s) => [s.path, s.group]));
    expect(group['/a/mail.log']).toBe(group['/a/mail.warn.1']);
    expect(group['/b/mail.warn']).not.toBe(group['/a/mail.log']);
    expect(group['/a/postfix.log']).not.toBe(group['/a/mail.log']);
  });
});

describe('finding logs', () => {
  it('expands globs and takes existing paths literally', async () => {
    await writeFile(path.join(dir, 'mail.log'), '');
    await writeFile(path.join(dir, 'mail.log.1'), '');
    await writeFile(path.join(dir, 'odd[1].log'), '');
    const found = await findLogSources([path.join(dir, 'mail.log*'), path.join(dir, 'odd[1].log'), path.join(dir, 'mail.log')], false, warn);
    expect(found.map((s) => path.basename(s.path))).toEqual(['mail.log.1', 'mail.log', 'odd[1].log']);
  });

  it('says which --log matched nothing', async () => {
    await expect(findLogSources([path.join(dir, 'nope*')], false, warn)).rejects.toThrow(/no log file matches --log .*nope\*/);
  });

  it('on the default paths, fails only when no log exists at all, naming the paths and what to do', async () => {
    const defaults = [path.join(dir, 'mail.log*'), path.join(dir, 'mail.warn*')];
    const error = await findLogSources(defaults, true, warn).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SmtpguardError);
    expect((error as SmtpguardError).message).toContain(defaults[0]);
    expect((error as SmtpguardError).hint).toMatch(/--log/);
    await writeFile(path.join(dir, 'mail.log'), '');
    expect(await findLogSources(defaults, true, warn)).toHaveLength(1);
  });

  it('skips other compressors with a warning', async () => {
    await writeFile(path.join(dir, 'mail.log'), '');
    await writeFile(path.join(dir, 'mail.log.2.xz'), 'x');
    expect((await findLogSources([path.join(dir, 'mail.log*')], false, warn)).map((s) => path.basename(s.path))).toEqual(['mail.log']);
    expect(warnings[0]).toMatch(/mail\.log\.2\.xz .*gzip/);
  });

  it('refuses a directory with a hint', async () => {
    await expect(findLogSources([dir], false, warn)).rejects.toThrow(/is a directory/);
  });
});

describe('reading logs', () => {
  it('reads plain, gzip and stdin, and sums a rotated family', async () => {
    await writeFile(path.join(dir, 'mail.log.2.gz'), gzipSync(sasl('192.0.2.1') + reject('192.0.2.2')));
    await writeFile(path.join(dir, 'mail.log.1'), sasl('192.0.2.1'));
    await writeFile(path.join(dir, 'mail.log'), sasl('192.0.2.1'));
    const { events, sources } = await collect([path.join(dir, 'mail.log*'), '-'], Readable.from([Buffer.from(sasl('192.0.2.9'))]));
    expect(events).toEqual(['messageReject 192.0.2.2', 'saslFailure 192.0.2.1', 'saslFailure 192.0.2.1', 'saslFailure 192.0.2.1', 'saslFailure 192.0.2.9']);
    expect(sources.map((s) => [path.basename(s.path), s.lines, s.events])).toEqual([
      ['-', 1, 1],
      ['mail.log.2.gz', 2, 2],
      ['mail.log.1', 1, 1],
      ['mail.log', 1, 1],
    ]);
    expect(sources[1]!.bytes).toBe(Buffer.byteLength(sasl('192.0.2.1') + reject('192.0.2.2')));
  });

  it('detects gzip by its magic bytes, not by its name', async () => {
    await writeFile(path.join(dir, 'mail.log.1'), gzipSync(sasl('192.0.2.1')));
    expect((await collect([path.join(dir, 'mail.log.1')])).events).toEqual(['saslFailure 192.0.2.1']);
  });

  it('counts an event copied into mail.log and mail.warn once; identical lines in one file each count', async () => {
    const twice = sasl('192.0.2.1', 5) + sasl('192.0.2.1', 5);
    await writeFile(path.join(dir, 'mail.log'), twice + reject('192.0.2.2') + sasl('192.0.2.3', 7));
    await writeFile(path.join(dir, 'mail.warn'), twice + sasl('192.0.2.3', 7));
    await writeFile(path.join(dir, 'mail.warn.1'), sasl('192.0.2.4', 1)); // mail.log.1 is gone: still counted
    const { events } = await collect([path.join(dir, 'mail.log*'), path.join(dir, 'mail.warn*')]);
    expect(events).toEqual([
      'messageReject 192.0.2.2',
      'saslFailure 192.0.2.1',
      'saslFailure 192.0.2.1',
      'saslFailure 192.0.2.3',
      'saslFailure 192.0.2.4',
    ]);
  });

  it('adds up logs of different directories (two servers)', async () => {
    await rm(dir, { recursive: true });
    await mkdir(path.join(dir, 'a'), { recursive: true });
    await writeFile(path.join(dir, 'a', 'mail.log'), sasl('192.0.2.1'));
    await mkdir(path.join(dir, 'b'));
    await writeFile(path.join(dir, 'b', 'mail.log'), sasl('192.0.2.1'));
    expect((await collect([path.join(dir, '*/mail.log')])).events).toEqual(['saslFailure 192.0.2.1', 'saslFailure 192.0.2.1']);
  });

  it('keeps the lines of a gzip file cut short, with a warning', async () => {
    const whole = gzipSync(Array.from({ length: 2000 }, (_, i) => sasl(`192.0.2.${i % 200}`)).join(''));
    await writeFile(path.join(dir, 'mail.log.2.gz'), whole.subarray(0, Math.floor(whole.length * 0.6)));
    const { events } = await collect([path.join(dir, 'mail.log.2.gz')]);
    expect(events.length).toBeGreaterThan(0);
    expect(events.length).toBeLessThan(2000);
    expect(warnings.join('\n')).toMatch(/mail\.log\.2\.gz is not valid gzip after \d+ bytes/);
  });

  it('skips a file that disappeared after it was listed, with a warning', async () => {
    const source = { path: path.join(dir, 'mail.log.1'), family: 'f', group: 'g' };
    expect(await openLog(source, warn, Readable.from([]))).toBeNull();
    expect(warnings).toEqual([`${source.path} disappeared before it could be read (rotated?); skipped`]);
  });
});

describe('a family past its tally limit', () => {
  afterEach(() => setTallyBound({ limit: DEFAULT_ADDRESS_LIMIT, offender: 5, counted: DEFAULT_COUNTED_KINDS }));

  it('makes its group the widest family alone: an address mail.log folded and mail.warn kept is not counted twice', async () => {
    setTallyBound({ limit: 100, offender: 5, counted: DEFAULT_COUNTED_KINDS });
    const failures = sasl('2001:db8:aa:1::5', 1) + sasl('2001:db8:aa:1::5', 2) + sasl('2001:db8:aa:1::5', 3);
    const flood = Array.from({ length: 300 }, (_, i) => reject(`10.0.${i >> 8}.${i & 255}`)).join('');
    await writeFile(path.join(dir, 'mail.log'), failures + flood);
    await writeFile(path.join(dir, 'mail.warn'), failures);
    const collected = await collectEvents({ logs: [path.join(dir, 'mail.log'), path.join(dir, 'mail.warn')], usingDefaultLogs: false, now: NOW, warn, stdin: Readable.from([]), stateDir: null, saveState: false, window: ALL_TIME });
    expect(collected.tally.folded).not.toBeNull();
    let failed = 0;
    collected.tally.perMinute((_, counts) => (failed += counts[KIND_INDEX.saslFailure]!));
    expect(failed).toBe(3);
  });

  it('holds its pool to the limit when its files are merged: no room is made for every file at once past it', async () => {
    setTallyBound({ limit: 100, offender: 5, counted: DEFAULT_COUNTED_KINDS });
    // 8 files of a rotated log, 300 addresses each, all in one minute: each file's tally folds to its limit
    const logs: string[] = [];
    for (let file = 0; file < 8; file++) {
      const name = path.join(dir, file === 0 ? 'mail.log' : `mail.log.${file}`);
      await writeFile(name, Array.from({ length: 300 }, (_, i) => reject(`10.${file}.${i >> 8}.${i & 255}`)).join(''));
      logs.push(name);
    }
    const collected = await collectEvents({ logs, usingDefaultLogs: false, now: NOW, warn, stdin: Readable.from([]), stateDir: null, saveState: false, window: ALL_TIME });
    expect(collected.tally.count).toBeLessThanOrEqual(100);
    let addresses = 0;
    collected.tally.folded!.perMinute((_, counts) => (addresses += counts[FOLDED_ADDRESSES_SLOT]!));
    expect(addresses + collected.tally.count).toBe(2400);
    // one record per address: the pool holds what compaction keeps and what a merge adds, not the 8 files' sum (800 records)
    expect(collected.tally.pool.length / STRIDE).toBeLessThanOrEqual(300);
  });
});

describe('widestFamilies (what a follower reads)', () => {
  it('keeps the widest family of a severity split, and every family of its own', () => {
    const sources = orderLogPaths(['/var/log/mail.warn', '/var/log/mail.log.1', '/var/log/mail.log', '/var/log/mail.err', '/srv/other.log', '/var/log/x/mail.warn']);
    expect(widestFamilies(sources).map((s) => s.path)).toEqual(['/srv/other.log', '/var/log/mail.log.1', '/var/log/mail.log', '/var/log/x/mail.warn']);
  });
});
