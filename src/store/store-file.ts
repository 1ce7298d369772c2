/**
 * Files in the state directory (edge): what smtpguard keeps between runs. Read and written
 * by name, never through a symbolic link (a root run must not be aimed at /etc/shadow by a
 * link left in its place). A file there that is not a regular file, or does not validate,
 * is moved aside as `NAME.corrupt-TIMESTAMP` with a warning, and the store starts over: no
 * state file can make every run fail.
 */
import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
import { lstat, open, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Warn } from '../warn.js';


const READ = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** What a store file is when it is not a regular file, or null when it is one (or is missing). */
async function notRegular(file: string): Promise<string | null> {
  const info = await lstat(file).catch(() => null);
  if (info === null || info.isFile()) return null;
  return info.isSymbolicLink() ? 'a symbolic link' : info.isDirectory() ? 'a directory' : info.isFIFO() ? 'a FIFO' : info.isSocket() ? 'a socket' : 'a device';
}

/** `FILE.corrupt-20261206T091500Z`: moves FILE aside (its content kept for a look); the new name, or null when it could not be moved. */
async function moveAside(file: string, now = new Date()): Promise<string | null> {
  const stamp = `${file}${CORRUPT}${now.toISOString().replace(/[-:]|\.\d+/g, '')}`;
  let aside: string | null = null;
  // a name of its own: two files set aside in one second must not meet (a directory cannot replace a file)
  for (let n = 0; n < 10 && aside === null; n++) {
    const name = n === 0 ? stamp : `${stamp}-${n}`;
    if ((await lstat(name).catch(() => null)) !== null) continue;
    if (await rename(file, name).then(() => true, () => false)) aside = name;
  }
  if (aside === null) return null;
  // the newest few are kept for a look; a file that goes bad on every run must not fill the disk
  const dir = path.dirname(file);
  const prefix = path.basename(file) + CORRUPT;
  const older = (await readdir(dir).catch(() => [] as string[])).filter((f) => f.startsWith(prefix)).sort().slice(0, -KEEP_ASIDE);
  for (const f of older) await rm(path.join(dir, f), { recursive: true, force: true }).catch(() => undefined);
  return aside;
}

const CORRUPT = '.corrupt-';
const KEEP_ASIDE = 3;

/** The bytes of a store file, opened without following a link; throws when it is not a regular file. */
export async function readStoreBytes(file: string): Promise<Buffer> {
  const handle = await open(file, READ);
  try {
    if (!(await handle.stat()).isFile()) throw Object.assign(new Error(`${file} is not a regular file`), { code: 'ENOTREG' });
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

/** readStoreBytes, synchronously (a tally segment read in the middle of a merge). */
export function readStoreBytesSync(file: string): Buffer {
  const fd = openSync(file, READ);
  try {
    if (!fstatSync(fd).isFile()) throw Object.assign(new Error(`${file} is not a regular file`), { code: 'ENOTREG' });
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}

export interface StoreRead<T> {
  /** Turns the text into the store's value; throws (a message saying what is wrong) when it does not validate. */
  parse: (text: string) => T;
  warn: Warn;
  /** What follows when the file is set aside, e.g. "ban times start over from what the logs show". */
  consequence: string;
  /** A reader that changes nothing (status): a bad file is warned about but left where it is. */
  keep?: boolean;
  /** The value to start over from when the file was set aside (what else the state dir knows), instead of none. */
  rebuild?: () => Promise<T | null>;
}

/**
 * A store's value, or null when there is none: missing, unreadable for this user (an
 * unprivileged scan), or set aside (not a regular file, or not valid: warned about).
 */
export async function readStore<T>(file: string, how: StoreRead<T>): Promise<T | null> {
  const setAside = async (what: string): Promise<T | null> => {
    const aside = how.keep === true ? null : await moveAside(file);
    how.warn(`${file} ${what}: ${aside === null ? 'not read' : `moved aside as ${aside}`}; ${how.consequence}`);
    return how.rebuild === undefined ? null : how.rebuild();
  };
  const kind = await notRegular(file);
  if (kind !== null) return setAside(`is ${kind}, not a regular file`);
  let text: string;
  try {
    text = (await readStoreBytes(file)).toString('utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? '';
    if (!['ENOENT', 'EACCES', 'EPERM'].includes(code)) how.warn(`cannot read ${file} (${(error as Error).message}); ${how.consequence}`);
    return null;
  }
  let value: T;
  try {
    value = how.parse(text);
  } catch (error) {
    return setAside(`is not valid (${(error as Error).message})`);
  }
  return value;
}

/** The latest time a Date can hold (ms): a store's time past it cannot be printed, so it is not valid. */
export const MAX_TIME = 8.64e15;

export const isTime = (t: unknown): t is number => typeof t === 'number' && Number.isFinite(t) && Math.abs(t) <= MAX_TIME;
