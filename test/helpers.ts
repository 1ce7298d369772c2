import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EVENT_KINDS, type EventKind } from '../src/read/kinds.js';
import { LineParser, type MailEvent } from '../src/read/parse.js';
import { LogScanner } from '../src/read/scan.js';
import { ALL_TIME, Tally } from '../src/count/tally.js';
import { summarise } from '../src/count/summary.js';

export const NOW = new Date('2026-11-23T12:00:00Z');

/** Every event a buffer of log text gives through the block scanner, as sorted "kind address" strings. */
export function scanEvents(text: string | Buffer, blockBytes?: number): string[] {
  const tally = new Tally();
  const scanner = new LogScanner(new LineParser(NOW), tally, blockBytes);
  scanner.push(typeof text === 'string' ? Buffer.from(text, 'latin1') : text);
  scanner.end();
  return tallyEvents(tally);
}

export function tallyEvents(tally: Tally): string[] {
  const out: string[] = [];
  for (const summary of summarise(tally, ALL_TIME, ['saslFailure'])) {
    for (const kind of EVENT_KINDS) {
      for (let i = 0; i < summary.events[kind]; i++) out.push(`${kind} ${summary.address}`);
    }
  }
  return out.sort();
}

/** `kind address time`, then ` count=N` (a line that stands for N events), ` user=NAME` (SASL lines that name one) and ` unnamed` (recipient rejects of `unknown[ADDR]`). */
export const describeEvent = (e: MailEvent | null): string =>
  e === null
    ? 'none'
    : `${e.kind} ${e.address} ${new Date(e.time).toISOString()}${e.count === undefined ? '' : ` count=${e.count}`}${e.user === undefined ? '' : ` user=${e.user}`}${e.unnamed === true ? ' unnamed' : ''}`;

export type { EventKind };

/** The built CLI and the test fixtures. */
export const BIN = fileURLToPath(new URL('../bin/smtpguard.js', import.meta.url));
export const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));

/** The built CLI the way cron runs it: no terminal, a bare environment (PATH, TZ=UTC), no stdin. */
export function runBin(args: readonly string[], options: SpawnSyncOptions = {}): { code: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH, TZ: 'UTC' }, input: '', timeout: 120_000, ...options });
  return { code: result.status, stdout: String(result.stdout), stderr: String(result.stderr) };
}

/** `n` SASL LOGIN failures of `address` as `user`, in Debian 12's RFC 3339 form. */
export const saslLines = (address: string, n: number, user = 'admin'): string =>
  `2026-11-22T11:37:32.000000+00:00 mx postfix/smtpd[1]: warning: unknown[${address}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username=${user}\n`.repeat(n);

/** A client reject of `address` at minute `minute` (0-59) of 11:00 on 2026-11-22, as Postfix logs it for an `unknown[ADDR]` client: one line, with its newline. */
export const rejectLine = (address: string, minute: number): string =>
  `2026-11-22T11:${String(minute).padStart(2, '0')}:00.000000+00:00 mx postfix/smtpd[4]: NOQUEUE: reject: RCPT from unknown[${address}]: 554 5.7.1 <unknown[${address}]>: Client host rejected: Access denied; from=<a@b> to=<x@example.org> proto=ESMTP helo=<x>\n`;

/**
 * A temp directory laid out like a server: copies of Debian 12's ufw rules files and a Postfix
 * config directory `pf/` (main.cf with `mynetworks`, an empty master.cf) for --postfix-config-dir.
 */
export function makeServerDir(prefix: string, mynetworks = '127.0.0.0/8 [::1]/128'): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  copyFileSync(path.join(FIXTURES, 'debian12-before.rules'), path.join(dir, 'before.rules'));
  copyFileSync(path.join(FIXTURES, 'debian12-before6.rules'), path.join(dir, 'before6.rules'));
  mkdirSync(path.join(dir, 'pf'));
  writeFileSync(path.join(dir, 'pf', 'main.cf'), `mynetworks = ${mynetworks}\n`);
  writeFileSync(path.join(dir, 'pf', 'master.cf'), '');
  // Postfix waits until a just-written main.cf is a few seconds old before reading it
  const past = new Date(Date.now() - 10_000);
  utimesSync(path.join(dir, 'pf', 'main.cf'), past, past);
  return dir;
}

/** The flags of a run on a makeServerDir() directory: its files, a hash map, no reloads, every event of the log. */
export function serverFlags(dir: string): string[] {
  return [
    '--ufw-rules', path.join(dir, 'before.rules'),
    '--ufw6-rules', path.join(dir, 'before6.rules'),
    '--access-map', path.join(dir, 'access'),
    '--map-type', 'hash',
    '--postfix-config-dir', path.join(dir, 'pf'),
    '--lock-file', path.join(dir, 'smtpguard.lock'),
    '--state-dir', path.join(dir, 'state'),
    '--config', path.join(dir, 'smtpguard.conf'),
    '--log', path.join(dir, 'mail.log'),
    '--window', 'all',
    '--no-reload',
  ];
}

/** Where `install` puts the cron line, the man page, the bash completion and the units: inside `dir`, never on the machine. */
export function installPaths(dir: string): string[] {
  return ['--cron-file', path.join(dir, 'cron'), '--man-dir', path.join(dir, 'man1'), '--completion-dir', path.join(dir, 'completion'), '--systemd-dir', path.join(dir, 'systemd')];
}
