/**
 * The scan engine: find the logs, read each into its own tally, and combine them
 * (files of one rotated log add up; mail.log and mail.warn copies count once).
 * Used by `scan` and, later, `run`.
 */
import type { Readable } from 'node:stream';
import { LineParser } from '../read/parse.js';
import { LogScanner } from '../read/scan.js';
import { runJobs, THREADS, type JobResult, type ScanJob } from './jobs.js';
import type { JournalSource } from '../read/journal.js';
import { familyRank, findLogSources, lineStartAtOrAfter, openLog, widestFamilies, type LogSource, type OpenLog } from '../read/sources.js';
import type { Warn } from '../warn.js';
import { HEAD_BYTES, headHash, ScanState, type StateEntry } from '../store/scan-state.js';
import { minutesOverlap, Tally, type TimeWindow } from '../count/tally.js';
import { EVENT_KINDS, type EventKind } from '../read/kinds.js';
import type { ProgressHook } from '../progress.js';

export interface SourceReport {
  path: string;
  /** Bytes of log text read (after decompression). */
  bytes: number;
  lines: number;
  events: number;
}

export interface Collected {
  tally: Tally;
  sources: SourceReport[];
  /** Events this run read from the logs (not what the state already knew), per kind: for the metrics' counters. */
  readByKind: Record<EventKind, number>;
  /** Wall-clock milliseconds spent finding and reading the logs. */
  elapsedMs: number;
  /** With `follow`: where each live log was read to (its last complete line), to read on from. */
  live: LiveLog[];
  /** With `follow` and the journal: the cursor of the last entry counted (null: none). */
  journalCursor: string | null;
}

/** The newest plain file of a log family, the one syslog still writes: a follower reads on from `offset` while the inode is `ino`. */
export interface LiveLog {
  path: string;
  family: string;
  group: string;
  ino: number;
  dev: number;
  offset: number;
}

export interface CollectOptions {
  /** Progress on a terminal: bytes read of the total (the journal: entries). */
  progress?: ProgressHook;
  logs: readonly string[];
  usingDefaultLogs: boolean;
  now: Date;
  warn: Warn;
  stdin: Readable;
  /** Where the scan state lives; null: read every log in full. */
  stateDir: string | null;
  /** Keep what was learned for the next run (not in a dry run). */
  saveState: boolean;
  /** Only events in this window are asked for: a log known to hold none is not decoded. */
  window: TimeWindow;
  /** When to split a log and when to start a worker (tests make both small). */
  tuning?: Tuning;
  /** Also read Postfix's journal. */
  journal?: JournalSource | null;
  /** For a follower: the unterminated last line of a live log is left for it to read whole (not counted now), and `live` says where each one ends. */
  follow?: boolean;
}

interface FileResult {
  tally: Tally;
  report: Omit<SourceReport, 'path'>;
  /** Events read this time (not known from the state before), per kind (EVENT_KINDS order); absent: none. */
  read?: number[];
  /** What the state keeps of this log; null for stdin or without state. */
  entry: StateEntry | null;
  /** The journal: the cursor of its last entry read. */
  cursor?: string | null;
}

/** A log to read, from where, and what is already known of it. */
interface Reading {
  source: LogSource;
  log: OpenLog;
  head: Buffer;
  /** Its window's events as the state knew them (the state's days in the window only). */
  known: Tally;
  /** The days `known` holds every minute of (ScanState.readWindow). */
  wholeDays: ReadonlySet<number>;
  /** The state's entry it reads on from, if any. */
  match: StateEntry | undefined;
  base: { size: number; lines: number; events: number };
  /** With the state: keep an entry for it. */
  keep: boolean;
  /** The newest plain file of its family, the one syslog still writes: its unterminated last line waits for the next run. */
  live: boolean;
  jobs: number[];
}

export interface Tuning {
  /** A plain log with more than this left to read is split in two, one half per core. */
  splitBytes: number;
  /** Enough text to read for a worker thread to pay for its start. */
  parallelMinBytes: number;
}

/** What a scan worker reads in the time it takes to start (~50 ms at ~150 MB/s). */
const HEAD_START_BYTES = 8 << 20;

const TUNING: Tuning = { splitBytes: 64 << 20, parallelMinBytes: 48 << 20 };

