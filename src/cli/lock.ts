/**
 * One run at a time (edge). The lock file holds the PID of the run that owns it; it
 * is created with link(2) from a file already holding the PID, so no run ever sees it
 * empty. A lock whose process is gone (killed, rebooted) is taken over: renamed aside
 * first, so two runs that both find it stale cannot both take it.
 *
 * Nothing here follows a symbolic link: the PID file is created with O_EXCL|O_NOFOLLOW
 * (a link planted in its place is removed, never written through), link(2) and rename(2)
 * act on names, and the owner's PID is read with O_NOFOLLOW.
 */
import { constants, readFileSync } from 'node:fs';
import { link, open, rename, unlink } from 'node:fs/promises';
import { ExitCode, SmtpguardError } from '../errors.js';

export type Release = () => Promise<void>;

const CREATE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/** Creates `file` holding `text`, never through a link; a stale entry of that name (a planted link) is removed first. */
async function createExclusive(file: string, text: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      const handle = await open(file, CREATE, 0o644);
      try {
        await handle.writeFile(text);
      } finally {
        await handle.close();
      }
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw error;
      await unlink(file); // our own name (FILE.PID): left by a run with our PID, or planted
    }
  }
}

export async function acquireLock(file: string): Promise<Release> {
  const mine = `${file}.${process.pid}`;
  try {
    await createExclusive(mine, `${process.pid}\n`);
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

/** The pid in a lock file, or null (none, not a pid). */
export async function readOwner(file: string): Promise<number | null> {
  let text = '';
  try {
    const handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    try {
      const buffer = Buffer.alloc(32);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
      text = buffer.toString('latin1', 0, bytesRead);
    } finally {
      await handle.close();
    }
  } catch {
    return null;
  }
  const pid = /^\d{1,10}\s*$/.test(text) ? Number(text.trim()) : NaN;
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

/** Whether `pid` is alive and an smtpguard (not a process that got the PID of one that died). */
export function isSmtpguardRunning(pid: number): boolean {
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
