/**
 * What every command that changes something does first (edge): as root, the state
 * directory and the lock file's directory must be root's alone (trust.ts); they must be
 * directories (created when missing); then the lock, and the --timeout watchdog, which
 * the body uses around the part that applies a change. A dry run takes no lock and creates
 * nothing, but a file where a directory belongs is an error for it too.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { formatWindow } from '../../duration.js';
import { ExitCode, SmtpguardError } from '../../errors.js';
import { checkTrustedPaths, runPaths } from '../../trust.js';
import { Watchdog } from '../watchdog.js';
import { ensureDirectory } from '../../store/atomic.js';
import { acquireLock, type Release } from '../lock.js';
import type { Settings } from '../settings.js';

/**
 * `waitMs`: how long a busy lock is waited for (an admin's verb or install beside a follower that
 * applies on every event holds it for moments at a time); 0 (run, the follower): not at all.
 */
export async function withRunLock<T>(settings: Settings, dryRun: boolean, body: (watchdog: Watchdog) => Promise<T>, waitMs = 0): Promise<T> {
  await checkTrustedPaths(runPaths(settings.stateDir, settings.lockFile));
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
  const release = dryRun ? async () => undefined : await acquireWaiting(settings.lockFile, waitMs);
  const watchdog = new Watchdog(settings.timeout, () => {
    // nothing was changed yet (an apply in progress is let finish): say so, free the lock, stop
    process.stderr.write(
      `smtpguard: the run took longer than --timeout ${formatWindow(settings.timeout)} and was stopped before it changed anything -- look for a log that cannot be read to its end (a hung mount, a pipe), or raise --timeout\n`,
    );
    void release().finally(() => process.exit(ExitCode.timeout));
  });
  try {
    return await body(watchdog);
  } finally {
    watchdog.stop();
    await release();
  }
}

/** The lock, tried again every 50 ms while another run holds it, for up to `waitMs`. */
async function acquireWaiting(file: string, waitMs: number): Promise<Release> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      return await acquireLock(file);
    } catch (error) {
      if (!(error instanceof SmtpguardError) || error.exitCode !== ExitCode.lockBusy || Date.now() >= deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/** What the admin's commands (the verbs, install) wait for a busy lock. */
export const ADMIN_LOCK_WAIT_MS = 10_000;