export async function collectEvents(options: CollectOptions): Promise<Collected> {
  const started = performance.now();
  const parser = new LineParser(options.now);
  const journal = options.journal ?? null;
  // reading the journal instead of files: no file at all is no error then
  let sources = options.logs.length === 0 ? [] : await findLogSources(options.logs, options.usingDefaultLogs && journal === null, options.warn).catch((error: unknown) => {
    if (journal !== null && options.usingDefaultLogs) return [];
    throw error;
  });
  // a follower counts one family per group (sources.ts widestFamilies): its tail adds to that family only
  if (options.follow === true) sources = widestFamilies(sources);
  const state = options.stateDir === null ? null : await ScanState.load(options.stateDir, options.now, options.warn);
  const done = new Map<LogSource, FileResult>();
  const readings: Reading[] = [];
  const live: LiveLog[] = [];
  const jobs: ScanJob[] = [];
  const open: OpenLog[] = [];
  try {
    // 1. what each log needs: nothing (known whole), the text after what is known, or all of it
    const newest = new Map(sources.map((source) => [source.family, source])); // sources come oldest first
    for (const source of sources) {
      const log = await openLog(source, options.warn, options.stdin);
      if (log === null) continue;
      open.push(log);
      if (log.fd === null) {
        done.set(source, await readStdin(log, parser, options.warn, options.progress));
        continue;
      }
      const isNewest = newest.get(source.family) === source;
      const reading = state === null ? fresh(source, log, isNewest && options.follow === true) : await fromState(source, log, state, options.warn, options.window, isNewest);
      if ('report' in reading) {
        done.set(source, reading);
        // known whole: a follower reads on from its end
        if (options.follow === true && isNewest && !log.gzip) live.push(liveLog(source, log, reading.report.bytes));
        continue;
      }
      reading.jobs = planJobs(reading, log.fd, jobs, options.tuning ?? TUNING);
      readings.push(reading);
    }
    // 2. read, on both cores when there is enough
    const results = await runJobs(jobs, options.now, (options.tuning ?? TUNING).parallelMinBytes, options.progress);
    // 3. put each log's pieces together
    for (const reading of readings) {
      const result = finish(reading, reading.jobs.map((i) => results[i]!), parser, state, options.warn, options.follow === true);
      done.set(reading.source, result);
      if (options.follow === true && reading.live) live.push(liveLog(reading.source, reading.log, result.report.bytes));
    }
  } finally {
    await Promise.all(open.map((log) => log.close()));
  }

  const reports: SourceReport[] = [];
  const entries: StateEntry[] = [];
  const readByKind = Object.fromEntries(EVENT_KINDS.map((k) => [k, 0])) as Record<EventKind, number>;
  const countRead = (read: number[] | undefined) => {
    if (read !== undefined) for (const [i, kind] of EVENT_KINDS.entries()) readByKind[kind] += read[i]!;
  };
  const families = new Map<string, { group: string; tally: Tally }>();
  for (const source of sources) {
    const result = done.get(source);
    if (result === undefined) continue; // vanished
    if (result.entry !== null) entries.push(result.entry);
    countRead(result.read);
    reports.push({ path: source.path, ...result.report });
    addToFamily(families, source, result.tally);
  }
  let journalCursor: string | null = null;
  if (journal !== null) {
    const { journalName } = await import('../read/journal.js'); // execa loads only on journal hosts
    const name = journalName(journal);
    const result = await readJournalWithState(journal, parser, state, options.warn, options.window, options.progress);
    journalCursor = result.cursor ?? null;
    if (result.entry !== null) entries.push(result.entry);
    countRead(result.read);
    reports.push({ path: name, ...result.report });
    addToFamily(families, { path: name, family: name, group: name }, result.tally);
  }
  const changed = state !== null && (entries.length !== state.entries.length || entries.some((e) => !state.entries.includes(e)));
  if (state !== null && options.saveState && changed) await state.save(entries, options.warn);
  return { tally: combineFamilies(families), sources: reports, readByKind, elapsedMs: performance.now() - started, live, journalCursor };
}

