/**
 * `smtpguard run` (the default, the cron job): scan, decide, rewrite the generated
 * sections, reload what changed. Silent when nothing changed.
 */
import { readFile } from 'node:fs/promises';
import { applyPlan, execCommand } from '../apply.js';
import { SmtpguardError } from '../errors.js';
import { acquireLock } from '../lock.js';
import { buildPlan, type Plan, type TargetFile } from '../plan.js';
import { planJson, renderPlanText, summaryLine } from '../plan-report.js';
import type { Settings } from '../settings.js';
import { translateFsError } from '../sources.js';
import { findDefaultMapType } from '../system.js';
import { scanAndDecide, type Io } from './common.js';

export interface RunOptions {
  now: Date;
  dryRun: boolean;
  json: boolean;
  verbose: boolean;
}

export async function runCommand(settings: Settings, options: RunOptions, io: Io): Promise<void> {
  const release = options.dryRun ? async () => undefined : await acquireLock(settings.lockFile);
  try {
    const plan = await makePlan(settings, options, io);
    if (options.dryRun) {
      io.stdout.write(options.json ? `${JSON.stringify(planJson(plan), null, 2)}\n` : renderPlanText(plan));
      return;
    }
    if (plan.changes.length === 0) {
      if (options.verbose) io.stdout.write(`${summaryLine(plan)}, nothing changed\n`);
      return;
    }
    await applyPlan(plan);
    const line = summaryLine(plan);
    io.stdout.write(options.json ? `${JSON.stringify(planJson(plan), null, 2)}\n` : `${line}\n`);
    await execCommand(['logger', '-t', 'smtpguard', line]).catch(() => undefined);
  } finally {
    await release();
  }
}

async function makePlan(settings: Settings, options: RunOptions, io: Io): Promise<Plan> {
  const { decision } = await scanAndDecide(settings, options.now, io);
  const targets: TargetFile[] = await Promise.all([
    readTarget('ufw4', settings.ufwRules),
    readTarget('ufw6', settings.ufw6Rules),
    readTarget('map', settings.accessMap),
  ]);
  const mapType = settings.mapType ?? (await findDefaultMapType(settings.postfixConfigDir));
  return buildPlan(decision, targets, {
    ufwChain: settings.ufwChain,
    ufw6Chain: settings.ufw6Chain,
    mapType,
    rejectText: settings.rejectText,
    postfixConfigDir: settings.postfixConfigDir,
    reload: settings.reload,
  });
}

async function readTarget(role: TargetFile['role'], path: string): Promise<TargetFile> {
  try {
    return { role, path, text: await readFile(path, 'latin1') }; // every byte kept as it is
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { role, path, text: null };
    const translated = translateFsError(error, path);
    throw translated instanceof SmtpguardError ? translated : error;
  }
}
