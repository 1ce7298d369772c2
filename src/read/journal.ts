/**
 * Postfix's journal (edge), for hosts without /var/log/mail.log (Debian 12 without
 * rsyslog): journalctl prints the entries of Postfix's unit in the RFC 3339 form the
 * parser reads (`-o short-iso-precise`), streamed into the same scanner as a file.
 * Incremental runs continue after the cursor of the last entry read.
 */
import { execa } from 'execa';
import { SmtpguardError } from '../errors.js';
import type { LogScanner } from './scan.js';

export interface JournalSource {
  /** journalctl --directory; null: the system journal. */
  directory: string | null;
  /** journalctl --unit pattern, e.g. `postfix*` (Debian 12: postfix@-.service). */
  unit: string;
}

export const journalName = (j: JournalSource): string => `journal:${j.unit}${j.directory === null ? '' : `@${j.directory}`}`;

const CURSOR_LINE = '-- cursor: ';

function args(j: JournalSource): string[] {
  return [...(j.directory === null ? [] : ['--directory', j.directory]), '--unit', j.unit, '--no-pager', '-q'];
}

/** Whether the journal holds at least one entry of Postfix's unit (that this user may read). */
export async function journalHasPostfix(j: JournalSource): Promise<boolean> {
  const r = await execa('journalctl', [...args(j), '-n', '1', '-o', 'cat'], { reject: false, timeout: 30_000, stdin: 'ignore' });
  return !r.failed && String(r.stdout).trim() !== '';
}

export interface JournalRead {
  /** The cursor of the last entry read (null when there was none). */
  cursor: string | null;
  /** False when `afterCursor` is no longer in the journal (vacuumed): read again without it. */
  cursorValid: boolean;
}

/**
 * Whether the journal still holds the entry at `cursor`: journalctl does not fail on a
 * cursor it no longer has, it seeks to the nearest entry, and --after-cursor would then
 * skip one entry that was never read.
 */
async function holdsCursor(j: JournalSource, cursor: string): Promise<boolean> {
  const child = execa('journalctl', [...args(j), '--cursor', cursor, '-o', 'json', '--output-fields=__CURSOR'], { reject: false, stdin: 'ignore', buffer: false });
  let first = '';
  for await (const chunk of child.stdout!) {
    first += String(chunk);
    if (first.includes('\n')) break;
  }
  child.kill();
  await child.catch(() => undefined);
  try {
    return (JSON.parse(first.split('\n')[0]!) as { __CURSOR?: string }).__CURSOR === cursor;
  } catch {
    return false;
  }
}

/**
 * Streams the entries (after `afterCursor`, or from `sinceMs` on) into the scanner; the cursor
 * line is not log text.
 */
export async function readJournal(j: JournalSource, scanner: LogScanner, afterCursor: string | null, sinceMs: number | null = null): Promise<JournalRead> {
  if (afterCursor !== null && !(await holdsCursor(j, afterCursor))) return { cursor: null, cursorValid: false };
  const from = afterCursor !== null ? ['--after-cursor', afterCursor] : sinceMs !== null && Number.isFinite(sinceMs) ? ['--since', `@${Math.floor(sinceMs / 1000)}`] : [];
  const child = execa('journalctl', [...args(j), '-o', 'short-iso-precise', '--show-cursor', ...from], {
    reject: false,
    stdin: 'ignore',
    buffer: { stdout: false, stderr: true },
    encoding: 'buffer',
  });
  let last = Buffer.alloc(0); // the end of the output, where the cursor line is
  let any = false;
  for await (const chunk of child.stdout!) {
    const buffer = chunk as Buffer;
    any ||= buffer.length > 0;
    scanner.push(buffer);
    last = Buffer.concat([last, buffer]).subarray(-4096);
  }
  const result = await child;
  const stderr = Buffer.from(result.stderr as Uint8Array).toString('utf8').trim();
  if (result.failed) {
    // no entry of the unit at all: "Failed to add filter for units: No data available", or nothing said
    if (!any && (stderr === '' || /no data available/i.test(stderr))) return { cursor: null, cursorValid: true };
    // the hint follows what went wrong: a missing directory is not a permission problem
    const missing = /no such file or directory|not a directory/i.test(stderr);
    const denied = /permission denied|access denied|not seeing messages from other users/i.test(stderr) || (process.getuid?.() ?? 0) !== 0;
    const hint = missing
      ? `check --journal-directory${j.directory === null ? '' : ` (${j.directory})`}: it must be a journal directory (e.g. /var/log/journal), or read log files with --log`
      : denied
        ? 'run as root or as a member of the systemd-journal group, or read log files with --log'
        : 'see what journalctl says above, or read log files with --log';
    throw new SmtpguardError(`journalctl failed: ${stderr || result.shortMessage}`, { hint });
  }
  const text = last.toString('latin1');
  const at = text.lastIndexOf(CURSOR_LINE);
  return { cursor: at === -1 ? null : text.slice(at + CURSOR_LINE.length).trim(), cursorValid: true };
}

/** Bytes and lines the cursor line added to the scanner's counts, to take back out. */
export const cursorLineSize = (cursor: string | null): number => (cursor === null ? 0 : CURSOR_LINE.length + cursor.length + 1);

/**
 * `journalctl --follow` from after `cursor` (or from `sinceMs` on, or only new entries when
 * neither is known), in the form readJournal reads: a follower's live source. The caller reads
 * its stdout and kills it.
 */
export async function followJournal(j: JournalSource, cursor: string | null, sinceMs: number | null): Promise<import('node:child_process').ChildProcess> {
  const { spawn } = await import('node:child_process');
  const from = cursor !== null ? ['--after-cursor', cursor] : sinceMs !== null ? ['--since', `@${Math.floor(sinceMs / 1000)}`] : ['-n', '0'];
  // --follow alone follows this boot only: a directory's journal (another machine's, by journal-remote) has other boots
  const merge = j.directory === null ? [] : ['--merge'];
  return spawn('journalctl', [...args(j), ...merge, '-o', 'short-iso-precise', '--follow', ...from], { stdio: ['ignore', 'pipe', 'pipe'] });
}
