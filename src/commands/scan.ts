/** `smtpguard scan`: read the logs, count per client, print a table or JSON. Touches nothing. */
import type { Readable, Writable } from 'node:stream';
import { collectEvents } from '../collect.js';
import type { EventKind } from '../kinds.js';
import { buildScanJson, renderScanTable, type ScanResult } from '../report.js';
import type { Warn } from '../sources.js';
import { summarise } from '../tally.js';

export interface ScanOptions {
  logs: readonly string[];
  usingDefaultLogs: boolean;
  windowMs: number;
  now: Date;
  countedKinds: readonly EventKind[];
  json: boolean;
  top: number;
}

export interface Io {
  stdin: Readable;
  stdout: Writable;
  warn: Warn;
}

export async function scanCommand(options: ScanOptions, io: Io): Promise<void> {
  const collected = await collectEvents({
    logs: options.logs,
    usingDefaultLogs: options.usingDefaultLogs,
    now: options.now,
    warn: io.warn,
    stdin: io.stdin,
  });
  const to = options.now.getTime();
  const summaries = summarise(collected.tally, { from: to - options.windowMs, to: options.windowMs === Infinity ? Infinity : to }, options.countedKinds);
  const result: ScanResult = {
    now: options.now,
    windowMs: options.windowMs,
    countedKinds: options.countedKinds,
    summaries,
    sources: collected.sources,
    elapsedMs: collected.elapsedMs,
  };
  io.stdout.write(options.json ? `${JSON.stringify(buildScanJson(result), null, 2)}\n` : renderScanTable(result, options.top));
}
