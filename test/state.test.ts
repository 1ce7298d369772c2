/**
 * The scan state must never change an answer: over random appends, half-written
 * lines, rotations (plain, then gzip) and truncations, a scan that uses the state
 * gives exactly what a full scan gives.
 */
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mulberry32 } from './random.js';
import { collectEvents } from '../src/scan/collect.js';
import { EVENT_KINDS } from '../src/read/kinds.js';
import { ALL_TIME } from '../src/count/tally.js';
import { summarise } from '../src/count/summary.js';
import { NOW } from './helpers.js';

let dir: string;
let stateDir: string;
const warnings: string[] = [];
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'smtpguard-state-'));
  stateDir = path.join(dir, 'state');
  warnings.length = 0;
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A window in the middle of the random histories: logs wholly outside it are not even decoded. */
const WINDOW = { from: Date.parse('2026-11-20T00:30:00Z'), to: Date.parse('2026-11-20T01:30:00Z') };

/** Odd runs split every log and use the worker thread; even runs read on one thread. */
let runs = 0;

async function scan(withState: boolean, window = ALL_TIME) {
  const parallel = runs++ % 2 === 1;
  const collected = await collectEvents({
    logs: [path.join(dir, 'mail.log*')],
    usingDefaultLogs: false,
    now: NOW,
    warn: (w) => warnings.push(w),
    stdin: Readable.from([]),
    stateDir: withState ? stateDir : null,
    saveState: true,
    window,
    ...(parallel ? { tuning: { splitBytes: 64, parallelMinBytes: 0 } } : {}),
  });
  return { summaries: summarise(collected.tally, window, EVENT_KINDS), sources: collected.sources };
}

/** The random-history property test: short in npm test, long with SMTPGUARD_PROPERTY=long. */
const PROPERTY =
  process.env.SMTPGUARD_PROPERTY === 'long'
    ? { seeds: Array.from({ length: 30 }, (_, i) => i + 1), steps: 40 }
    : { seeds: [1, 2, 7, 8], steps: 20 };

