/**
 * `smtpguard run` (the default, the cron job): scan, decide, rewrite the generated
 * sections, reload what changed. Silent when nothing changed.
 */
import { readFile, stat } from 'node:fs/promises';
import { SmtpguardError } from '../errors.js';
import { withRunLock } from './locked.js';
import { writeTarget } from '../files.js';
import { PendingReloads, readBlockRecords, writeBlockRecords, type BlockRecord } from '../state.js';
import type { AddressSummary } from '../tally.js';
import { buildPlan, INDEX_SUFFIX, type Plan, type TargetFile } from '../plan.js';
import { planJson, renderPlanText, summaryLine } from '../plan-report.js';
import type { Settings } from '../settings.js';
import { translateFsError } from '../sources.js';
import { findDefaultMapType } from '../system.js';
import { scanAndDecide, type Io } from './common.js';
import { FleetSync } from '../crowdsec/sync.js';

export interface RunOptions {
  now: Date;
  /** --log was not given anywhere: the default paths. */
  defaultLogs: boolean;
  dryRun: boolean;
  json: boolean;
  verbose: boolean;
}

export async function runCommand(settings: Settings, options: RunOptions, io: Io): Promise<void> {
  await withRunLock(settings, options.dryRun, async (watchdog) => {
    const { pending, roles } = await PendingReloads.read(settings.stateDir);
    const fleet = await FleetSync.open(settings, { now: options.now, network: !options.dryRun, warn: io.warn });
    const { plan, summaries } = await makePlan(settings, options, io, roles, fleet);
    if (options.dryRun) {
      io.stdout.write(options.json ? `${JSON.stringify(await planJson(plan), null, 2)}\n` : await renderPlanText(plan));
      return;
    }
    if (plan.changes.length === 0) {
      await keepBlockRecords(settings, plan, summaries, options.now, io);
      await fleet?.push(plan.decision, summaries);
      // offenders left unblocked are news every time, until the admin raises the cap
      if (options.verbose || plan.summary.leftOut > 0) {
        const line = `${summaryLine(plan)}, nothing changed`;
        io.stdout.write(`${line}\n`);
        if (plan.summary.leftOut > 0) await logToSyslog(line);
      }
      fleet?.finish();
      return;
    }
    const { applyPlan, execCommand } = await import('../apply.js'); // execa loads only when something changes
    await watchdog.whileApplying(() => applyPlan(plan, execCommand, pending));
    await keepBlockRecords(settings, plan, summaries, options.now, io);
    await fleet?.push(plan.decision, summaries);
    const line = summaryLine(plan);
    io.stdout.write(options.json ? `${JSON.stringify(await planJson(plan), null, 2)}\n` : `${line}\n`);
    await logToSyslog(line);
    fleet?.finish();
  });
}

async function makePlan(settings: Settings, options: RunOptions, io: Io, owed: Set<'ufw' | 'map'>, fleet: FleetSync | null): Promise<{ plan: Plan; summaries: AddressSummary[] }> {
  const scanned = await scanAndDecide(settings, options.now, options.defaultLogs, io, !options.dryRun);
  const { summaries } = scanned;
  const decision = fleet === null ? scanned.decision : await fleet.pull(scanned.decision, scanned.neverBlock); // the fleet's blocks, this host's never-block first
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
  for (const change of plan.changes) {
    const target = await writeTarget(change.path);
    if (target !== change.path) plan.notes.push(`${change.path} is a symlink: the new text is written to its target ${target}, the link stays`);
  }
  return { plan, summaries };
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
      ...(b.fleet === undefined ? {} : { fleet: b.fleet }),
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
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { role, path, text: null };
    if (code === 'EISDIR') {
      const option = role === 'ufw4' ? '--ufw-rules' : role === 'ufw6' ? '--ufw6-rules' : '--access-map';
      throw new SmtpguardError(`${path} is a directory, not a ${role === 'map' ? 'Postfix access map' : 'ufw rules file'}`, { hint: `point ${option} at the file itself` });
    }
    const translated = translateFsError(error, path, 'run as root');
    throw translated instanceof SmtpguardError ? translated : error;
  }
}
