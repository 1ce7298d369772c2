/** `smtpguard scan`: read the logs, count per client, print a table or JSON. Touches nothing. */
import { buildScanJson, renderScanTable, type ScanResult } from '../report.js';
import type { Settings } from '../settings.js';
import { scanAndDecide, type Io } from './common.js';

export interface ScanOptions {
  now: Date;
  /** --log was not given anywhere: the default paths. */
  defaultLogs: boolean;
  json: boolean;
  top: number;
}

export async function scanCommand(settings: Settings, options: ScanOptions, io: Io): Promise<void> {
  const { collected, summaries, decision } = await scanAndDecide(settings, options.now, options.defaultLogs, io);
  const result: ScanResult = {
    now: options.now,
    windowMs: settings.window,
    countedKinds: settings.kinds,
    summaries,
    decision,
    sources: collected.sources,
    elapsedMs: collected.elapsedMs,
  };
  io.stdout.write(options.json ? `${JSON.stringify(buildScanJson(result), null, 2)}\n` : renderScanTable(result, options.top));
}
