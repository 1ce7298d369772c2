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
import { rename, unlink } from 'node:fs/promises';
import { execa } from 'execa';
import { ExitCode, SmtpguardError } from '../errors.js';
import { copyOwnership, stagePrevious, writeAtomically, writeOwnFile, writeTarget, writeWithBackup } from '../store/atomic.js';
import { INDEX_SUFFIX, NEW_MAP_SUFFIX, type FileChange, type Plan } from './plan.js';
import { PendingReloads } from '../store/pending-reloads.js';
import { chainRestoreText, replaceRulesFiles } from './firewall/ufw.js';
import { dropSets, loadSets, makeExecutable } from './firewall/ipset.js';
import { findSection, sectionLines } from './sections.js';

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
  const firewall = plan.changes.filter((c) => c.role !== 'map');
  const reload = plan.commands.length > 0;
  const warnings: string[] = [];
  // the firewall first: when it fails, everything is put back and the map is left alone
  if (firewall.length > 0) {
    // before.init alone puts nothing in force: no update is owed for it
    const owes = firewall.some((c) => c.role !== 'init');
    const owedBefore = owes && (await pending.owes('ufw'));
    if (owes) await pending.set('ufw', true);
    try {
      for (const warning of await applyFirewall(plan, firewall, reload, run)) warnings.push(warning);
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

/**
 * The firewall's files and commands, in the order that never leaves a rule naming a set
 * that is not there: the sets' new members (ipset restore), before.init, the rules files
 * (into the live chains, or ufw reload), then the sets nothing names any more.
 */
async function applyFirewall(plan: Plan, changes: readonly FileChange[], reload: boolean, run: Runner): Promise<string[]> {
  const sets = changes.find((c) => c.role === 'sets');
  const init = changes.find((c) => c.role === 'init');
  const rules = changes.filter((c) => c.role === 'ufw4' || c.role === 'ufw6');
  const warnings: string[] = [];
  if (sets !== undefined && sets.after !== '') {
    const restore = plan.commands.find((c) => c[0] === 'ipset' && c[1] === 'restore');
    if (restore !== undefined) await loadSets(sets.path, sets.after, restore, run);
    await writeOwnFile(sets.path, sets.after, 0o600);
  }
  // before.init creates the sets at boot: a section that does so goes in before the rules name
  // the sets, and an emptied one only once the rules no longer do (a failed step keeps it)
  const initCreatesSets = init !== undefined && sectionLines(init.after, findSection(init.after, init.path)).length > 0;
  if (init !== undefined && initCreatesSets) await writeInit(init);
  if (rules.length > 0) {
    const chainRestores = plan.commands.filter((c) => c[0] === 'iptables-restore' || c[0] === 'ip6tables-restore');
    if (chainRestores.length > 0) await replaceChains(plan, rules, chainRestores, run);
    else await replaceRulesFiles(rules, reload, run);
  }
  if (init !== undefined && !initCreatesSets) await writeInit(init);
  if (sets !== undefined && sets.after === '') {
    // without a reload the kernel's sets stay in use: the save file stays too, and the next run with reloads drops both
    if (reload) for (const warning of await dropSets(sets.path, run)) warnings.push(warning);
  }
  return warnings;
}

/** before.init, made executable when its section creates the sets (ufw-init runs it only then; Debian ships it 0640). */
async function writeInit(init: FileChange): Promise<void> {
  await writeWithBackup(init.path, init.after, init.path);
  if (sectionLines(init.after, findSection(init.after, init.path)).length > 0) await makeExecutable(init.path);
}

/**
 * The rules files, and their new section swapped into the live chain alone: `iptables-restore
 * --noflush` with the chain declared flushes and refills just that chain, in one transaction.
 * No ufw reload: no moment without rules, no counters reset. A failure puts the files back.
 */
async function replaceChains(plan: Plan, changes: readonly FileChange[], restores: readonly string[][], run: Runner): Promise<void> {
  const swapped: Array<{ argv: readonly string[]; change: FileChange }> = [];
  const load = async (argv: readonly string[], change: FileChange, text: string) => {
    const file = argv[argv.length - 1]!;
    await writeOwnFile(file, chainRestoreText(text, change.path, change.role === 'ufw4' ? plan.chains.ufw4 : plan.chains.ufw6), 0o600);
    const result = await run(argv);
    await unlink(file).catch(() => undefined);
    return result;
  };
  let failure: string;
  try {
    for (const change of changes) await writeWithBackup(change.path, change.after, change.path);
    for (const argv of restores) {
      const change = changes.find((c) => (c.role === 'ufw4') === (argv[0] === 'iptables-restore'))!;
      const result = await load(argv, change, change.after);
      if (result.ok) {
        swapped.push({ argv, change });
        continue;
      }
      failure = `${argv[0]} failed: ${result.output || 'no output'}`;
      break;
    }
    if (swapped.length === restores.length) return;
  } catch (error) {
    failure = `the new chains could not be loaded: ${(error as Error).message}`;
  }
  // put back the files, and the chains already swapped (the other family must not stay new alone)
  for (const c of changes) await writeAtomically(c.path, c.before, c.path);
  const stuck: string[] = [];
  for (const { argv, change } of swapped) if (!(await load(argv, change, change.before)).ok) stuck.push(change.role === 'ufw4' ? plan.chains.ufw4 : plan.chains.ufw6);
  throw new SmtpguardError(failure!, {
    exitCode: stuck.length > 0 ? ExitCode.rollbackFailed : ExitCode.rolledBack,
    hint:
      stuck.length > 0
        ? `the previous ${changes.map((c) => c.path).join(' and ')} were put back, but ${stuck.join(' and ')} in the kernel still has the new lines: "ufw reload" loads the files again`
        : `the previous ${changes.map((c) => c.path).join(' and ')} were put back and the chains in the kernel are as they were (check "iptables -S" and "smtpguard status")`,
  });
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
