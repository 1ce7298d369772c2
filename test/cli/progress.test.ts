/**
 * Progress on long work: a line on a terminal's stderr after a second, redrawn at most 4 times a
 * second, gone before the result; never on a pipe, with --quiet or TERM=dumb. The line's rules with
 * a fake clock; the real thing in a real terminal (tmux).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderProgress, TerminalProgress } from '../../src/report/progress.js';
import { BIN, runBin, saslLines } from '../helpers.js';

describe('the progress line', () => {
  const terminal = () => {
    const writes: string[] = [];
    return { writes, out: { isTTY: true, columns: 100, write: (text: string) => writes.push(text) > 0 } };
  };

  it('is only for a terminal, without --quiet or TERM=dumb', () => {
    const { out } = terminal();
    expect(TerminalProgress.for({ ...out, isTTY: false }, {}, false)).toBeNull();
    expect(TerminalProgress.for(out, { TERM: 'dumb' }, false)).toBeNull();
    expect(TerminalProgress.for(out, { TERM: 'xterm' }, true)).toBeNull();
    const line = TerminalProgress.for(out, { TERM: 'xterm' }, false);
    expect(line).not.toBeNull();
    line!.stop();
  });

  it('waits a second, redraws at most 4 times a second, and clears itself', () => {
    let now = 0;
    const { writes, out } = terminal();
    const line = TerminalProgress.for(out, { TERM: 'xterm' }, false, () => now)!;
    let done = 0;
    line.watch(() => ({ label: 'reading the logs', done, total: 1e9, unit: 'bytes' }));
    for (; now < 1000; now += 10) line.tick();
    expect(writes).toEqual([]); // nothing in the first second
    for (; now <= 2000; now += 10) {
      done += 1e6;
      line.tick();
    }
    expect(writes.length).toBeGreaterThanOrEqual(4);
    expect(writes.length).toBeLessThanOrEqual(5); // 1000..2000 ms: at most one draw per 250 ms
    expect(writes.at(-1)).toMatch(/^\rsmtpguard: reading the logs: [\d.]+ of 1000 MB \(\d+%\), [\d.]+ MB\/s, \d+ s left\x1b\[K$/);
    line.stop();
    expect(writes.at(-1)).toBe('\r\x1b[K');
  });

  it('says bytes of the total, rate and time left; the journal in entries; an apply in steps', () => {
    expect(renderProgress({ label: 'reading the logs', done: 312e6, total: 786e6, unit: 'bytes' }, 2)).toBe('smtpguard: reading the logs: 312 of 786 MB (39%), 156 MB/s, 4 s left');
    expect(renderProgress({ label: 'reading standard input', done: 12.34e6, total: null, unit: 'bytes' }, 2)).toBe('smtpguard: reading standard input: 12.3 MB, 6.2 MB/s');
    expect(renderProgress({ label: 'reading the journal', done: 120000, total: null, unit: 'entries' }, 4)).toBe('smtpguard: reading the journal: 120,000 entries, 30,000/s');
    expect(renderProgress({ label: 'applying', done: 1, total: 3, unit: 'steps', step: 'ufw reload' }, 2)).toBe('smtpguard: applying: ufw reload (2 of 3)');
  });

  it('never on a pipe: stderr of a scan run by a script holds no progress', () => {
    const r = runBin(['scan', '--log', '-', '--window', 'all', '--no-state'], { input: saslLines('203.0.113.5', 3) });
    expect(r.code).toBe(0);
    expect(r.stderr).not.toMatch(/\r|reading/);
  });
});

describe('in a real terminal (tmux)', () => {
  let dir: string;
  const session = `smtpguard-progress-${process.pid}`;
  const tmux = (...args: string[]) => spawnSync('tmux', ['-L', session, ...args], { encoding: 'utf8' });
  const screen = () => tmux('capture-pane', '-p', '-t', session).stdout;
  const waitFor = async (test: (text: string) => boolean, ms: number) => {
    for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 100))) if (test(screen())) return screen();
    return screen();
  };

  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'smtpguard-progress-'));
    const block = saslLines('203.0.113.5', 20).repeat(2000); // ~7 MB
    writeFileSync(path.join(dir, 'a.log'), block);
    writeFileSync(path.join(dir, 'b.log'), saslLines('198.51.100.9', 4));
    // the input stops for 4 s half way: long enough to show the line
    writeFileSync(path.join(dir, 'go.sh'), `cat ${dir}/a.log; sleep 4; cat ${dir}/b.log\n`);
    expect(tmux('new-session', '-d', '-s', session, '-x', '150', '-y', '30', 'bash --norc --noprofile').status).toBe(0);
  });
  afterAll(() => {
    tmux('kill-server');
    rmSync(dir, { recursive: true, force: true });
  });

  it('shows the line while standard input is read, and the result replaces it', async () => {
    const command = `sh ${dir}/go.sh | node ${BIN} scan --log - --window all --no-state > ${dir}/out.txt; echo "EXIT $?"`;
    tmux('send-keys', '-t', session, command, 'Enter');
    const during = await waitFor((s) => /reading standard input: [\d.]+ MB, [\d.]+ MB\/s/.test(s), 4000);
    expect(during).toMatch(/^smtpguard: reading standard input: [\d.]+ MB, [\d.]+ MB\/s\s*$/m);
    const after = await waitFor((s) => /EXIT \d/.test(s), 15000);
    expect(after).toMatch(/^EXIT 0\s*$/m);
    expect(after).not.toMatch(/reading standard input/); // cleared before the end
  });

  it('none with --quiet, none with TERM=dumb', async () => {
    for (const prefix of ['', 'TERM=dumb ']) {
      tmux('send-keys', '-t', session, 'clear', 'Enter');
      const quiet = prefix === '' ? ' --quiet' : '';
      tmux('send-keys', '-t', session, `sh ${dir}/go.sh | ${prefix}node ${BIN} scan --log - --window all --no-state${quiet} > ${dir}/out.txt; echo "DONE $?"`, 'Enter');
      await new Promise((r) => setTimeout(r, 2500)); // in the pause of the input: a line would show now
      expect(screen()).not.toMatch(/reading standard input/);
      expect(await waitFor((s) => /DONE \d/.test(s), 15000)).toMatch(/^DONE 0\s*$/m);
    }
  });
});