/** The journal: after the cursor the state keeps (all of it without state, or when the cursor is gone). */
async function readJournalWithState(journal: JournalSource, parser: LineParser, state: ScanState | null, warn: Warn, window: TimeWindow, progress?: ProgressHook): Promise<FileResult> {
  const { cursorLineSize, journalName, readJournal } = await import('../read/journal.js');
  const head = headHash(Buffer.from(`journal\0${journalName(journal)}`));
  let match = state?.entries.find((e) => e.head === head && e.cursor !== undefined);
  let known = new Tally();
  let wholeDays: ReadonlySet<number> = new Set();
  if (match !== undefined && state !== null) {
    const read = await state.readWindow(match, window, warn);
    if (read === null) match = undefined;
    else ({ tally: known, wholeDays } = read);
  }
  let fresh = new Tally();
  let scanner = new LogScanner(parser, fresh);
  progress?.watch(() => ({ label: 'reading the journal', done: scanner.counters.lines, total: null, unit: 'entries' }));
  let read = await readJournal(journal, scanner, match?.cursor ?? null);
  if (!read.cursorValid) {
    // the journal no longer holds that entry (vacuumed): read it all again
    match = undefined;
    known = new Tally();
    wholeDays = new Set();
    fresh = new Tally();
    scanner = new LogScanner(parser, fresh);
    read = await readJournal(journal, scanner, null);
  }
  const counters = scanner.end();
  progress?.watch(null);
  const cursorBytes = cursorLineSize(read.cursor);
  const report = {
    bytes: (match?.size ?? 0) + counters.bytes - cursorBytes,
    lines: (match?.lines ?? 0) + counters.lines - (read.cursor === null ? 0 : 1),
    events: (match?.events ?? 0) + counters.events,
  };
  const readKinds = scanner.kinds;
  known.addAll(fresh);
  const segments = state === null ? null : state.segmentsAfter(match, fresh, head, report.bytes, warn, { tally: known, wholeDays });
  const cursor = read.cursor ?? match?.cursor ?? null;
  if (state === null) return { tally: known, report, entry: null, read: readKinds, cursor };
  // nothing new (journalctl prints the last cursor again, or none)
  if (match !== undefined && (read.cursor === null || read.cursor === match.cursor)) return { tally: known, report: { bytes: match.size, lines: match.lines, events: match.events }, entry: match, cursor };
  if (segments === null) return { tally: known, report, entry: null, read: readKinds, cursor };
  const entry = state.entry({ head, headLength: 0, size: report.bytes, lines: report.lines, events: report.events, ...(read.cursor === null ? {} : { cursor: read.cursor }) }, segments);
  return { tally: known, report, entry, read: readKinds, cursor };
}

async function readStdin(log: OpenLog, parser: LineParser, warn: Warn, progress?: ProgressHook): Promise<FileResult> {
  const tally = new Tally();
  const scanner = new LogScanner(parser, tally);
  progress?.watch(() => ({ label: 'reading standard input', done: scanner.counters.bytes, total: null, unit: 'bytes' }));
  await log.feed(scanner, 0, warn);
  progress?.watch(null);
  const { bytes, lines, events } = scanner.end();
  return { tally, report: { bytes, lines, events }, entry: null, read: scanner.kinds };
}

function fresh(source: LogSource, log: OpenLog, live: boolean): Reading {
  return { source, log, head: Buffer.alloc(0), known: new Tally(), wholeDays: new Set(), match: undefined, base: { size: 0, lines: 0, events: 0 }, keep: false, live: live && !log.gzip, jobs: [] };
}

const liveLog = (source: LogSource, log: OpenLog, offset: number): LiveLog => ({ path: source.path, family: source.family, group: source.group, ino: log.ino, dev: log.dev, offset });

/**
 * What the state knows of this log (found by the hash of its first bytes): all of it
 * (a result, decoded only if the window needs it), or a part to read on from.
 */
async function fromState(source: LogSource, log: OpenLog, state: ScanState, warn: Warn, window: TimeWindow, newest: boolean): Promise<Reading | FileResult> {
  const head = await log.head(HEAD_BYTES);
  let match: StateEntry | undefined;
  for (const length of new Set(state.entries.map((e) => e.headLength))) {
    if (length > head.length) continue;
    const hash = headHash(head.subarray(0, length));
    match = state.entries.find((e) => e.headLength === length && e.head === hash && e.size <= log.contentSize);
    if (match !== undefined) break;
  }
  let known = new Tally();
  let wholeDays: ReadonlySet<number> = new Set();
  if (match !== undefined) {
    const whole = match.size === log.contentSize;
    const report = { bytes: match.size, lines: match.lines, events: match.events };
    if (whole && !overlaps(match, window)) return { tally: known, report, entry: match };
    // only the days of the window are decoded, from its first minute on: what is read now is kept as day segments of its own
    const read = await state.readWindow(match, window, warn);
    if (read === null) match = undefined;
    else if (whole) return { tally: read.tally, report, entry: match };
    else ({ tally: known, wholeDays } = read);
  }
  const base = match === undefined ? { size: 0, lines: 0, events: 0 } : { size: match.size, lines: match.lines, events: match.events };
  return { source, log, head, known, wholeDays, match, base, keep: true, live: newest && !log.gzip, jobs: [] };
}

/** The jobs that read the rest of one log: one part per thread (THREADS) when it is big and plain. */
function planJobs(reading: Reading, fd: number, jobs: ScanJob[], tuning: Tuning): number[] {
  const { log, source, base, live } = reading;
  const job = { path: source.path, fd, gzip: log.gzip, stopAtLastLine: live };
  const left = Math.max(0, log.contentSize - base.size);
  const parts = log.gzip || left < tuning.splitBytes ? 1 : Math.max(2, THREADS);
  // line starts near each 1/parts of what is left (none in a part: fewer parts)
  const cuts = [base.size];
  // the first part (read on this thread, which needs no start-up) is bigger by what a worker reads while it starts
  const headStart = Math.min(Math.floor(left / (4 * parts)), HEAD_START_BYTES);
  for (let k = 1; k < parts; k++) {
    const cut = lineStartAtOrAfter(fd, base.size + headStart + Math.floor(((left - headStart) * k) / parts), log.contentSize);
    if (cut > cuts.at(-1)! && cut < log.contentSize) cuts.push(cut);
  }
  const made: number[] = [];
  for (const [k, from] of cuts.entries()) {
    const last = k === cuts.length - 1;
    const to = last ? log.contentSize : cuts[k + 1]!;
    jobs.push({ ...job, from, to: last ? Infinity : to, size: to - from, stopAtLastLine: last && job.stopAtLastLine });
    made.push(jobs.length - 1);
  }
  return made;
}

