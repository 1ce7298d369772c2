/**
 * One client's lines, for `explain`: every log the scan would read (files, rotated and gzipped
 * copies, or the journal) read by the same scanner and parser, and the events whose client is in
 * `match` handed over with their file and line. Whole logs (the journal from the window on), no
 * scan state.
 */
import type { Readable } from 'node:stream';
import { LineParser, type MailEvent } from '../read/parse.js';
import { LogScanner, type EventSink } from '../read/scan.js';
import { findLogSources, openLog, STDIN } from '../read/sources.js';
import type { JournalSource } from '../read/journal.js';
import { BUCKET_MS, type TimeWindow } from '../count/tally.js';
import type { Warn } from '../warn.js';

export interface ClientLine {
  /** The log file, or `journal:UNIT` (then `line` counts the lines journalctl printed from the window on). */
  file: string;
  line: number;
  text: string;
  kind: string;
  address: string;
}

export interface LinesOptions {
  logs: readonly string[];
  usingDefaultLogs: boolean;
  /** Read the journal instead of files (as the scan chose). */
  journal: JournalSource | null;
  now: Date;
  window: TimeWindow;
  /** Whether an event's client is one asked about. */
  match: (address: string) => boolean;
  /** Lines kept (the count goes on past it). */
  keep: number;
  warn: Warn;
  stdin: Readable;
}

export interface ClientLines {
  lines: ClientLine[];
  /** Events matched in the window, shown or not. */
  matched: number;
  /** What was read: file paths, or the journal's name. */
  sources: string[];
}

export async function clientLines(options: LinesOptions): Promise<ClientLines> {
  const parser = new LineParser(options.now);
  const result: ClientLines = { lines: [], matched: 0, sources: [] };
  // the window to the minute, as the tally cuts it
  const first = Math.floor(options.window.from / BUCKET_MS);
  const last = Math.floor(options.window.to / BUCKET_MS);
  const sinkFor = (file: string): EventSink => ({
    add: () => undefined,
    line: (event: MailEvent, text: string, line: number) => {
      const minute = Math.floor(event.time / BUCKET_MS);
      if (minute < first || minute > last || !options.match(event.address)) return;
      result.matched++;
      if (result.lines.length < options.keep) result.lines.push({ file, line, text, kind: event.kind, address: event.address });
    },
  });
  if (options.journal !== null) {
    const { journalName, readJournal } = await import('../read/journal.js');
    const name = journalName(options.journal);
    const scanner = new LogScanner(parser, sinkFor(name));
    await readJournal(options.journal, scanner, null, options.window.from - BUCKET_MS);
    scanner.end();
    result.sources.push(name);
  }
  // stdin is read once, by the scan that decides: its lines are not shown
  const sources = (await findLogSources(options.logs, options.usingDefaultLogs, options.warn)).filter((s) => s.path !== STDIN);
  for (const source of sources) {
    const log = await openLog(source, options.warn, options.stdin);
    if (log === null) continue;
    try {
      const scanner = new LogScanner(parser, sinkFor(source.path));
      await log.feed(scanner, 0, options.warn);
      scanner.end();
      result.sources.push(source.path);
    } finally {
      await log.close();
    }
  }
  return result;
}
