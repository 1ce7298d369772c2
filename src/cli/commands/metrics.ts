/**
 * The metrics hook: after each run (and, later, each change a follower applies), the counters
 * in the state directory move on and --metrics-file is written anew, atomically (a temp name in
 * its directory that does not end in .prom, then a rename; mode 644 for the prometheus user).
 * Metrics never fail a run: a problem writing them is a warning.
 */
import { backendFor } from '../../write/firewall/registry.js';
import type { Block } from '../../decide/policy.js';
import type { BanRecord } from '../../decide/bans.js';
import type { SyncReport } from '../../crowdsec/sync.js';
import { renderMetrics } from '../../report/metrics.js';
import { writeOwnFile } from '../../store/atomic.js';
import { readMetricCounters, writeMetricCounters, type MetricGauges } from '../../store/metrics.js';
import { PendingReloads } from '../../store/pending-reloads.js';
import type { Settings } from '../settings.js';
import { query } from '../system.js';
import type { Io } from './common.js';

/** What a run that got to its end learned. */
export interface RunFacts {
  readByKind: Readonly<Record<string, number>>;
  blocks: readonly Block[];
  bans: readonly BanRecord[];
  leftOut: number;
  summarised: number;
  newestEvent: number | null;
  fleet: SyncReport | null;
}

export interface RunOutcome {
  /** When it started (ms). */
  started: number;
  /** What it learned (also for a run that failed late, e.g. at its reload), or null. */
  facts: RunFacts | null;
  /** Where it failed; undefined: it did all it had to. */
  failedAt?: string;
}

export async function refreshMetrics(settings: Settings, outcome: RunOutcome, io: Io): Promise<void> {
  if (settings.metricsFile === null) return;
  try {
    await refresh(settings, settings.metricsFile, outcome, io);
  } catch (error) {
    io.warn(`cannot write the metrics to ${settings.metricsFile}: ${(error as Error).message} -- check --metrics-file (its directory must exist) and --state-dir`);
  }
}

async function refresh(settings: Settings, file: string, outcome: RunOutcome, io: Io): Promise<void> {
  const ended = Date.now();
  const counters = await readMetricCounters(settings.stateDir, io.warn);
  const facts = outcome.facts;
  if (facts !== null) {
    for (const [kind, n] of Object.entries(facts.readByKind)) counters.eventsRead[kind] = (counters.eventsRead[kind] ?? 0) + n;
    if (facts.fleet !== null) {
      counters.alertsSent += facts.fleet.sent;
      if (facts.fleet.faults.length > 0) counters.errors.fleet = (counters.errors.fleet ?? 0) + facts.fleet.faults.length;
    }
  }
  if (outcome.failedAt !== undefined) counters.errors[outcome.failedAt] = (counters.errors[outcome.failedAt] ?? 0) + 1;
  else {
    counters.lastSuccess = ended;
    if (facts !== null) counters.gauges = await gaugesOf(settings, facts, ended);
  }
  const text = renderMetrics({ started: outcome.started, ended, ok: outcome.failedAt === undefined, ...counters });
  await writeMetricCounters(settings.stateDir, counters);
  await writeOwnFile(file, text, 0o644);
}

async function gaugesOf(settings: Settings, facts: RunFacts, now: number): Promise<MetricGauges> {
  const blocks = new Map<string, { reason: string; family: 4 | 6; count: number }>();
  for (const b of facts.blocks) {
    const key = `${b.reason} ${b.family}`;
    const entry = blocks.get(key) ?? { reason: b.reason, family: b.family, count: 0 };
    entry.count++;
    blocks.set(key, entry);
  }
  const dropped: MetricGauges['dropped'] = [];
  if (settings.reload) {
    // the backend's rule counters (root only, and its rules loaded; else left out)
    for (const d of (await backendFor(settings.firewall).dropped(settings, query).catch(() => null)) ?? []) dropped.push(d);
  }
  const owed = (await PendingReloads.read(settings.stateDir)).roles;
  return {
    blocks: [...blocks.values()].sort((a, b) => a.reason.localeCompare(b.reason) || a.family - b.family),
    bansActive: facts.bans.filter((r) => r.until === null || r.until > now).length,
    leftOut: facts.leftOut,
    summarised: facts.summarised,
    dropped,
    fleet: facts.fleet === null ? null : { decisions: facts.fleet.pulled, queued: facts.fleet.queued },
    newestEvent: facts.newestEvent,
    reloadOwed: { ufw: owed.has('ufw'), postfix: owed.has('map') },
  };
}