describe('scan state', () => {
  // seeds 1-6: a couple of hours; 7-9 (and every third one past them): over a week, with lines out of
  // order by up to two hours (so new lines also land in an older day's file) and a window across
  // midnight. npm test runs four seeds of 20 steps (a few seconds each on a busy 2-core machine);
  // `npm run test:property` runs 30 seeds of 40 steps.
  it.each(PROPERTY.seeds)('gives what a full scan gives over a random history (seed %i)', { timeout: 180_000 }, async (seed) => {
    const rand = mulberry32(seed);
    const days = seed > 6 && (seed <= 9 || seed % 3 === 0);
    const midnight = { from: Date.parse('2026-11-21T18:00:00Z'), to: Date.parse('2026-11-22T06:00:00Z') };
    const log = path.join(dir, 'mail.log');
    writeFileSync(log, '');
    let second = 0;
    const line = () => {
      second += days ? (rand() < 0.1 ? -Math.floor(rand() * 7200) : Math.floor(rand() * 2400)) : Math.floor(rand() * 40);
      const stamp = new Date(Date.parse('2026-11-20T00:00:00Z') + second * 1000).toISOString().replace('Z', '+00:00');
      const address = `198.51.100.${Math.floor(rand() * 12)}`;
      const r = rand();
      if (r < 0.4) return `${stamp} mx postfix/smtpd[1]: warning: unknown[${address}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username=x[192.0.2.${Math.floor(rand() * 9)}]\n`;
      if (r < 0.6) return `${stamp} mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from unknown[${address}]: 554 5.7.1 <v@example.org>: Relay access denied; from=<a@b> to=<v@example.org> proto=ESMTP helo=<x>\n`;
      if (r < 0.65) return `${stamp} mx postfix/smtpd[1]: 4ABC: client=unknown[${address}], sasl_method=PLAIN, sasl_username=u\n`;
      return `${stamp} mx postfix/qmgr[2]: 4ABC${Math.floor(rand() * 1e6)}: removed\n`;
    };
    let pending = ''; // a line written in two parts, as syslog may leave it between two runs
    for (let step = 0; step < PROPERTY.steps; step++) {
      const r = rand();
      if (r < 0.6) {
        let text = pending;
        for (let n = Math.floor(rand() * 30); n > 0; n--) text += line();
        const next = line();
        const cut = Math.floor(rand() * next.length);
        if (rand() < 0.3) {
          text += next.slice(0, cut);
          pending = next.slice(cut);
        } else {
          pending = '';
        }
        appendFileSync(log, text);
      } else if (r < 0.85) {
        // logrotate with delaycompress: .N.gz -> .N+1.gz (rotate 4), .1 -> .2.gz, mail.log -> .1
        appendFileSync(log, pending);
        pending = '';
        for (let n = 4; n >= 2; n--) if (existsSync(`${log}.${n}.gz`)) renameSync(`${log}.${n}.gz`, `${log}.${n + 1}.gz`);
        if (existsSync(`${log}.5.gz`)) unlinkSync(`${log}.5.gz`);
        if (existsSync(`${log}.1`)) {
          writeFileSync(`${log}.2.gz`, gzipSync(readFileSync(`${log}.1`)));
          unlinkSync(`${log}.1`);
        }
        renameSync(log, `${log}.1`);
        writeFileSync(log, '');
      } else if (r < 0.9) {
        writeFileSync(log, ''); // copytruncate: same name, new text
        pending = '';
      }
      const full = await scan(false);
      const incremental = await scan(true);
      expect(incremental).toEqual(full);
      expect(await scan(true, WINDOW)).toEqual(await scan(false, WINDOW));
      if (days) expect(await scan(true, midnight)).toEqual(await scan(false, midnight));
    }
    expect(warnings).toEqual([]);
    expect(existsSync(path.join(stateDir, 'scan-state.json'))).toBe(true);
  });

  it('reads only what was appended since the last run, and reuses rotated logs whole', async () => {
    const log = path.join(dir, 'mail.log');
    const event = (a: string) => `2026-11-22T10:00:00.000000+00:00 mx postfix/smtpd[1]: warning: unknown[${a}]: SASL LOGIN authentication failed: x\n`;
    writeFileSync(log, event('192.0.2.1').repeat(100));
    await scan(true);
    appendFileSync(log, event('192.0.2.2'));
    const state = JSON.parse(readFileSync(path.join(stateDir, 'scan-state.json'), 'utf8')) as { entries: Array<{ size: number }> };
    expect(state.entries.map((e) => e.size)).toEqual([100 * event('192.0.2.1').length]);
    // rotate: the same text under another name, then gzipped, is found by its head
    renameSync(log, `${log}.1`);
    writeFileSync(log, event('192.0.2.3'));
    const rotated = await scan(true);
    expect(rotated).toEqual(await scan(false));
    writeFileSync(`${log}.2.gz`, gzipSync(readFileSync(`${log}.1`)));
    unlinkSync(`${log}.1`);
    expect(await scan(true)).toEqual(await scan(false));
  });

  it('30 days of history and an address flood: a windowed run decodes only the window and never writes that back', async () => {
    const rand = mulberry32(30);
    const log = path.join(dir, 'mail.log');
    const day = 86_400_000;
    const end = Date.parse('2026-11-22T00:00:00Z');
    const stamp = (t: number) => new Date(t).toISOString().replace('Z', '+00:00');
    let text = '';
    for (let i = 0; i < 3000; i++) {
      const t = end - 30 * day + Math.floor((i / 3000) * 30 * day);
      const address = i % 5 === 0 ? `2001:db8:${(i % 97).toString(16)}:${i.toString(16)}::${Math.floor(rand() * 9) + 1}` : `198.51.100.${Math.floor(rand() * 20)}`;
      text += `${stamp(t)} mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from unknown[${address}]: 554 5.7.1 <v@example.org>: Relay access denied; from=<a@b> to=<v@example.org> proto=ESMTP helo=<x>\n`;
    }
    writeFileSync(log, text);
    const lastDay = { from: end - day, to: end };
    expect(await scan(true, ALL_TIME)).toEqual(await scan(false, ALL_TIME));
    // nothing new: the log is known whole and only its last day is decoded; twice, then all of it again
    expect(await scan(true, lastDay)).toEqual(await scan(false, lastDay));
    expect(await scan(true, lastDay)).toEqual(await scan(false, lastDay));
    expect(await scan(true, ALL_TIME)).toEqual(await scan(false, ALL_TIME));
    // the tally is kept as one segment per UTC day: 30 of them
    const segments = () => (JSON.parse(readFileSync(path.join(stateDir, 'scan-state.json'), 'utf8')) as { entries: Array<{ segments: Array<{ day: number; file: string }> }> }).entries[0]!.segments;
    const before = segments();
    expect(before).toHaveLength(30);
    expect(readdirSync(stateDir).filter((f) => f.startsWith('tally-'))).toHaveLength(30);
    // a day outside the window is not even opened: garbage in the oldest one changes nothing and says nothing
    writeFileSync(path.join(stateDir, before[0]!.file), 'garbage!');
    expect(await scan(true, lastDay)).toEqual(await scan(false, lastDay));
    expect(warnings).toEqual([]);
    // new lines after a windowed run: only the day they fall on is written anew, and the whole history is still there
    appendFileSync(log, `${stamp(end - 1000)} mx postfix/smtpd[1]: warning: unknown[192.0.2.9]: SASL LOGIN authentication failed: x\n`);
    expect(await scan(true, lastDay)).toEqual(await scan(false, lastDay));
    const after = segments();
    expect(after.slice(0, -1)).toEqual(before.slice(0, -1));
    expect(after.at(-1)!.day).toBe(before.at(-1)!.day);
    expect(after.at(-1)!.file).not.toBe(before.at(-1)!.file);
    expect(readdirSync(stateDir).filter((f) => f.startsWith('tally-'))).toHaveLength(30);
    expect(warnings).toEqual([]);
    // the whole history again: now the broken day is read, said, and the log read from the start
    expect(await scan(true, ALL_TIME)).toEqual(await scan(false, ALL_TIME));
    expect(warnings.join('\n')).toMatch(/not valid/);
  });

  it('a day written again keeps its usernames though an earlier day used up the address\'s places', async () => {
    // 64 names on day one fill the address's places (MAX_USERS_PER_ADDRESS); day two's file keeps its own
    // names, and writing day two again (new lines on it) from the window's sum must not count them as
    // other users because of day one's (a trap username would be missed once day one left the window)
    const log = path.join(dir, 'mail.log');
    const fail = (t: string, user: string) => `${t} mx postfix/smtpd[1]: warning: unknown[192.0.2.1]: SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username=${user}\n`;
    writeFileSync(log, Array.from({ length: 64 }, (_, i) => fail('2026-11-21T23:00:00+00:00', `u${i}`)).join(''));
    await scan(true, ALL_TIME);
    appendFileSync(log, fail('2026-11-22T01:00:00+00:00', 'admin'));
    await scan(true, ALL_TIME);
    appendFileSync(log, fail('2026-11-22T02:00:00+00:00', 'bob'));
    await scan(true, ALL_TIME);
    const dayTwo = { from: Date.parse('2026-11-22T00:00:00Z'), to: Date.parse('2026-11-22T23:59:59Z') };
    const [address] = (await scan(true, dayTwo)).summaries;
    expect([...address!.users!.keys()].sort()).toEqual(['admin', 'bob']);
    expect(address!.otherUserFailures).toBeUndefined();
    expect(warnings).toEqual([]);
  });

  it("an older version's state is read again quietly, and its tally files go", async () => {
    writeFileSync(path.join(dir, 'mail.log'), `2026-11-22T10:00:00Z mx postfix/smtpd[1]: warning: unknown[192.0.2.1]: SASL LOGIN authentication failed: x\n`);
    mkdirSync(stateDir, { recursive: true });
    const old = 'tally-0123456789abcdef01234567-199966.bin';
    writeFileSync(path.join(stateDir, old), 'whatever version 5 wrote');
    const entry = { head: 'x'.repeat(64), headLength: 10, size: 10, lines: 1, events: 1, tally: old, first: null, last: null };
    writeFileSync(path.join(stateDir, 'scan-state.json'), JSON.stringify({ version: 5, year: 2026, zone: 'UTC', now: 0, entries: [entry] }));
    expect(await scan(true)).toEqual(await scan(false));
    expect(warnings).toEqual([]);
    expect(existsSync(path.join(stateDir, old))).toBe(false);
    expect(readdirSync(stateDir).filter((f) => f.startsWith('tally-'))).toHaveLength(1);
  });

  it('a corrupt state is discarded with a warning, and the answer is still exact', async () => {
    writeFileSync(path.join(dir, 'mail.log'), `2026-11-22T10:00:00Z mx postfix/smtpd[1]: warning: unknown[192.0.2.1]: SASL LOGIN authentication failed: x\n`);
    await scan(true);
    for (const garbage of ['{"version":1,"year":2026,"entries":[{"head":"x"}]}', 'not json at all', '']) {
      writeFileSync(path.join(stateDir, 'scan-state.json'), garbage);
      warnings.length = 0;
      expect(await scan(true)).toEqual(await scan(false));
      expect(warnings.join('\n')).toMatch(/scan-state\.json is not valid .*reading all logs from the start/);
    }
  });

  it('a tally that does not decode, or is gone, is a corrupt state too', async () => {
    writeFileSync(path.join(dir, 'mail.log'), `2026-11-22T10:00:00Z mx postfix/smtpd[1]: warning: unknown[192.0.2.1]: SASL LOGIN authentication failed: x\n`);
    await scan(true);
    const state = JSON.parse(readFileSync(path.join(stateDir, 'scan-state.json'), 'utf8')) as { entries: Array<{ segments: Array<{ file: string }> }> };
    const tally = path.join(stateDir, state.entries[0]!.segments[0]!.file);
    writeFileSync(tally, 'garbage!');
    warnings.length = 0;
    expect(await scan(true)).toEqual(await scan(false));
    expect(warnings.join('\n')).toMatch(/not valid/);
    // the warning names the tally file, once (issue 21)
    expect(warnings.filter((w) => w.includes(path.basename(tally)))).toHaveLength(1);
    expect(warnings[0]).toMatch(/the scan state's tally \S+tally-[0-9a-f]{24}-\d+-\d+\.bin is not valid/);
    await scan(true);
    unlinkSync(path.join(stateDir, (JSON.parse(readFileSync(path.join(stateDir, 'scan-state.json'), 'utf8')) as { entries: Array<{ segments: Array<{ file: string }> }> }).entries[0]!.segments[0]!.file));
    warnings.length = 0;
    expect(await scan(true)).toEqual(await scan(false));
    expect(warnings.join('\n')).toMatch(/not valid/);
  });
});
