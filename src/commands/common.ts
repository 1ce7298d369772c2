/** The part `scan` and `run` share: read the logs, count the window, decide. */
import type { Readable, Writable } from 'node:stream';
import { collectEvents, type Collected } from '../collect.js';
import { decideBlocks, type Decision } from '../policy.js';
import type { Settings } from '../settings.js';
import type { Warn } from '../sources.js';
import { findNeverBlock } from '../system.js';
import { summarise, type AddressSummary } from '../tally.js';

export interface Io {
  stdin: Readable;
  stdout: Writable;
  warn: Warn;
}

export interface Scanned {
  collected: Collected;
  summaries: AddressSummary[];
  decision: Decision;
}

/** `defaultLogs`: the logs are the default paths (then only finding none at all is an error). */
export async function scanAndDecide(settings: Settings, now: Date, defaultLogs: boolean, io: Io, saveState = true): Promise<Scanned> {
  const to = now.getTime();
  const window = settings.window === Infinity ? { from: -Infinity, to: Infinity } : { from: to - settings.window, to };
  const collected = await collectEvents({
    logs: settings.log,
    usingDefaultLogs: defaultLogs,
    now,
    warn: io.warn,
    stdin: io.stdin,
    stateDir: settings.state ? settings.stateDir : null,
    saveState,
    window,
  });
  const summaries = summarise(collected.tally, window, settings.kinds);
  const neverBlock = await findNeverBlock(settings.allow, settings.postfixConfigDir, io.warn);
  const decision = decideBlocks(summaries, {
    threshold: settings.threshold,
    threshold6: settings.threshold6,
    countedKinds: settings.kinds,
    ipv6Prefix: settings.ipv6Prefix,
    subnetHosts: settings.subnetHosts,
    neverBlock,
    maxBlocks: settings.maxBlocks,
  });
  return { collected, summaries, decision };
}
