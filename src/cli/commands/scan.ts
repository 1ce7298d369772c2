/** `smtpguard scan`: read the logs, count per client, print a table or JSON. Touches nothing. */
import { buildScanJson, renderScanTable, type ScanResult } from '../../report/report.js';
import type { Settings } from '../settings.js';
import { writeJson } from '../../report/json-out.js';
import { readOverrides } from '../../store/overrides.js';
import { scanAndDecide, type Io } from './common.js';
import { finishDecision } from './finish-decision.js';
import { settleExceptions } from '../../decide/policy.js';

export interface ScanOptions {
  now: Date;
  /** --log was not given anywhere: the default paths. */
  defaultLogs: boolean;
  json: boolean;
  top: number;
}

export async function scanCommand(settings: Settings, options: ScanOptions, io: Io): Promise<void> {
  const scanned = await scanAndDecide(settings, options.now, options.defaultLogs, io);
  const { collected, summaries } = scanned;
  // what run would do: with the manual blocks and unblocks, and the bans still running
  const overrides = await readOverrides(settings.stateDir).catch(() => []);
  const finished = await finishDecision(settings, scanned.decision, summaries, scanned.neverBlock, overrides, options.now, { ...io, warn: () => undefined }, { keep: true });
  const decision = settleExceptions(finished.decision);
  const result: ScanResult = {
    now: options.now,
    windowMs: settings.window,
    countedKinds: settings.kinds,
    summaries,
    summarised: scanned.summarised,
    maxTracked: settings.maxTracked,
    decision,
    sources: collected.sources,
    elapsedMs: collected.elapsedMs,
  };
  io.progress?.stop(); // the line goes before the result
  if (options.json) await writeJson(buildScanJson(result), io.stdout);
  else io.stdout.write(renderScanTable(result, options.top));
}
