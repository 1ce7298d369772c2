/**
 * The scan engine: find the logs, read each into its own tally, and combine them
 * (files of one rotated log add up; mail.log and mail.warn copies count once).
 * Used by `scan` and, later, `run`.
 */
import type { Readable } from 'node:stream';
import { LineParser } from './parse.js';
import { LogScanner } from './scan.js';
import { findLogSources, openLog, STDIN, type LogSource, type OpenLog, type Warn } from './sources.js';
import { HEAD_BYTES, headHash, ScanState, type StateEntry } from './state.js';
import { BUCKET_MS, Tally, type TimeWindow } from './tally.js';

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
  /** Wall-clock milliseconds spent finding and reading the logs. */
  elapsedMs: number;
}

export interface CollectOptions {
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
}

interface FileResult {
  tally: Tally;
  report: Omit<SourceReport, 'path'>;
  /** What the state keeps of this log; null for stdin or without state. */
  entry: StateEntry | null;
}

export async function collectEvents(options: CollectOptions): Promise<Collected> {
  const started = performance.now();
  const parser = new LineParser(options.now);
  const sources = await findLogSources(options.logs, options.usingDefaultLogs, options.warn);
  const state = options.stateDir === null ? null : await ScanState.load(options.stateDir, options.now.getFullYear(), options.warn);
  const reports: SourceReport[] = [];
  const entries: StateEntry[] = [];
  const families = new Map<string, { group: string; tally: Tally }>();
  for (const source of sources) {
    const log = await openLog(source, options.warn, options.stdin);
    if (log === null) continue;
    let result: FileResult;
    try {
      result = state === null || source.path === STDIN ? await readAll(log, parser) : await readWithState(log, state, parser, options.warn, options.window);
    } finally {
      await log.close();
    }
    if (result.entry !== null) entries.push(result.entry);
    reports.push({ path: source.path, ...result.report });
    addToFamily(families, source, result.tally);
  }
  const changed = state !== null && (entries.length !== state.entries.length || entries.some((e) => !state.entries.includes(e)));
  if (state !== null && options.saveState && changed) await state.save(entries, options.warn);
  return { tally: combineFamilies(families), sources: reports, elapsedMs: performance.now() - started };
}

async function readAll(log: OpenLog, parser: LineParser): Promise<FileResult> {
  const tally = new Tally();
  const scanner = new LogScanner(parser, tally);
  await log.feed(scanner, 0);
  const { bytes, lines, events } = scanner.end();
  return { tally, report: { bytes, lines, events }, entry: null };
}

/**
 * Reuses what the state knows of this log (found by the hash of its first bytes), reads
 * only the text after it, and leaves an unterminated last line for the next run.
 */
async function readWithState(log: OpenLog, state: ScanState, parser: LineParser, warn: Warn, window: TimeWindow): Promise<FileResult> {
  const head = await log.head(HEAD_BYTES);
  let match: StateEntry | undefined;
  for (const length of new Set(state.entries.map((e) => e.headLength))) {
    if (length > head.length) continue;
    const hash = headHash(head.subarray(0, length));
    match = state.entries.find((e) => e.headLength === length && e.head === hash && e.size <= log.contentSize);
    if (match !== undefined) break;
  }
  if (match !== undefined && match.size === log.contentSize) {
    // nothing new in this log: its known result as it is, decoded only if the window needs it
    const report = { bytes: match.size, lines: match.lines, events: match.events };
    if (!overlaps(match, window)) return { tally: new Tally(), report, entry: match };
    try {
      return { tally: Tally.deserialize(Buffer.from(match.tally, 'base64')), report, entry: match };
    } catch (error) {
      warn(`the scan state ${state.file} is not valid (${(error as Error).message}); reading this log from the start`);
      match = undefined;
    }
  }
  let known: Tally | null = null;
  if (match !== undefined) {
    try {
      known = Tally.deserialize(Buffer.from(match.tally, 'base64'));
    } catch (error) {
      warn(`the scan state ${state.file} is not valid (${(error as Error).message}); reading this log from the start`);
      match = undefined;
    }
  }
  const committed = known ?? new Tally();
  let size = match?.size ?? 0;
  let lines = match?.lines ?? 0;
  let events = match?.events ?? 0;
  const tail = new Tally();
  let tailLines = 0;
  let tailEvents = 0;
  let tailBytes = 0;
  if (match === undefined || match.size < log.contentSize) {
    const fresh = new Tally();
    const scanner = new LogScanner(parser, fresh);
    await log.feed(scanner, size);
    const rest = scanner.endAtLastNewline();
    size += scanner.counters.bytes;
    lines += scanner.counters.lines;
    events += scanner.counters.events;
    committed.addAll(fresh);
    if (rest.length > 0) {
      const tailScanner = new LogScanner(parser, tail, rest.length + 1);
      tailScanner.push(rest);
      ({ lines: tailLines, events: tailEvents, bytes: tailBytes } = tailScanner.end());
    }
  }
  const headLength = Math.min(head.length, size);
  const span = committed.span();
  const entry: StateEntry = {
    head: headHash(head.subarray(0, headLength)),
    headLength,
    size,
    lines,
    events,
    tally: committed.serialize().toString('base64'),
    first: span?.first ?? null,
    last: span?.last ?? null,
  };
  committed.addAll(tail);
  return { tally: committed, report: { bytes: size + tailBytes, lines: lines + tailLines, events: events + tailEvents }, entry };
}

/** Whether a known log may hold events of the window (to the minute, as summarise counts). */
function overlaps(entry: StateEntry, window: TimeWindow): boolean {
  if (entry.first === null || entry.last === null) return false;
  return Math.floor(entry.last / BUCKET_MS) >= Math.floor(window.from / BUCKET_MS) && Math.floor(entry.first / BUCKET_MS) <= Math.floor(window.to / BUCKET_MS);
}

function addToFamily(families: Map<string, { group: string; tally: Tally }>, source: LogSource, tally: Tally): void {
  const family = families.get(source.family);
  if (family === undefined) families.set(source.family, { group: source.group, tally });
  else family.tally.addAll(tally);
}

/** Families of one syslog group hold copies: keep the larger count; groups add up. */
function combineFamilies(families: Map<string, { group: string; tally: Tally }>): Tally {
  const groups = new Map<string, Tally>();
  for (const { group, tally } of families.values()) {
    const combined = groups.get(group);
    if (combined === undefined) groups.set(group, tally);
    else combined.maxAll(tally);
  }
  const [first = new Tally(), ...rest] = groups.values();
  for (const tally of rest) first.addAll(tally);
  return first;
}
