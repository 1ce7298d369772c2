/**
 * One run at a time (edge). The lock file holds the PID of the run that owns it; it
 * is created with link(2) from a file already holding the PID, so no run ever sees it
 * empty. A lock whose process is gone (killed, rebooted) is taken over: renamed aside
 * first, so two runs that both find it stale cannot both take it.
 */
import { readFileSync } from 'node:fs';
import { link, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { ExitCode, SmtpguardError } from './errors.js';

export type Release = () => Promise<void>;

export async function acquireLock(file: string): Promise<Release> {
  const mine = `${file}.${process.pid}`;
  try {
    await writeFile(mine, `${process.pid}\n`, { mode: 0o644 });
  } catch (error) {
    throw new SmtpguardError(`cannot create the lock file ${file}: ${(error as Error).message}`, {
      hint: 'run as root, or point --lock-file at a writable place',
      cause: error,
    });
  }
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await link(mine, file);
        return async () => {
          await unlink(file).catch(() => undefined);
        };
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const owner = await readOwner(file);
      if (owner !== null && isSmtpguardRunning(owner)) {
        throw new SmtpguardError(`another smtpguard run (pid ${owner}) holds ${file}`, {
          exitCode: ExitCode.lockBusy,
          hint: 'it will be done soon; if no smtpguard is running, remove the file',
        });
      }
      // left by a run that died: move it aside, and make sure it was that one we moved
      const aside = `${file}.stale.${process.pid}`;
      if (await rename(file, aside).then(() => true, () => false)) {
        if ((await readOwner(aside)) !== owner) await link(aside, file).catch(() => undefined); // someone else's fresh lock: put it back
        await unlink(aside).catch(() => undefined);
      }
    }
    throw new SmtpguardError(`cannot take the lock ${file}`, { exitCode: ExitCode.lockBusy, hint: 'another run keeps taking it; try again' });
  } catch (error) {
    if (error instanceof SmtpguardError) throw error;
    throw new SmtpguardError(`cannot create the lock file ${file}: ${(error as Error).message}`, { hint: 'point --lock-file at a writable place', cause: error });
  } finally {
    await unlink(mine).catch(() => undefined);
  }
}

async function readOwner(file: string): Promise<number | null> {
  const pid = await readFile(file, 'utf8').then((t) => Number(t.trim()), () => NaN);
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

function isSmtpguardRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  // the PID may have been reused by another program since
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('smtpguard');
  } catch {
    return true;
  }
}
