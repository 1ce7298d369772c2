/**
 * The metrics' counters (metrics.json in the state directory): what Prometheus counters must
 * keep across runs (events read, errors, alerts sent) and the last success. A file that is
 * missing or not valid starts them again from zero, which Prometheus reads as a counter reset.
 */
import path from 'node:path';
import { readStore } from './store-file.js';
import { writeOwnFile } from './atomic.js';
import type { Warn } from '../warn.js';

export const METRICS_FILE = 'metrics.json';

export interface MetricCounters {
  /** Events read from the logs, per kind. */
  eventsRead: Record<string, number>;
  /** Runs that failed, per stage; and fleet faults (stage `fleet`), which do not stop a run. */
  errors: Record<string, number>;
  /** Alerts sent to the CrowdSec Local API. */
  alertsSent: number;
  /** When the last run that did all it had to ended (ms), or null. */
  lastSuccess: number | null;
  /** What that run left in force: a failed run repeats it. */
  gauges: MetricGauges | null;
}

/** What a successful run leaves in force, as the metrics show it. */
export interface MetricGauges {
  /** Blocks in force per reason and family. */
  blocks: Array<{ reason: string; family: 4 | 6; count: number }>;
  bansActive: number;
  /** Offenders left unblocked by --max-blocks. */
  leftOut: number;
  /** Addresses past --max-tracked, counted by prefix instead of one by one. */
  summarised: number;
  /** The firewall chains' drop counters (packets since ufw loaded them); absent when not readable. */
  dropped: Array<{ family: 4 | 6; packets: number }>;
  /** Sharing through CrowdSec: decisions pulled and in force, alerts waiting to be sent; null without it. */
  fleet: { decisions: number | null; queued: number } | null;
  /** The newest event's time in the logs (ms), or null. */
  newestEvent: number | null;
  /** Reloads a run owes (the files and the running firewall or Postfix differ). */
  reloadOwed: { ufw: boolean; postfix: boolean };
}


export const emptyCounters = (): MetricCounters => ({ eventsRead: {}, errors: {}, alertsSent: 0, lastSuccess: null, gauges: null });

export async function readMetricCounters(stateDir: string, warn: Warn): Promise<MetricCounters> {
  const counters = await readStore(path.join(stateDir, METRICS_FILE), {
    parse: (text) => {
      const value = JSON.parse(text) as MetricCounters;
      const counts = (o: unknown) => typeof o === 'object' && o !== null && Object.values(o).every((n) => Number.isFinite(n) && (n as number) >= 0);
      if (!counts(value?.eventsRead) || !counts(value.errors) || !Number.isFinite(value.alertsSent) || !(value.lastSuccess === null || Number.isFinite(value.lastSuccess))) throw new Error('not metric counters');
      return { ...value, gauges: typeof value.gauges === 'object' && value.gauges !== null && Array.isArray(value.gauges.blocks) ? value.gauges : null };
    },
    warn,
    consequence: 'the counters start again from zero',
  });
  return counters ?? emptyCounters();
}

export async function writeMetricCounters(stateDir: string, counters: MetricCounters): Promise<void> {
  await writeOwnFile(path.join(stateDir, METRICS_FILE), `${JSON.stringify(counters)}\n`, 0o644);
}
