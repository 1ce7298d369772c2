/**
 * The scan state (edge): what earlier runs learned from each log, so a cron run reads
 * only what was written since. A log is known by its content, not its name: the hash
 * of its first bytes, so `mail.log` is found again as `mail.log.1` and, decompressed,
 * as `mail.log.2.gz`. Per log: how many bytes of text were read (up to the last
 * complete line), its line and event counts, and its tally (per address, kind and
 * minute, so any --window can be cut from it).
 *
 * The index (scan-state.json) is small; each log's tally is a file of its own beside
 * it, read only when the window needs that log. Everything is written atomically, the
 * tallies before the index that names them; a state that cannot be read or is not
 * valid is discarded with a warning, and the logs are read again from the start.
 */
import { createHash } from 'node:crypto';
import { mkdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import { readStore, readStoreBytes, readStoreBytesSync } from './store-file.js';
import { writeOwnFile } from './atomic.js';
import { minutesOverlap, Tally, type TimeWindow } from '../count/tally.js';
import { deserializeTally, serializeDay, tallyDays, TALLY_FORMAT } from '../count/codec.js';
import type { Warn } from '../warn.js';

export const HEAD_BYTES = 4096;
/** The index and the tally files it names change together: the codec's format is the state's version. */
const VERSION = TALLY_FORMAT;
/** The time zone year-less timestamps are read in. */
const ZONE = zoneKey();

/**
 * The local offset at each week of the year: what reading a year-less stamp depends on, the
 * same whether the zone came from TZ or /etc/localtime, and no ICU start-up (Intl costs a cron
 * run ~15 ms). Offsets that change are kept with the week they change in.
 */
function zoneKey(): string {
  const parts: string[] = [];
  let last = NaN;
  for (let week = 0; week < 53; week++) {
    const offset = new Date(2026, 0, 1 + 7 * week).getTimezoneOffset();
    if (offset !== last) parts.push(`${week}:${offset}`);
    last = offset;
  }
  return parts.join(',');
}
const TALLY_FILE = /^tally-[0-9a-f]{24}-\d+-\d+\.bin$/;
/** What versions before 6 named a log's one tally file. */
const OLD_TALLY_FILE = /^tally-[0-9a-f]{24}-\d+\.bin$/;

/** One UTC day of a log's tally: a file beside the index, and its first and last event (ms). */
export interface Segment {
  day: number;
  file: string;
  first: number;
  last: number;
}

export interface StateEntry {
  /** sha256 of the first `headLength` bytes of text. */
  head: string;
  headLength: number;
  /** Bytes of text read: always the end of a complete line. */
  size: number;
  lines: number;
  events: number;
  /** Its tally, one file per UTC day with events (codec.ts serializeDay), oldest first. */
  segments: Segment[];
  /** Earliest and latest event in it (ms), or null: a log outside the window is not even decoded. */
  first: number | null;
  last: number | null;
  /** For the journal: the cursor of the last entry read. */
  cursor?: string;
}

interface StateFile {
  version: number;
  /** Year-less timestamps were read as local time of this zone, with this year of --now: another zone or year reads them again. */
  year: number;
  zone: string;
  /** The latest --now a run used: a run "before" it reads everything again (future lines may have been read as last year's). */
  now: number;
  entries: StateEntry[];
}

export const headHash = (head: Buffer): string => createHash('sha256').update(head).digest('hex');

export class ScanState {
  /** Tallies of new or grown logs, written by save(). */
  private readonly staged = new Map<string, Buffer>();

  private constructor(
    readonly file: string,
    private readonly now: Date,
    readonly entries: StateEntry[],
    /** Tally files of a state that was set aside (older version, another zone or year): save() deletes them. */
    private readonly discarded: readonly string[] = [],
  ) {}

  static async load(dir: string, now: Date, warn: Warn): Promise<ScanState> {
    const file = path.join(dir, 'scan-state.json');
    // missing: a first run; not readable: an unprivileged scan, which reads in full, quietly
    const state = await readStore(file, {
      parse: (text) => {
        const state = JSON.parse(text) as StateFile;
        // an older smtpguard's state: read the logs again, quietly (an upgrade is not a problem)
        const older = Number.isInteger(state?.version) && state.version < VERSION && Array.isArray(state.entries);
        if (older && state.entries.every((e) => typeof e?.head === 'string' && typeof (e as unknown as { tally?: unknown }).tally === 'string')) {
          return { older: state.entries.map((e) => (e as unknown as { tally: string }).tally).filter((f) => OLD_TALLY_FILE.test(f)) };
        }
        if (older && state.version >= 6) return { older: state.entries.filter(isEntry).flatMap((e) => e.segments.map((s) => s.file)) };
        if (state?.version !== VERSION || !Array.isArray(state.entries) || !state.entries.every(isEntry)) throw new Error('not a scan state');
        return { state };
      },
      warn,
      consequence: 'reading all logs from the start',
    });
    if (state === null) return new ScanState(file, now, []);
    if ('older' in state) return new ScanState(file, now, [], state.older);
    const same = state.state.year === now.getFullYear() && state.state.zone === ZONE && typeof state.state.now === 'number' && state.state.now <= now.getTime();
    return same ? new ScanState(file, now, state.state.entries) : new ScanState(file, now, [], state.state.entries.flatMap((e) => e.segments.map((s) => s.file)));
  }

  /**
   * The tally of a known log in `window`: only the day segments that overlap it are read,
   * each from the window's first minute on (so it cannot be saved again); null (with a
   * warning) when a file is gone or not valid. `wholeDays`: the days it holds every minute of
   * (a segment that starts inside the window), which segmentsAfter can write from it again.
   */
  async readWindow(entry: StateEntry, window: TimeWindow, warn: Warn): Promise<{ tally: Tally; wholeDays: Set<number> } | null> {
    let tally: Tally | null = null;
    const wholeDays = new Set<number>();
    let file = this.file;
    try {
      for (const segment of entry.segments) {
        if (!minutesOverlap(segment.first, segment.last, window)) continue;
        file = path.join(path.dirname(this.file), segment.file);
        const part = deserializeTally(await readStoreBytes(file), window.from);
        if (!part.partial) wholeDays.add(segment.day);
        if (tally === null) tally = part;
        else tally.addAll(part);
      }
    } catch (error) {
      this.warnOnce(warn, file, `the scan state's tally ${file} is not valid (${(error as Error).message}); reading this log from the start`);
      return null;
    }
    return { tally: tally ?? new Tally(), wholeDays };
  }

  /** Files already warned about: a bad tally file is said once a run, by name. */
  private readonly warned = new Set<string>();

  private warnOnce(warn: Warn, file: string, message: string): void {
    if (this.warned.has(file)) return;
    this.warned.add(file);
    warn(message);
  }

  /**
   * The day segments of a log after `fresh` (what was read this time) is added to `known`
   * (its entry so far, or undefined): days `fresh` does not touch keep their files; a day
   * it touches is written anew, from `merged` when it holds that whole day already (the
   * state's window with `fresh` added: readWindow's `wholeDays`) and kept every username by
   * name, else by reading the day's file and adding that day of `fresh` to it. Null (with a
   * warning) when a segment to add to cannot be read: the log is then read from the start by
   * the next run.
   */
  segmentsAfter(known: StateEntry | undefined, fresh: Tally, head: string, size: number, warn: Warn, merged: { tally: Tally; wholeDays: ReadonlySet<number> }): Segment[] | null {
    const segments = new Map((known?.segments ?? []).map((s) => [s.day, s]));
    let reading = this.file;
    try {
      for (const day of tallyDays(fresh)) {
        const old = segments.get(day);
        const file = `tally-${head.slice(0, 24)}-${day}-${size}.bin`;
        if (old === undefined) {
          const part = serializeDay(fresh, day);
          this.staged.set(file, part.data);
          segments.set(day, { day, file, first: part.first, last: part.last });
          continue;
        }
        let whole: { data: Buffer; first: number; last: number };
        // no second decode of the day, unless the sum counted a username as OTHER_USERS for names its other days took
        if (merged.wholeDays.has(day) && !merged.tally.usersFolded) whole = serializeDay(merged.tally, day, true);
        else {
          reading = path.join(path.dirname(this.file), old.file);
          const tally = deserializeTally(readStoreBytesSync(reading));
          tally.addAll(deserializeTally(serializeDay(fresh, day).data)); // that day of fresh only: its other days take no username places
          whole = serializeDay(tally, day);
        }
        this.staged.set(file, whole.data);
        segments.set(day, { day, file, first: Math.min(old.first, whole.first), last: Math.max(old.last, whole.last) });
      }
    } catch (error) {
      this.warnOnce(warn, reading, `the scan state's tally ${reading} is not valid (${(error as Error).message}); this log is read from the start next time`);
      return null;
    }
    return [...segments.values()].sort((a, b) => a.day - b.day);
  }

  /** A new entry for a log read this time (its segments from segmentsAfter). */
  entry(fields: Omit<StateEntry, 'segments' | 'first' | 'last'>, segments: Segment[]): StateEntry {
    return { ...fields, segments, first: segments[0]?.first ?? null, last: segments.at(-1)?.last ?? null };
  }

  /** Keeps `entries` (those of the logs read this time) for the next run; drops the other tallies. */
  async save(entries: readonly StateEntry[], warn: Warn): Promise<void> {
    const dir = path.dirname(this.file);
    const state: StateFile = { version: VERSION, year: this.now.getFullYear(), zone: ZONE, now: this.now.getTime(), entries: [...entries] };
    try {
      await mkdir(dir, { recursive: true, mode: 0o755 });
      for (const entry of entries) {
        for (const { file } of entry.segments) {
          const data = this.staged.get(file);
          if (data === undefined) continue;
          await writeOwnFile(path.join(dir, file), data, 0o600);
          this.staged.delete(file); // written: its bytes (tens of MB after a flood) need not outlive the save
        }
      }
      await writeOwnFile(this.file, JSON.stringify(state), 0o600);
      // drop the tallies this run knew and no longer needs; a scan running beside the cron job
      // must not delete the files the other one just wrote
      const keep = new Set(entries.flatMap((e) => e.segments.map((s) => s.file)));
      for (const e of this.entries) for (const { file } of e.segments) if (!keep.has(file)) await unlink(path.join(dir, file)).catch(() => undefined);
      for (const old of this.discarded) if (!keep.has(old)) await unlink(path.join(dir, old)).catch(() => undefined);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? ((error as { cause?: NodeJS.ErrnoException }).cause?.code);
      // an unprivileged `smtpguard scan` cannot write /var/lib/smtpguard: it reads in full each time
      if (code !== 'EACCES' && code !== 'EPERM') warn(`cannot save the scan state ${this.file}: ${(error as Error).message}`);
    }
  }
}

function isEntry(value: unknown): value is StateEntry {
  const e = value as StateEntry;
  return (
    typeof e === 'object' && e !== null && typeof e.head === 'string' && Array.isArray(e.segments) && e.segments.every(isSegment) &&
    [e.headLength, e.size, e.lines, e.events].every((n) => Number.isInteger(n) && n >= 0) &&
    [e.first, e.last].every((t) => t === null || typeof t === 'number') &&
    (e.cursor === undefined || typeof e.cursor === 'string')
  );
}

function isSegment(value: unknown): value is Segment {
  const s = value as Segment;
  return typeof s === 'object' && s !== null && Number.isInteger(s.day) && typeof s.file === 'string' && TALLY_FILE.test(s.file) && Number.isFinite(s.first) && Number.isFinite(s.last);
}

