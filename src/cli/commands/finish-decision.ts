/**
 * After the policy (edge: reads the state): the manual blocks and unblocks, then the ban
 * times. `run`, the verbs and `scan` all decide this way, so what scan shows is what run does.
 */
import { compareCidrs, parseRange, rangesOverlap, unmapRange } from '../../address.js';
import { applyBans, type BanRecord } from '../../decide/bans.js';
import { readBans } from '../../store/bans.js';
import { applyOverrides, type Override } from '../../decide/overrides.js';
import { capBlocks, type Decision, type NamedRange } from '../../decide/policy.js';
import type { Settings } from '../settings.js';
import type { AddressSummary } from '../../count/summary.js';
import type { Io } from './common.js';

export interface Finished {
  decision: Decision;
  /** The ban records to keep (written by run, not by scan or a dry run). */
  bans: BanRecord[];
}

export async function finishDecision(
  settings: Settings,
  raw: Decision,
  summaries: readonly AddressSummary[],
  neverBlock: readonly NamedRange[],
  overrides: readonly Override[],
  now: Date,
  io: Io,
  /** keep: a reader that changes nothing (scan, a dry run, explain) leaves a bad bans.json where it is. */
  options: { keep?: boolean } = {},
): Promise<Finished> {
  const totals = new Map(summaries.map((s) => [s.address, s.total]));
  const overridden = applyOverrides(raw, overrides, { now, neverBlock, totals });
  const never = neverBlock.map((n) => parseRange(n.cidr));
  const unblocked = overrides.filter((o) => o.kind === 'unblock' && (o.until === null || Date.parse(o.until) > now.getTime())).map((o) => parseRange(unmapRange(o.cidr)));
  const banned = applyBans(
    overridden,
    await readBans(settings.stateDir, io.warn, options.keep === true),
    now.getTime(),
    { window: settings.window, banTime: settings.banTime, banFactor: settings.banFactor, banTimeMax: settings.banTimeMax, recidiveWindow: settings.recidiveWindow },
    (range) => never.some((n) => rangesOverlap(n, range)),
    (range) => unblocked.some((u) => rangesOverlap(u, range)),
  );
  // the bans keep blocks the window no longer shows: --max-blocks holds for all of them
  // (kept bans have no events in the window, so the current offenders come first)
  const capped = capBlocks(banned.decision.blocks, settings.maxBlocks);
  const kept = new Set(capped.blocks.map((b) => b.cidr));
  const over = new Map([...banned.decision.overLimit, ...capped.overLimit].filter((b) => !kept.has(b.cidr)).map((b) => [b.cidr, b]));
  const overLimit = [...over.values()].sort((a, b) => compareCidrs(a.cidr, b.cidr));
  return { decision: { ...banned.decision, blocks: capped.blocks, overLimit }, bans: banned.records };
}
