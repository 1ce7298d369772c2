/**
 * What every command that changes something does first (edge): the state directory and
 * the lock file's directory must be directories (created when missing), then the lock.
 * A dry run takes no lock and creates nothing, but a file where a directory belongs is
 * an error for it too.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { SmtpguardError } from '../errors.js';
import { ensureDirectory } from '../files.js';
import { acquireLock } from '../lock.js';
import type { Settings } from '../settings.js';

export async function withRunLock<T>(settings: Settings, dryRun: boolean, body: () => Promise<T>): Promise<T> {
  const dirs: Array<[string, string, string]> = [
    [settings.stateDir, 'the state directory', '--state-dir'],
    [path.dirname(settings.lockFile), "the lock file's directory", '--lock-file'],
  ];
  for (const [dir, what, option] of dirs) {
    if (dryRun) {
      const info = await stat(dir).catch(() => null);
      if (info !== null && !info.isDirectory()) throw new SmtpguardError(`${what} ${dir} is not a directory`, { hint: `move the file away, or point ${option} at a directory` });
    } else {
      await ensureDirectory(dir, what, option);
    }
  }
  const release = dryRun ? async () => undefined : await acquireLock(settings.lockFile);
  try {
    return await body();
  } finally {
    await release();
  }
}
