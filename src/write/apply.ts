/**
 * Apply (edge): carry out a Plan, firewall first (each backend's part through its own apply). Files are replaced atomically (temp file in the
 * same directory, fsync, rename), keep their mode and owner, and the previous version
 * stays beside them as FILE.smtpguard-prev. Reloads run only for what changed:
 *
 * - indexed map: the new map is built beside the live one (`postmap MAP.smtpguard-new`)
 *   and its index renamed over the live index, so Postfix never reads a half-written
 *   `.db`; a failed postmap leaves the old map and index as they were.
 * - `postfix reload` after any map change.
 * - the firewall: the chosen backend's part, then the parts of those that withdraw; each puts
 *   back what it changed when a step fails (write/firewall/).
 */
import { rename, unlink } from 'node:fs/promises';
import { ExitCode, SmtpguardError } from '../errors.js';
import { copyOwnership, stagePrevious, writeAtomically, writeTarget, writeWithBackup } from '../store/atomic.js';
import { INDEX_SUFFIX, NEW_MAP_SUFFIX, type Plan } from './plan.js';
import { PendingReloads } from '../store/pending-reloads.js';
import { backendFor } from './firewall/registry.js';
import { execCommand } from './exec.js';
import type { FileChange, Runner } from './change.js';

/**
 * Carries out the plan; throws a SmtpguardError with the right exit code when something fails.
 * Returns warnings: what did not work but needs no rollback (closing open sessions).
 */
export async function applyPlan(plan: Plan, run: Runner = execCommand, pending = new PendingReloads(null)): Promise<string[]> {
  const map = plan.changes.find((c) => c.role === 'map');
  const firewall = plan.firewall.filter((p) => p.changes.length > 0 || p.commands.length > 0);
  const reload = plan.commands.length > 0;
  const warnings: string[] = [];
  // the firewall first: when it fails, everything is put back and the map is left alone
  if (firewall.length > 0) {
    // a file that puts nothing in force (ufw's before.init) owes no update
    const owes = firewall.some((p) => p.owes);
    const owedBefore = owes && (await pending.owes('ufw'));
    if (owes) await pending.set('ufw', true);
    try {
      // the chosen backend puts the blocks in force first, then the others take out theirs: no gap
      for (const part of firewall) for (const warning of await backendFor(part.mode).apply(part, run, reload)) warnings.push(warning);
    } catch (error) {
      // a write that failed left every file at its old version: no reload is owed for it
      if (owes && !owedBefore && error instanceof SmtpguardError && error.exitCode === ExitCode.writeFailed) await pending.set('ufw', false).catch(() => undefined);
      throw error;
    }
    if (reload && owes) await pending.set('ufw', false);
    // the firewall has the new blocks: close the sessions they had open (a failure is a warning)
    for (const cut of plan.commands.filter((c) => c[0] === 'ss')) {
      const result = await run(cut);
      if (!result.ok) {
        warnings.push(`could not close the open SMTP sessions of the new blocks (${result.output || 'no output'}): they end when the clients disconnect`);
        break;
      }
    }
  }
  if (map !== undefined) {
    const owedBefore = await pending.owes('map');
    await pending.set('map', true);
    try {
      await applyMap(plan, map, reload, run, firewall.length > 0);
    } catch (error) {
      if (!owedBefore && error instanceof SmtpguardError && error.exitCode === ExitCode.writeFailed) await pending.set('map', false).catch(() => undefined);
      throw error;
    }
    if (reload) await pending.set('map', false);
  }
  return warnings;
}

async function applyMap(plan: Plan, change: FileChange, reload: boolean, run: Runner, firewallChanged: boolean): Promise<void> {
  const postmap = plan.commands.find((c) => c[0] === 'postmap');
  if (postmap !== undefined && plan.mapType !== 'cidr') {
    const suffix = INDEX_SUFFIX[plan.mapType];
    const newSource = change.path + NEW_MAP_SUFFIX;
    const newIndex = newSource + suffix;
    await writeAtomically(newSource, change.after, change.path);
    const built = await run(postmap);
    if (!built.ok) {
      await Promise.all([unlink(newSource).catch(() => undefined), unlink(newIndex).catch(() => undefined)]);
      const firewall = firewallChanged ? ' (the firewall rules were updated)' : '';
      throw new SmtpguardError(`postmap failed, the access map and its index were not changed${firewall}: ${built.output || 'no output'}`, {
        exitCode: ExitCode.rolledBack,
        hint: `check ${change.path} and that Postfix supports ${plan.mapType}: maps (postconf -m)`,
      });
    }
    const previous = await stagePrevious(change.path);
    try {
      await copyOwnership(change.path + suffix, newIndex);
      await rename(newIndex, change.path + suffix);
      if ((await writeTarget(change.path)) === change.path) await rename(newSource, change.path);
      else {
        // a symlinked map: its target gets the text, the link stays
        await writeAtomically(change.path, change.after, change.path);
        await unlink(newSource).catch(() => undefined);
      }
    } catch (error) {
      await previous.discard();
      throw error;
    }
    await previous.commit();
  } else {
    await writeWithBackup(change.path, change.after, change.path);
  }
  if (reload) {
    const reloaded = await run(plan.commands.find((c) => c[0] === 'postfix')!);
    if (!reloaded.ok) {
      throw new SmtpguardError(`postfix reload failed: ${reloaded.output || 'no output'}`, {
        exitCode: ExitCode.rolledBack,
        hint: 'the new access map is in place and Postfix reads it when it (re)starts; check "postfix check" and the mail log',
      });
    }
  }
}
