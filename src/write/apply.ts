/**
 * Apply (edge): carry out a Plan, firewall first. Files are replaced atomically (temp file in the
 * same directory, fsync, rename), keep their mode and owner, and the previous version
 * stays beside them as FILE.smtpguard-prev. Reloads run only for what changed:
 *
 * - indexed map: the new map is built beside the live one (`postmap MAP.smtpguard-new`)
 *   and its index renamed over the live index, so Postfix never reads a half-written
 *   `.db`; a failed postmap leaves the old map and index as they were.
 * - `postfix reload` after any map change.
 * - `ufw reload` after a ufw file change; when it fails, the previous rules files are
 *   put back and ufw reloaded again.
 */
import { readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { ExitCode, SmtpguardError } from '../errors.js';
import { copyOwnership, PREVIOUS_SUFFIX, stagePrevious, writeAtomically, writeTarget, writeWithBackup } from './files.js';
import { INDEX_SUFFIX, NEW_MAP_SUFFIX, type FileChange, type Plan } from './plan.js';
import { PendingReloads } from '../count/state.js';

const COMMAND_TIMEOUT_MS = 120_000;

export interface CommandResult {
  argv: string[];
  ok: boolean;
  output: string;
}

export async function execCommand(argv: readonly string[]): Promise<CommandResult> {
  const [file, ...args] = argv as [string, ...string[]];
  const result = await execa(file, args, { reject: false, timeout: COMMAND_TIMEOUT_MS, stdin: 'ignore', all: true });
  // one line, so that the error built from it stays one line
  const output = String(result.all ?? '')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .join(' | ')
    .slice(0, 1000);
  const failure = result.timedOut ? `timed out after ${COMMAND_TIMEOUT_MS / 1000} s` : result.failed && result.exitCode === undefined ? (result.shortMessage ?? 'could not start') : '';
  return { argv: [...argv], ok: !result.failed, output: [failure, output].filter((t) => t !== '').join(': ') };
}

export type Runner = (argv: readonly string[]) => Promise<CommandResult>;

/**
 * Carries out the plan; throws a SmtpguardError with the right exit code when something fails.
 * Returns warnings: what did not work but needs no rollback (closing open sessions).
 */
export async function applyPlan(plan: Plan, run: Runner = execCommand, pending = new PendingReloads(null)): Promise<string[]> {
  const map = plan.changes.find((c) => c.role === 'map');
  const rules = plan.changes.filter((c) => c.role !== 'map');
  const reload = plan.commands.length > 0;
  const warnings: string[] = [];
  // the firewall first: when its reload fails, everything is put back and the map is left alone
  if (rules.length > 0) {
    await pending.set('ufw', true);
    await replaceRulesFiles(rules, reload, run);
    if (reload) await pending.set('ufw', false);
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
    await pending.set('map', true);
    await applyMap(plan, map, reload, run, rules.length > 0);
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

/**
 * Replaces ufw rules files and reloads ufw. When the reload fails, the previous files
 * are put back and ufw reloaded again. A failed reload also flips ufw.conf to
 * ENABLED=no, after which `ufw reload` only says "skipping reload" (FIELD-NOTES §4):
 * so when ufw was enabled before, it is enabled again before the second reload, and a
 * reload that skipped does not count as one.
 */
export async function replaceRulesFiles(changes: readonly FileChange[], reload: boolean, run: Runner): Promise<void> {
  const ufwConf = path.join(path.dirname(changes[0]!.path), 'ufw.conf');
  const wasEnabled = await readUfwEnabled(ufwConf);
  const written: FileChange[] = [];
  try {
    for (const change of changes) {
      await writeWithBackup(change.path, change.after, change.path);
      written.push(change);
    }
  } catch (error) {
    await restore(written); // the other file must not stay at its new version alone
    throw error;
  }
  if (!reload) return;
  const reloaded = await run(['ufw', 'reload']);
  if (reloaded.ok && !(wasEnabled && skipped(reloaded))) return; // a disabled ufw skips: the files wait for "ufw enable"
  try {
    await restore(written);
  } catch (error) {
    throw new SmtpguardError(`ufw reload failed (${reloaded.output || 'no output'}), and the previous rules could not be put back: ${(error as Error).message}`, {
      exitCode: ExitCode.rollbackFailed,
      hint: `the firewall may be down: put back ${changes.map((c) => c.path + PREVIOUS_SUFFIX).join(' and ')} by hand, then "ufw reload"; check "ufw status verbose"`,
      cause: error,
    });
  }
  const steps = [reloaded];
  if (wasEnabled && (await readUfwEnabled(ufwConf)) === false) steps.push(await run(['ufw', '--force', 'enable']));
  const again = await run(['ufw', 'reload']);
  steps.push(again);
  const what = `ufw reload failed: ${reloaded.output || 'no output'}`;
  if (!again.ok || (wasEnabled && skipped(again))) {
    throw new SmtpguardError(`${what}; and with the previous rules put back: ${steps.slice(1).map((s) => s.output || 'no output').join('; ')}`, {
      exitCode: ExitCode.rollbackFailed,
      hint: 'the firewall may be down: check "ufw status verbose" and "iptables -S" now, and the rules files',
    });
  }
  throw new SmtpguardError(what, {
    exitCode: ExitCode.rolledBack,
    hint: `the previous ${changes.map((c) => path.basename(c.path)).join(' and ')} were put back and ufw reloaded with them; no new block is in the firewall`,
  });
}

const skipped = (result: CommandResult): boolean => /skipping reload/i.test(result.output);

/** ENABLED=yes|no from ufw.conf; null when there is none (not a ufw tree). */
async function readUfwEnabled(file: string): Promise<boolean | null> {
  const text = await readFile(file, 'utf8').catch(() => null);
  if (text === null) return null;
  const m = /^\s*ENABLED\s*=\s*"?(\w+)"?/m.exec(text);
  return m === null ? null : m[1]!.toLowerCase() === 'yes';
}

async function restore(changes: readonly FileChange[]): Promise<void> {
  for (const change of changes) await writeAtomically(change.path, change.before, change.path);
}
