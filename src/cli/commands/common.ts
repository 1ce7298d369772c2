/** The part `scan` and `run` share: read the logs, count the window, decide. */
import type { Readable, Writable } from 'node:stream';
import { collectEvents, type Collected } from '../../scan/collect.js';
import { decideBlocks, type Decision, type NamedRange } from '../../decide/policy.js';
import type { JournalSource } from '../../read/journal.js';
import type { Settings } from '../settings.js';
import { findLogSources } from '../../read/sources.js';
import type { Warn } from '../../warn.js';
import type { ProgressHook } from '../../progress.js';
import { findNeverBlock } from '../system.js';
import { summariseBounded, type AddressSummary, type Summarised } from '../../count/summary.js';
import type { TimeWindow } from '../../count/tally.js';

export interface Io {
  stdin: Readable;
  stdout: Writable;
  warn: Warn;
  /** Something worth saying that is not a problem (scan and status say it; cron runs do not). */
  note?: (message: string) => void;
  /** A progress line on a terminal (scan, run by hand); stopped before the result is written. */
  progress?: ProgressHook & { stop(): void };
}

export interface Scanned {
  collected: Collected;
  summaries: AddressSummary[];
  decision: Decision;
  /** Loopback, this host, mynetworks, ALLOW: never blocked, not even by the fleet's decisions. */
  neverBlock: NamedRange[];
  /** Addresses past --max-tracked (not listed one by one), their counted events, the IPv6 ranges they were added up into. */
  summarised: Summarised;
}

export interface ScanOptions {
  /** false: a reader that changes nothing (a dry run, status, explain). Default true. */
  saveState?: boolean;
  /** Addresses the policy gives a reason record for (explain). */
  explain?: readonly string[];
  /** Read at least this much of the logs (ms) into `collected.tally`, whatever --window decides on (status's 24-hour chart). */
  readAtLeast?: number;
  /** What the logs gave, when the caller read them already (a follower keeps it in memory): nothing is read then. */
  collected?: Collected;
}

/** `defaultLogs`: the logs are the default paths (then only finding none at all is an error). */
export async function scanAndDecide(settings: Settings, now: Date, defaultLogs: boolean, io: Io, options: ScanOptions = {}): Promise<Scanned> {
  const saveState = options.saveState ?? true;
  const explain = options.explain;
  const window = windowAt(settings, now);
  // ask Postfix for mynetworks while the logs are read
  const neverBlocking = findNeverBlock({ ...settings, keep: saveState }, io.warn);
  const collected = options.collected ?? (await collectAsRun(settings, now, defaultLogs, io, options));
  const bounded = summariseBounded(collected.tally, window, settings.kinds, {
    maxTracked: settings.maxTracked,
    threshold: settings.threshold,
    threshold6: settings.threshold6,
    ipv6Prefix: settings.ipv6Prefix,
    ipv6Subnet: settings.ipv6Subnet,
  });
  const summaries = bounded.summaries;
  const summarised: Summarised = { addresses: bounded.summarised, events: bounded.summarisedEvents, ranges: bounded.summarisedRanges };
  const neverBlock = await neverBlocking;
  const decision = decideBlocks(summaries, {
    threshold: settings.threshold,
    threshold6: settings.threshold6,
    countedKinds: settings.kinds,
    ipv6Prefix: settings.ipv6Prefix,
    ipv6Subnet: settings.ipv6Subnet,
    ipv6SubnetPrefixes: settings.ipv6SubnetPrefixes,
    trapUsers: settings.trapUsers,
    subnetHosts: settings.subnetHosts,
    neverBlock,
    maxBlocks: settings.maxBlocks,
    maxExceptions: settings.maxExceptions,
    ...(explain === undefined ? {} : { explain }),
  });
  return { collected, summaries, decision, neverBlock, summarised };
}

/** The window of events counted at `now`. */
export function windowAt(settings: Settings, now: Date): TimeWindow {
  const to = now.getTime();
  return settings.window === Infinity ? { from: -Infinity, to: Infinity } : { from: to - settings.window, to };
}

/** Reads the logs as `run` does: what the state does not know yet, the window's events of the rest. */
export async function collectAsRun(
  settings: Settings,
  now: Date,
  defaultLogs: boolean,
  io: Io,
  options: Pick<ScanOptions, 'saveState' | 'readAtLeast'> & {
    /** Read as a follower does (collectEvents' `follow`). */
    follow?: boolean;
    /** The journal or not, chosen already (a follower keeps its choice). */
    journal?: JournalSource | null;
  } = {},
): Promise<Collected> {
  const journal = options.journal !== undefined ? options.journal : await chooseJournal(settings, defaultLogs, io);
  const window = windowAt(settings, now);
  const to = now.getTime();
  const read = options.readAtLeast !== undefined && settings.window < options.readAtLeast ? { from: to - options.readAtLeast, to } : window;
  return collectEvents({
    logs: journal !== null && defaultLogs ? [] : settings.log,
    usingDefaultLogs: defaultLogs,
    journal,
    now,
    warn: io.warn,
    stdin: io.stdin,
    stateDir: settings.state ? settings.stateDir : null,
    saveState: options.saveState ?? true,
    window: read,
    ...(options.follow === true ? { follow: true } : {}),
    ...(io.progress === undefined ? {} : { progress: io.progress }),
  });
}

/**
 * The journal is read with --journal, or by default when no mail log exists on the
 * default paths and the journal holds Postfix entries (Debian 12 without rsyslog).
 */
export async function chooseJournal(settings: Settings, defaultLogs: boolean, io: Io): Promise<JournalSource | null> {
  const journal: JournalSource = { directory: settings.journalDirectory, unit: settings.journalUnit };
  if (settings.journal === 'yes') return journal;
  if (settings.journal === 'no' || !defaultLogs) return null;
  const files = await findLogSources(settings.log, true, () => undefined).then(
    (found) => found.length,
    () => 0,
  );
  if (files > 0) return null;
  const { journalHasPostfix } = await import('../../read/journal.js');
  if (!(await journalHasPostfix(journal))) return null;
  io.note?.(`no mail log at ${settings.log.join(' or ')}: reading Postfix's entries in the journal (unit ${journal.unit})`);
  return journal;
}
