/**
 * One run at a time (edge). The lock file holds the PID of the run that owns it; a
 * lock whose process is gone (killed, rebooted) is taken over.
 */
import { readFileSync } from 'node:fs';
import { open, readFile, unlink } from 'node:fs/promises';
import { ExitCode, SmtpguardError } from './errors.js';

export type Release = () => Promise<void>;

export async function acquireLock(file: string): Promise<Release> {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const handle = await open(file, 'wx', 0o644);
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      return async () => {
        await unlink(file).catch(() => undefined);
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new SmtpguardError(`cannot create the lock file ${file}: ${(error as Error).message}`, {
          hint: 'run as root, or point --lock-file at a writable place',
          cause: error,
        });
      }
    }
    const owner = await readFile(file, 'utf8').then((t) => Number(t.trim()), () => NaN);
    if (Number.isInteger(owner) && owner > 0 && isSmtpguardRunning(owner)) {
      throw new SmtpguardError(`another smtpguard run (pid ${owner}) holds ${file}`, {
        exitCode: ExitCode.lockBusy,
        hint: 'it will be done soon; if no smtpguard is running, remove the file',
      });
    }
    await unlink(file).catch(() => undefined); // left by a run that died: take it over
  }
  throw new SmtpguardError(`cannot take the lock ${file}`, { exitCode: ExitCode.lockBusy, hint: 'another run keeps taking it; try again' });
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
