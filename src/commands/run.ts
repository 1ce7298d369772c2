/**
 * `smtpguard run` (the default, the cron job): scan, decide, rewrite the generated
 * sections, reload what changed. Silent when nothing changed.
 */
import { readFile, stat } from 'node:fs/promises';
import { formatWindow } from '../duration.js';
import { ExitCode, SmtpguardError } from '../errors.js';
import { Watchdog } from '../watchdog.js';
import { acquireLock } from '../lock.js';
import { checkTrustedPaths, runPaths } from '../trust.js';
import { PendingReloads, readBlockRecords, writeBlockRecords, type BlockRecord } from '../state.js';
import type { AddressSummary } from '../tally.js';
import { buildPlan, INDEX_SUFFIX, type Plan, type TargetFile } from '../plan.js';
import { planJson, renderPlanText, summaryLine, trackedClause } from '../plan-report.js';
import type { Settings } from '../settings.js';
import { translateFsError } from '../sources.js';
import { findDefaultMapType } from '../system.js';
import { scanAndDecide, type Io, type Scanned } from './common.js';

export interface RunOptions {
  now: Date;
  /** --log was not given anywhere: the default paths. */
  defaultLogs: boolean;
  dryRun: boolean;
  json: boolean;
  verbose: boolean;
}

export async function runCommand(settings: Settings, options: RunOptions, io: Io): Promise<void> {
  await checkTrustedPaths(runPaths(settings.stateDir, settings.lockFile));
  const release = options.dryRun ? async () => undefined : await acquireLock(settings.lockFile);
  const watchdog = new Watchdog(settings.timeout, () => {
    // nothing was changed yet (an apply in progress is let finish): say so, free the lock, stop
    process.stderr.write(
      `smtpguard: the run took longer than --timeout ${formatWindow(settings.timeout)} and was stopped before it changed anything -- look for a log that cannot be read to its end (a hung mount, a pipe), or raise --timeout\n`,
    );
    void release().finally(() => process.exit(ExitCode.timeout));
  });
  try {
    const { pending, roles } = await PendingReloads.read(settings.stateDir);
    const { plan, summaries, summarised } = await makePlan(settings, options, io, roles);
    const flooded = summarised.addresses > 0; // past --max-tracked: said every run while it lasts
    if (options.dryRun) {
      io.stdout.write(options.json ? `${JSON.stringify(await planJson(plan), null, 2)}\n` : await renderPlanText(plan));
      return;
    }
    if (plan.changes.length === 0) {
      await keepBlockRecords(settings, plan, summaries, options.now, io);
      // offenders left unblocked are news every time, until the admin raises the cap
      if (options.verbose || plan.summary.leftOut > 0 || flooded) {
        const line = `${summaryLine(plan)}${trackedClause(summarised)}, nothing changed`;
        io.stdout.write(`${line}\n`);
        if (plan.summary.leftOut > 0 || flooded) await logToSyslog(line);
      }
      return;
    }
    const { applyPlan, execCommand } = await import('../apply.js'); // execa loads only when something changes
    await watchdog.whileApplying(() => applyPlan(plan, execCommand, pending));
    await keepBlockRecords(settings, plan, summaries, options.now, io);
    const line = `${summaryLine(plan)}${trackedClause(summarised)}`;
    io.stdout.write(options.json ? `${JSON.stringify(await planJson(plan), null, 2)}\n` : `${line}\n`);
    await logToSyslog(line);
  } finally {
    watchdog.stop();
    await release();
  }
}

async function makePlan(settings: Settings, options: RunOptions, io: Io, owed: Set<'ufw' | 'map'>): Promise<{ plan: Plan; summaries: AddressSummary[]; summarised: Scanned['summarised'] }> {
  const { decision, summaries, summarised } = await scanAndDecide(settings, options.now, options.defaultLogs, io, !options.dryRun);
  const targets: TargetFile[] = await Promise.all([
    readTarget('ufw4', settings.ufwRules),
    readTarget('ufw6', settings.ufw6Rules),
    readTarget('map', settings.accessMap),
  ]);
  const mapType = settings.mapType ?? (await findDefaultMapType(settings.postfixConfigDir));
  if (mapType !== 'cidr' && (await indexIsStale(settings.accessMap, INDEX_SUFFIX[mapType]))) owed.add('map');
  const plan = buildPlan(decision, targets, {
    ufwChain: settings.ufwChain,
    ufw6Chain: settings.ufw6Chain,
    mapType,
    rejectText: settings.rejectText,
    postfixConfigDir: settings.postfixConfigDir,
    reload: settings.reload,
  }, owed);
  return { plan, summaries, summarised };
}

async function logToSyslog(line: string): Promise<void> {
  const { execCommand } = await import('../apply.js');
  await execCommand(['logger', '-t', 'smtpguard', line]).catch(() => undefined);
}

/** What is blocked and why, for `smtpguard status`; a block keeps the time it first appeared. */
async function keepBlockRecords(settings: Settings, plan: Plan, summaries: readonly AddressSummary[], now: Date, io: Io): Promise<void> {
  const previous = new Map((await readBlockRecords(settings.stateDir, io.warn))?.map((r) => [r.cidr, r]) ?? []);
  const seen = new Map(summaries.map((s) => [s.address, s]));
  const records: BlockRecord[] = plan.decision.blocks.map((b) => {
    let firstSeen = Infinity;
    let lastSeen = -Infinity;
    for (const address of b.addresses) {
      const s = seen.get(address);
      if (s === undefined) continue;
      firstSeen = Math.min(firstSeen, s.firstSeen);
      lastSeen = Math.max(lastSeen, s.lastSeen);
    }
    const at = (ms: number) => new Date(Number.isFinite(ms) ? ms : now.getTime()).toISOString();
    return {
      cidr: b.cidr,
      family: b.family,
      reason: b.reason,
      total: b.total,
      addresses: b.addresses,
      firstSeen: at(firstSeen),
      lastSeen: at(lastSeen),
      since: previous.get(b.cidr)?.since ?? now.toISOString(),
    };
  });
  await writeBlockRecords(settings.stateDir, records).catch(() => undefined); // status is a convenience: never fail a run for it
}

/** An index that is missing or older than its map was never built from it: postmap is owed. */
async function indexIsStale(map: string, suffix: string): Promise<boolean> {
  const [source, index] = await Promise.all([stat(map).catch(() => null), stat(map + suffix).catch(() => null)]);
  return source !== null && (index === null || index.mtimeMs < source.mtimeMs);
}

async function readTarget(role: TargetFile['role'], path: string): Promise<TargetFile> {
  try {
    return { role, path, text: await readFile(path, 'latin1') }; // every byte kept as it is
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { role, path, text: null };
    const translated = translateFsError(error, path, 'run as root');
    throw translated instanceof SmtpguardError ? translated : error;
  }
}
