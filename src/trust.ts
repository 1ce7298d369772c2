/**
 * Files that decide what root does (edge). Running as root, smtpguard refuses a config
 * file, state directory or lock directory that another user could write, as sshd does
 * with its keys: whoever can write the state chooses who is blocked, whoever can write the
 * lock directory can plant links in it. Unprivileged runs (scan, tests) are not checked:
 * they cannot change the firewall.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { SmtpguardError } from './errors.js';

export interface TrustedPath {
  path: string;
  /** How the admin names it: `the state directory (--state-dir)`. */
  what: string;
}

/** Throws (exit 3) naming the first path that exists and is not root's alone; missing paths pass. */
export async function checkTrustedPaths(paths: readonly TrustedPath[], uid = process.getuid?.() ?? -1): Promise<void> {
  if (uid !== 0) return;
  for (const { path: file, what } of paths) {
    const s = await stat(file).catch(() => null);
    if (s === null) continue;
    if (!s.isFile() && !s.isDirectory()) {
      const kind = s.isCharacterDevice() ? 'a character device' : s.isBlockDevice() ? 'a block device' : s.isFIFO() ? 'a FIFO' : 'a socket';
      throw new SmtpguardError(`${what} ${file} is ${kind}, not a regular file`, { hint: 'point smtpguard at a file of its own' });
    }
    const problem = s.uid !== 0 ? `is owned by uid ${s.uid}, not root` : (s.mode & 0o022) !== 0 ? `is writable by ${(s.mode & 0o002) !== 0 ? 'every user' : 'its group'} (mode ${(s.mode & 0o7777).toString(8).padStart(4, '0')})` : null;
    if (problem === null) continue;
    // chown/chmod is advice for smtpguard's own files only: never for /tmp, /dev or another shared directory
    const shared = s.isDirectory() && ((s.mode & 0o1000) !== 0 || SYSTEM_DIRECTORIES.has(path.resolve(file)));
    const fix = s.isDirectory() ? `chown root:root ${file} && chmod go-w ${file}` : `chown root:root ${file} && chmod 644 ${file}`;
    throw new SmtpguardError(`${what} ${file} ${problem}: another user could choose what root blocks`, {
      hint: shared ? `${file} is a shared system directory: keep smtpguard's files in a directory only root can write (e.g. /etc/smtpguard, /var/lib/smtpguard, /run)` : `run "${fix}", or point smtpguard at a place only root can write`,
    });
  }
}

/** Directories that belong to the system, not to smtpguard: no chown/chmod advice for them. */
const SYSTEM_DIRECTORIES: ReadonlySet<string> = new Set(['/', '/tmp', '/var/tmp', '/dev', '/dev/shm', '/run', '/run/lock', '/var/lock', '/etc', '/var', '/var/lib', '/var/run', '/home', '/usr']);

/** The config file and its directory. */
export function configPaths(file: string): TrustedPath[] {
  return [
    { path: path.dirname(path.resolve(file)), what: 'the config directory' },
    { path: file, what: 'the config file' },
  ];
}

/** The state directory and the directory of the lock file. */
export function runPaths(stateDir: string, lockFile: string): TrustedPath[] {
  return [
    { path: stateDir, what: 'the state directory (--state-dir)' },
    { path: path.dirname(path.resolve(lockFile)), what: 'the lock file\'s directory (--lock-file)' },
  ];
}
