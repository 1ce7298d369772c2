/**
 * Sources (edge): which log files to read, in which order, and their bytes.
 * Knows about globs, rotation suffixes, gzip, stdin, and the errors the file
 * system gives; knows nothing about log lines.
 */
import { constants as zlibConstants, createGunzip, gunzipSync } from 'node:zlib';
import { constants, read, readSync, type Stats } from 'node:fs';
import { once } from 'node:events';
import { lstat, open, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { SmtpguardError } from '../errors.js';
import type { Warn } from '../warn.js';
import type { LogScanner } from './scan.js';

export const STDIN = '-';

export interface LogSource {
  /** As the user or the glob gave it; `-` for standard input. */
  path: string;
  /** Files of one rotated log (`mail.log`, `mail.log.1`, `mail.log.2.gz`): their counts add up. */
  family: string;
  /**
   * Families that hold copies of the same syslog lines (`mail.log`, `mail.info`,
   * `mail.warn`, `mail.err` in one directory): an event found in several counts once.
   */
  group: string;
}

const COMPRESSED_OTHER = /\.(?:xz|bz2|zst|lz4|lzma|Z)$/;
const ROTATION = /(?:\.(\d+)|-(\d{8}(?:-?\d{6})?))$/;
const SYSLOG_SEVERITY_SPLIT = /^mail\.(?:log|info|warn|err)$/;
/** The families of a severity split, widest first: mail.log has every line the others have. */
const WIDEST_FIRST = ['mail.log', 'mail.info', 'mail.warn', 'mail.err'];

/**
 * One family per group: the widest of a severity split (mail.log before mail.info, mail.warn,
 * mail.err), whose lines hold the others'. What a follower reads: its tail adds to one family's
 * counts, and a group read as the max of its families would count a line twice that the other
 * family's full read already had.
 */
export function widestFamilies(sources: readonly LogSource[]): LogSource[] {
  const chosen = new Map<string, string>();
  for (const s of sources) {
    const other = chosen.get(s.group);
    if (other === undefined || familyRank(s.family) < familyRank(other)) chosen.set(s.group, s.family);
  }
  return sources.filter((s) => chosen.get(s.group) === s.family);
}

/** Where a family stands in a severity split: 0 for mail.log (the widest); the same for every family outside one. */
export function familyRank(family: string): number {
  const at = WIDEST_FIRST.indexOf(path.basename(family));
  return at === -1 ? WIDEST_FIRST.length : at;
}

/** `mail.log.2.gz` -> { stem: 'mail.log', age: ... }: what a file is a rotation of, and how old it is. */
export function parseRotation(fileName: string): { stem: string; number?: number; date?: string } {
  const plain = fileName.endsWith('.gz') ? fileName.slice(0, -3) : fileName;
  const m = ROTATION.exec(plain);
  if (m === null) return { stem: plain };
  const stem = plain.slice(0, m.index);
  return m[1] !== undefined ? { stem, number: Number(m[1]) } : { stem, date: m[2]!.replace('-', '') };
}

/**
 * Orders paths family by family, oldest file first: dated rotations by date,
 * then numbered ones from the highest number down (`.4.gz`, `.3.gz`, `.2.gz`, `.1`),
 * then the live file. Pure.
 */
export function orderLogPaths(paths: readonly string[]): LogSource[] {
  const entries = paths.map((p) => {
    if (p === STDIN) return { source: { path: p, family: STDIN, group: STDIN }, rank: [0, ''] as const };
    const dir = path.dirname(path.resolve(p));
    const rotation = parseRotation(path.basename(p));
    const family = path.join(dir, rotation.stem);
    const group = SYSLOG_SEVERITY_SPLIT.test(rotation.stem) ? path.join(dir, 'mail.*') : family;
    const rank =
      rotation.date !== undefined
        ? ([0, rotation.date] as const)
        : rotation.number !== undefined
          ? ([1, String(1e9 - rotation.number).padStart(10, '0')] as const)
          : ([2, ''] as const);
    return { source: { path: p, family, group }, rank };
  });
  entries.sort(
    (a, b) =>
      cmp(a.source.family, b.source.family) || a.rank[0] - b.rank[0] || cmp(a.rank[1], b.rank[1]),
  );
  return entries.map((e) => e.source);
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Expands `--log` values (paths or globs, `-` for stdin) into ordered sources.
 * A value that matches nothing is an error, except on the default paths, where only
 * finding no log at all is one.
 */
export async function findLogSources(
  patterns: readonly string[],
  usingDefaults: boolean,
  warn: Warn,
): Promise<LogSource[]> {
  const found = new Map<string, string>(); // resolved path -> path as shown
  for (const pattern of patterns) {
    if (pattern === STDIN) {
      found.set(STDIN, STDIN);
      continue;
    }
    const matches = await expand(pattern, warn);
    if (matches.length === 0 && !usingDefaults) {
      throw new SmtpguardError(`no log file matches --log ${pattern}`, {
        hint: 'check the path (quote globs so the shell does not expand them), or pass --log - to read stdin',
      });
    }
    for (const match of matches) {
      if (!found.has(path.resolve(match))) found.set(path.resolve(match), match);
    }
  }
  if (found.size === 0) {
    throw new SmtpguardError(`no mail log found at ${patterns.join(', ')}`, {
      hint: 'pass --log PATH (or a quoted glob such as --log "/var/log/mail.log*"); on a journald-only host, Postfix logs to the journal',
    });
  }
  return orderLogPaths([...found.values()]);
}

async function expand(pattern: string, warn: Warn): Promise<string[]> {
  // A path that exists is taken literally, even when it contains glob characters.
  const stat = await lstat(pattern).then((s) => (s.isSymbolicLink() ? statFile(pattern) : s), () => null);
  if (stat !== null) {
    if (stat.isDirectory()) {
      throw new SmtpguardError(`--log ${pattern} is a directory`, {
        hint: `pass the files, for example --log "${path.join(pattern, 'mail.log*')}"`,
      });
    }
    if (!stat.isFile()) throw notRegular(pattern, stat);
    return [pattern];
  }
  const { default: fg } = await import('fast-glob');
  if (!fg.isDynamicPattern(pattern)) return [];
  const matches = await fg(pattern, { onlyFiles: true, dot: true, suppressErrors: true });
  return matches.filter((p) => {
    if (!COMPRESSED_OTHER.test(p)) return true;
    warn(`${p} is compressed with something other than gzip; skipped`);
    return false;
  });
}

async function statFile(file: string): Promise<Stats | null> {
  return stat(file).catch(() => null);
}

/** A FIFO, device or socket named as a log would hang or flood the run: refused, by name. */
function notRegular(file: string, s: Stats): SmtpguardError {
  const what = s.isFIFO() ? 'a FIFO (named pipe)' : s.isCharacterDevice() ? 'a character device' : s.isBlockDevice() ? 'a block device' : s.isSocket() ? 'a socket' : 'not a regular file';
  return new SmtpguardError(`--log ${file} is ${what}`, { hint: 'name regular log files (plain or gzip); to read a stream, pipe it in with --log -' });
}

/** A log opened for reading: its content size and head, and its bytes from any offset. */
export interface OpenLog {
  /** The open file's descriptor (worker threads read through it too); null for stdin. */
  fd: number | null;
  /** The file's inode and device (0 for stdin): a follower knows the file again by them. */
  ino: number;
  dev: number;
  gzip: boolean;
  /** Bytes of log text: the file size, or for gzip the size its trailer records. */
  contentSize: number;
  /** The first `length` bytes of log text (fewer when there are fewer). */
  head(length: number): Promise<Buffer>;
  /** Feeds the log text from offset `from` to its end into `scanner` (without ending it). */
  feed(scanner: LogScanner, from: number, warn: Warn): Promise<void>;
  close(): Promise<void>;
}

/**
 * Opens one source. A file that vanished since it was listed (logrotate at work) is
 * skipped with a warning: null.
 */
export async function openLog(source: LogSource, warn: Warn, stdin: Readable): Promise<OpenLog | null> {
  if (source.path === STDIN) {
    return {
      fd: null,
      ino: 0,
      dev: 0,
      gzip: false,
      contentSize: NaN,
      head: async () => Buffer.alloc(0),
      feed: async (scanner) => {
        for await (const chunk of stdin) scanner.push(chunk as Buffer);
      },
      close: async () => undefined,
    };
  }
  let file: FileHandle;
  try {
    // O_NONBLOCK: a FIFO put in a log's place must not hang the run (it is refused just below)
    file = await open(source.path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    if (errorCode(error) === 'ENOENT') {
      warn(`${source.path} disappeared before it could be read (rotated?); skipped`);
      return null;
    }
    throw translateFsError(error, source.path);
  }
  try {
    const stat = await file.stat();
    if (!stat.isFile()) throw notRegular(source.path, stat);
    const { size } = stat;
    const magic = Buffer.alloc(2);
    const { bytesRead } = await file.read(magic, 0, 2, 0);
    const gzip = bytesRead === 2 && magic[0] === 0x1f && magic[1] === 0x8b;
    if (!gzip) {
      return {
        fd: file.fd,
        ino: stat.ino,
        dev: stat.dev,
        gzip,
        contentSize: size,
        head: async (length) => {
          const head = Buffer.alloc(Math.min(length, size));
          const { bytesRead: n } = await file.read(head, 0, head.length, 0);
          return head.subarray(0, n);
        },
        feed: async (scanner, from) => guard(source.path, () => readPlain(file.fd, scanner, from, Infinity)),
        close: () => file.close().catch(() => undefined),
      };
    }
    const trailer = Buffer.alloc(4);
    await file.read(trailer, 0, 4, Math.max(0, size - 4));
    return {
      fd: file.fd,
      ino: stat.ino,
      dev: stat.dev,
      gzip,
      contentSize: trailer.readUInt32LE(0), // ISIZE: the text size modulo 4 GiB
      head: async (length) => {
        const start = Buffer.alloc(Math.min(size, 1 << 16));
        await file.read(start, 0, start.length, 0);
        try {
          return gunzipSync(start, { finishFlush: zlibConstants.Z_SYNC_FLUSH }).subarray(0, length);
        } catch {
          return Buffer.alloc(0);
        }
      },
      feed: async (scanner, from, warnFeed) => guard(source.path, () => readGzip(file.fd, source.path, scanner, warnFeed, from)),
      close: () => file.close().catch(() => undefined),
    };
  } catch (error) {
    await file.close().catch(() => undefined);
    throw translateFsError(error, source.path);
  }
}

export async function guard(path: string, read: () => Promise<void> | void): Promise<void> {
  try {
    await read();
  } catch (error) {
    throw translateFsError(error, path);
  }
}

/**
 * Text [from, to) of a plain file into the scanner. readSync: blocks come from the page
 * cache at memcpy speed, and a round trip through libuv's thread pool per block costs
 * more than it saves.
 */
export function readPlain(fd: number, scanner: LogScanner, from: number, to: number): void {
  let position = from;
  while (position < to) {
    const space = scanner.space();
    const bytesRead = readSync(fd, space, 0, Math.min(space.length, to - position), position);
    if (bytesRead === 0) break;
    position += bytesRead;
    scanner.commit(bytesRead);
  }
}

/**
 * Decompresses from the start, feeding the scanner from text offset `from` on. The
 * compressed bytes come from positional reads on `fd`, which is never closed here: the
 * descriptor belongs to whoever opened the log (and may be shared with a worker thread).
 */
export async function readGzip(fd: number, shownPath: string, scanner: LogScanner, warn: Warn, from: number): Promise<void> {
  const gunzip = createGunzip({ chunkSize: 256 << 10 });
  const stop = new AbortController();
  const feeding = (async () => {
    let position = 0;
    try {
      for (;;) {
        const chunk = Buffer.allocUnsafe(128 << 10);
        const bytesRead = await new Promise<number>((resolve, reject) => read(fd, chunk, 0, chunk.length, position, (error, n) => (error ? reject(error) : resolve(n))));
        if (bytesRead === 0) break;
        position += bytesRead;
        if (!gunzip.write(chunk.subarray(0, bytesRead))) await once(gunzip, 'drain', { signal: stop.signal });
      }
      gunzip.end();
    } catch (error) {
      gunzip.destroy(error as Error);
    }
  })();
  let skip = from;
  let seen = 0;
  try {
    // each piece as zlib made it ('data'): an async iterator's read() joins the pieces waiting into one new buffer
    await new Promise<void>((resolve, reject) => {
      gunzip.on('data', (buffer: Buffer) => {
        try {
          seen += buffer.length;
          if (skip >= buffer.length) {
            skip -= buffer.length;
            return;
          }
          scanner.push(skip > 0 ? buffer.subarray(skip) : buffer);
          skip = 0;
        } catch (error) {
          gunzip.destroy(error as Error);
        }
      });
      gunzip.once('end', resolve);
      gunzip.once('error', reject);
    });
  } catch (error) {
    if (!isZlibError(error)) throw error;
    warn(`${shownPath} is not valid gzip after ${seen} bytes of text (${(error as Error).message}); counted the lines before that`);
  } finally {
    stop.abort(); // the feeder may wait for a drain that will not come
    gunzip.destroy();
    await feeding.catch(() => undefined);
  }
}

/** The offset of the first line that starts at or after `at` (the file size if none does). */
export function lineStartAtOrAfter(fd: number, at: number, size: number): number {
  const buffer = Buffer.alloc(1 << 16);
  for (let position = Math.max(0, at - 1); position < size; position += buffer.length) {
    const n = readSync(fd, buffer, 0, buffer.length, position);
    if (n === 0) break;
    const nl = buffer.subarray(0, n).indexOf(0x0a);
    if (nl !== -1) return position + nl + 1;
  }
  return size;
}

function isZlibError(error: unknown): boolean {
  const code = errorCode(error);
  return code !== undefined && code.startsWith('Z_');
}

function errorCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : undefined;
}

/** EACCES & co. -> one line that names the file and says what to do. */
export function translateFsError(error: unknown, file: string, hint = 'run as root, or as a member of the group that owns the log (adm on Debian)'): unknown {
  if (error instanceof SmtpguardError) return error;
  const code = errorCode(error);
  switch (code) {
    case 'EACCES':
    case 'EPERM':
      return new SmtpguardError(`cannot read ${file}: permission denied`, { hint, cause: error });
    case 'EISDIR':
      return new SmtpguardError(`${file} is a directory`, { hint: 'pass log files, not directories', cause: error });
    case 'EIO':
      return new SmtpguardError(`cannot read ${file}: input/output error`, { hint: 'check the disk', cause: error });
    default:
      return error;
  }
}
