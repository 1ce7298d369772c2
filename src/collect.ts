/**
 * The scan engine: find the logs, read each into its own tally, and combine them
 * (files of one rotated log add up; mail.log and mail.warn copies count once).
 * Used by `scan` and, later, `run`.
 */
import type { Readable } from 'node:stream';
import { LineParser } from './parse.js';
import { LogScanner } from './scan.js';
import { findLogSources, readLogSource, type LogSource, type Warn } from './sources.js';
import { Tally } from './tally.js';

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
}

export async function collectEvents(options: CollectOptions): Promise<Collected> {
  const started = performance.now();
  const parser = new LineParser(options.now);
  const sources = await findLogSources(options.logs, options.usingDefaultLogs, options.warn);
  const reports: SourceReport[] = [];
  const families = new Map<string, { group: string; tally: Tally }>();
  for (const source of sources) {
    const tally = new Tally();
    const scanner = new LogScanner(parser, tally);
    if (!(await readLogSource(source, scanner, options.warn, options.stdin))) continue;
    const { bytes, lines, events, oversizedLines } = scanner.counters;
    if (oversizedLines > 0) {
      options.warn(`${source.path}: skipped ${oversizedLines} line(s) longer than 64 MiB (not Postfix lines)`);
    }
    reports.push({ path: source.path, bytes, lines, events });
    addToFamily(families, source, tally);
  }
  return { tally: combineFamilies(families), sources: reports, elapsedMs: performance.now() - started };
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
