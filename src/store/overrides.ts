/** `overrides.json` in the state directory (edge): the manual blocks and unblocks. */
import path from 'node:path';
import { SmtpguardError } from '../errors.js';
import { readStoreBytes } from './store-file.js';
import { writeOwnFile } from './atomic.js';
import { parseOverrides, renderOverrides, type Override } from '../decide/overrides.js';

export const OVERRIDES_FILE = 'overrides.json';

export async function readOverrides(stateDir: string): Promise<Override[]> {
  const file = path.join(stateDir, OVERRIDES_FILE);
  // the admin's own orders: never set aside, and never read through a link (exit 3 says so)
  const text = await readStoreBytes(file).then(
    (bytes) => bytes.toString('utf8'),
    (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return null;
      if (error.code === 'ELOOP' || error.code === 'ENOTREG' || error.code === 'EISDIR') {
        throw new SmtpguardError(`${file} is not a regular file (a symbolic link, directory or device)`, {
          hint: 'move it away: it should be the file smtpguard keeps the manual blocks and unblocks in',
        });
      }
      throw new SmtpguardError(`cannot read ${file}: ${error.message}`, { hint: 'run as root' });
    },
  );
  if (text === null) return [];
  const overrides = parseOverrides(text);
  if (!Array.isArray(overrides)) {
    throw new SmtpguardError(`${file} is not valid: ${overrides.problem}`, {
      hint: 'fix it (it holds the manual blocks and unblocks), or remove it to drop them all',
    });
  }
  return overrides;
}

export async function writeOverrides(stateDir: string, overrides: readonly Override[]): Promise<void> {
  await writeOwnFile(path.join(stateDir, OVERRIDES_FILE), renderOverrides(overrides), 0o644);
}
