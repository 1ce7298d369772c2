/** `overrides.json` in the state directory (edge): the manual blocks and unblocks. */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { SmtpguardError } from '../errors.js';
import { writeAtomically } from '../write/files.js';
import { parseOverrides, renderOverrides, type Override } from './overrides.js';

export const OVERRIDES_FILE = 'overrides.json';

export async function readOverrides(stateDir: string): Promise<Override[]> {
  const file = path.join(stateDir, OVERRIDES_FILE);
  const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return null;
    throw new SmtpguardError(`cannot read ${file}: ${error.message}`, { hint: 'run as root' });
  });
  if (text === null) return [];
  try {
    return parseOverrides(text);
  } catch (error) {
    throw new SmtpguardError(`${file} is not valid: ${(error as Error).message}`, {
      hint: 'fix it (it holds the manual blocks and unblocks), or remove it to drop them all',
    });
  }
}

export async function writeOverrides(stateDir: string, overrides: readonly Override[]): Promise<void> {
  await writeAtomically(path.join(stateDir, OVERRIDES_FILE), renderOverrides(overrides), null, 0o644);
}
