/**
 * Files replaced safely (edge): through a temp file in the same directory, fsync,
 * rename, so a file is always its old or its new version; mode and owner kept; the
 * previous version kept beside it. Used by apply, install and the state file.
 */
import { constants } from 'node:fs';
import { chmod, chown, copyFile, open, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { ExitCode, SmtpguardError } from './errors.js';

export const PREVIOUS_SUFFIX = '.smtpguard-prev';

/** FILE -> FILE.smtpguard-prev, replaced atomically too. */
export async function keepPrevious(file: string): Promise<void> {
  const previous = file + PREVIOUS_SUFFIX;
  const temp = tempName(previous);
  try {
    await copyFile(file, temp, constants.COPYFILE_EXCL);
    await copyOwnership(file, temp);
    await rename(temp, previous);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw writeError(error, previous);
  }
}

/** keepPrevious, then writeAtomically. */
export async function writeWithBackup(file: string, text: string, like: string | null, mode = 0o644): Promise<void> {
  await keepPrevious(file);
  await writeAtomically(file, text, like, mode);
}

/**
 * Writes `text` to `file` through a temp file in the same directory: the file is
 * always its old or its new version. Mode and owner from `like` (else `mode`).
 */
export async function writeAtomically(file: string, text: string, like: string | null, mode = 0o644): Promise<void> {
  const temp = tempName(file);
  try {
    const handle = await open(temp, 'wx', like === null ? mode : 0o600);
    try {
      await handle.writeFile(Buffer.from(text, 'latin1')); // byte for byte: the files were read as latin1
      await handle.sync();
    } finally {
      await handle.close();
    }
    if (like !== null) await copyOwnership(like, temp);
    await rename(temp, file);
    await syncDirectory(path.dirname(file));
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw writeError(error, file);
  }
}

function tempName(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.smtpguard-${process.pid}-${Date.now()}`);
}

export async function copyOwnership(from: string, to: string): Promise<void> {
  const info = await stat(from).catch(() => null);
  if (info === null) return;
  await chmod(to, info.mode & 0o7777);
  if (process.getuid?.() === 0) await chown(to, info.uid, info.gid);
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r').catch(() => null);
  if (handle === null) return;
  await handle.sync().catch(() => undefined);
  await handle.close();
}

function writeError(error: unknown, file: string): SmtpguardError {
  if (error instanceof SmtpguardError) return error;
  const code = (error as NodeJS.ErrnoException).code;
  const why =
    code === 'ENOSPC' ? 'the file system is full' : code === 'EROFS' ? 'the file system is read-only' : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : (error as Error).message;
  return new SmtpguardError(`cannot write ${file}: ${why}`, {
    exitCode: ExitCode.writeFailed,
    hint: 'nothing was half-written: each file is its old or its new version; free space or fix permissions and run again',
    cause: error,
  });
}
