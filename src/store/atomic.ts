/**
 * Files replaced safely (edge): through a temp file in the same directory, fsync,
 * rename, so a file is always its old or its new version; mode and owner kept; the
 * previous version kept beside it (replaced only once the new file is in place); a
 * symlink written through to its target. Used by apply, install and every store of the state directory.
 */
import { constants } from 'node:fs';
import { chmod, chown, copyFile, lstat, mkdir, open, readlink, realpath, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { ExitCode, SmtpguardError } from '../errors.js';

export const PREVIOUS_SUFFIX = '.smtpguard-prev';

export interface StagedPrevious {
  /** Puts the copy in place as FILE.smtpguard-prev: only once the new FILE is in place. */
  commit(): Promise<void>;
  /** The write failed: FILE.smtpguard-prev keeps the older backup. */
  discard(): Promise<void>;
}

/**
 * A copy of FILE beside it, to become FILE.smtpguard-prev once the new FILE is in
 * place: a write that fails (read-only, immutable, full disk) leaves the older backup.
 */
export async function stagePrevious(file: string): Promise<StagedPrevious> {
  const previous = file + PREVIOUS_SUFFIX;
  const temp = tempName(previous);
  try {
    await copyFile(file, temp, constants.COPYFILE_EXCL);
    await copyOwnership(file, temp);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { commit: async () => undefined, discard: async () => undefined };
    throw writeError(error, previous);
  }
  return {
    commit: async () => {
      try {
        await rename(temp, previous);
      } catch (error) {
        await unlink(temp).catch(() => undefined);
        throw writeError(error, previous);
      }
    },
    discard: () => unlink(temp).catch(() => undefined),
  };
}

/** Writes FILE atomically, and then keeps its previous version as FILE.smtpguard-prev. */
export async function writeWithBackup(file: string, text: string, like: string | null, mode = 0o644): Promise<void> {
  const previous = await stagePrevious(file);
  try {
    await writeAtomically(file, text, like, mode);
  } catch (error) {
    await previous.discard();
    throw error;
  }
  await previous.commit();
}

/**
 * Where a write of FILE goes: a symlink's target (the link stays a link, and what it
 * points at gets the new text), else FILE itself.
 */
export async function writeTarget(file: string): Promise<string> {
  const info = await lstat(file).catch(() => null);
  if (info === null || !info.isSymbolicLink()) return file;
  return realpath(file).catch(async () => path.resolve(path.dirname(file), await readlink(file))); // a dangling link: its target is created
}

/**
 * Writes `text` to `file` through a temp file in the same directory: the file is
 * always its old or its new version. Mode and owner from `like` (else `mode`). A
 * symlink is written through to its target.
 */
export async function writeAtomically(file: string, text: string, like: string | null, mode = 0o644): Promise<void> {
  await replaceFile(file, await writeTarget(file), Buffer.from(text, 'latin1'), like, mode); // byte for byte: the files were read as latin1
}

/**
 * Writes `data` to `file` itself, through a temp file in the same directory: a symbolic link
 * at that name is replaced (rename acts on the name), never written through. For the state
 * directory, where a link planted by someone else must not aim a root run at another file.
 */
export async function writeOwnFile(file: string, data: string | Buffer, mode: number): Promise<void> {
  await replaceFile(file, file, typeof data === 'string' ? Buffer.from(data, 'utf8') : data, null, mode);
}

async function replaceFile(file: string, target: string, data: Buffer, like: string | null, mode: number): Promise<void> {
  const temp = tempName(target);
  try {
    const handle = await open(temp, 'wx', like === null ? mode : 0o600); // O_EXCL: never through a link
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    if (like !== null) await copyOwnership(like, temp);
    await rename(temp, target);
    await syncDirectory(path.dirname(target));
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw writeError(error, file);
  }
}

/**
 * A directory smtpguard keeps files in (--state-dir, the lock file's directory):
 * created when missing; anything else there is an error naming it.
 */
export async function ensureDirectory(dir: string, what: string, option: string): Promise<void> {
  const info = await stat(dir).catch((error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? null : Promise.reject(error)));
  if (info !== null && !info.isDirectory()) {
    throw new SmtpguardError(`${what} ${dir} is not a directory`, { hint: `move the file away, or point ${option} at a directory` });
  }
  if (info === null) {
    try {
      await mkdir(dir, { recursive: true, mode: 0o755 });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const why = code === 'ENOTDIR' || code === 'EEXIST' ? 'a part of its path is a file' : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : (error as Error).message;
      throw new SmtpguardError(`cannot create ${what} ${dir}: ${why}`, { hint: `run as root, or point ${option} at a writable place`, cause: error });
    }
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
