/**
 * What both firewall backends share: ufw's rules files. Checks of a file and its section
 * (pure), and replacing the files with a `ufw reload` that is rolled back when it fails (edge).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ExitCode, SmtpguardError } from '../../errors.js';
import { PREVIOUS_SUFFIX, writeAtomically, writeWithBackup } from '../../store/atomic.js';
import { escapeRegExp, findSection, sectionLines, type Section } from '../sections.js';
import type { CommandResult, Runner } from '../apply.js';
import type { FileChange } from '../plan.js';

/**
 * A ufw rules file must declare every chain a generated line jumps to, and hold the
 * section inside its `*filter` table: a jump to an undeclared chain makes `ufw reload`
 * fail half-way and leave the firewall without its rules (FIELD-NOTES §4).
 */
export function checkUfwFile(text: string, section: Section, file: string, chain: string): void {
  const filterAt = text.startsWith('*filter') ? 0 : text.lastIndexOf('\n*filter', section.bodyStart);
  const commitAt = text.indexOf('\nCOMMIT', section.bodyEnd);
  const table = filterAt === -1 || commitAt === -1 ? null : text.slice(filterAt, commitAt);
  if (table === null || /\n\*\w+/.test(table.slice(1)) || /\nCOMMIT\b/.test(table)) {
    throw new SmtpguardError(`${file}: the smtpguard section is not inside the *filter table`, {
      hint: 'move the marker lines between "*filter" and its "COMMIT" (smtpguard install puts them after the ESTABLISHED accept)',
    });
  }
  for (const name of [chain, `${chain}-log`]) {
    if (!new RegExp(`^:${escapeRegExp(name)} `, 'm').test(table)) {
      throw new SmtpguardError(`${file} does not declare the chain ${name} in its *filter table (a line ":${name} - [0:0]")`, {
        hint: 'run "smtpguard install", which declares it; a jump to an undeclared chain breaks "ufw reload"',
      });
    }
  }
}

/** Only fixed shapes reach a firewall file: chain names are checked once, here. */
export function chainNameProblem(name: string): string | null {
  return /^[A-Za-z][A-Za-z0-9_-]{0,23}$/.test(name) ? null : 'use letters, digits, - and _, at most 24 characters';
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
export async function readUfwEnabled(file: string): Promise<boolean | null> {
  const text = await readFile(file, 'utf8').catch(() => null);
  if (text === null) return null;
  const m = /^\s*ENABLED\s*=\s*"?(\w+)"?/m.exec(text);
  return m === null ? null : m[1]!.toLowerCase() === 'yes';
}

async function restore(changes: readonly FileChange[]): Promise<void> {
  for (const change of changes) await writeAtomically(change.path, change.before, change.path);
}

/**
 * The input of `iptables-restore --noflush` that refills the smtpguard chain of a rules file
 * with its generated section: `*filter`, the chain declared (which flushes it), the section's
 * lines (none: an empty chain), `COMMIT`. Its `-log` chain and everything else stay as ufw
 * loaded them.
 */
export function chainRestoreText(text: string, file: string, chain: string): string {
  const lines = sectionLines(text, findSection(text, file));
  return ['*filter', `:${chain} - [0:0]`, ...lines, 'COMMIT', ''].join('\n');
}