/** Adds up a log's pieces; scans its unterminated last line for this run only; makes its state entry. */
function finish(reading: Reading, results: JobResult[], parser: LineParser, state: ScanState | null, warn: Warn, follow: boolean): FileResult {
  // what was read this time, in one tally (the first piece is taken, not copied)
  const fresh = results[0]?.tally ?? new Tally();
  let { size, lines, events } = reading.base;
  for (const r of results) {
    if (r.tally !== fresh) fresh.addAll(r.tally);
    size += r.counters.bytes;
    lines += r.counters.lines;
    events += r.counters.events;
    for (const w of r.warnings) warn(w);
    if (r.counters.oversizedLines > 0) warn(`${reading.source.path}: skipped ${r.counters.oversizedLines} line(s) longer than 64 MiB (not Postfix lines)`);
  }
  const rest = results.at(-1)?.rest ?? Buffer.alloc(0);
  const read = new Array<number>(EVENT_KINDS.length).fill(0);
  for (const r of results) for (let i = 0; i < read.length; i++) read[i]! += r.kinds[i]!;
  // nothing known: the fresh tally is the answer, not copied
  const committed = reading.known.size === 0 ? fresh : reading.known;
  if (committed !== fresh) committed.addAll(fresh);
  let entry: StateEntry | null = null;
  if (reading.keep && state !== null) {
    const headLength = Math.min(reading.head.length, size);
    const head = headHash(reading.head.subarray(0, headLength));
    // a day the state's window held whole is written from the sum just made, not decoded again
    const segments = state.segmentsAfter(reading.match, fresh, head, size, warn, { tally: committed, wholeDays: reading.wholeDays });
    if (segments !== null) entry = state.entry({ head, headLength, size, lines, events }, segments);
  }
  const report = { bytes: size, lines, events };
  // a follower reads the unterminated line when it is whole
  if (follow && reading.live) return { tally: committed, report, entry, read };
  if (rest.length > 0) {
    const tailScanner = new LogScanner(parser, committed, rest.length + 1);
    tailScanner.push(rest);
    const tail = tailScanner.end();
    report.bytes += tail.bytes;
    report.lines += tail.lines;
    report.events += tail.events;
  }
  return { tally: committed, report, entry, read };
}

/** Whether a known log may hold events of the window (to the minute, as summarise counts). */
function overlaps(entry: StateEntry, window: TimeWindow): boolean {
  return entry.first !== null && entry.last !== null && minutesOverlap(entry.first, entry.last, window);
}

function addToFamily(families: Map<string, { group: string; tally: Tally }>, source: LogSource, tally: Tally): void {
  const family = families.get(source.family);
  if (family === undefined) families.set(source.family, { group: source.group, tally });
  else if (family.tally.size === 0) family.tally = tally; // nothing to add to: take it, do not copy it
  else family.tally.addAll(tally);
}

/**
 * Families of one syslog group hold copies: keep the larger count; groups add up. When a
 * family's tally folded addresses past its limit, the group is its widest family alone: the
 * larger of a row and an address that the other family kept one by one would count that
 * address's events twice.
 */
function combineFamilies(families: Map<string, { group: string; tally: Tally }>): Tally {
  const members = new Map<string, Array<{ family: string; tally: Tally }>>();
  for (const [family, { group, tally }] of families) {
    const list = members.get(group);
    if (list === undefined) members.set(group, [{ family, tally }]);
    else list.push({ family, tally });
  }
  const groups = new Map<string, Tally>();
  for (const [group, list] of members) {
    if (list.length > 1 && list.some((m) => m.tally.folded !== null)) {
      const widest = list.reduce((a, b) => (familyRank(b.family) < familyRank(a.family) || (familyRank(b.family) === familyRank(a.family) && b.tally.size > a.tally.size) ? b : a));
      groups.set(group, widest.tally);
      continue;
    }
    const [combined, ...others] = list.map((m) => m.tally);
    for (const tally of others) combined!.maxAll(tally);
    groups.set(group, combined!);
  }
  const [first = new Tally(), ...rest] = groups.values();
  for (const tally of rest) first.addAll(tally);
  return first;
}
