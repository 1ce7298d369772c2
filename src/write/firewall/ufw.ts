/**
 * What the two ufw backends (rules, ipset) share: ufw's rules files, each with a generated
 * section in its `*filter` table, in chains install declares. Checks of a file and its section
 * (pure); planning a new section and putting it in force: into the live chain alone
 * (`iptables-restore --noflush`) when ufw has it loaded and only the chain changes its kind,
 * else `ufw reload`, rolled back when it fails (edge); reading the sections and the chains back;
 * and install's pieces in the rules files and ufw's before.init.
 */
import { readFile, unlink } from 'node:fs/promises';
import path from 'node:path';
import { withLength } from '../../address.js';
import { ExitCode, SmtpguardError } from '../../errors.js';
import { PREVIOUS_SUFFIX, writeAtomically, writeOwnFile, writeWithBackup } from '../../store/atomic.js';
import { BEGIN_MARKER, escapeRegExp, findSection, replaceSection, sectionLines, type Section } from '../sections.js';
import { installUfw, uninstallUfw } from '../install.js';
import type { CommandResult, FileChange, Query, Role, Runner, TargetFile } from '../change.js';
import type { BackendFile, FileEdit, FirewallSettings, InstallContext, InstallPart, PlanContext, RecordedBlocks } from './backend.js';

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

/** What status says of rules files without a section. */
export const MISSING_SECTION = `have no "${BEGIN_MARKER}" section`;

/** The backends that keep their section in ufw's rules files (install puts ufw's pieces in for either). */
export const USES_UFW: ReadonlySet<string> = new Set(['rules', 'ipset']);

/** ufw's two rules files, as the files a backend keeps. */
export function ufwFiles(settings: FirewallSettings, own: boolean): BackendFile[] {
  return [
    { role: 'ufw4', path: settings.ufwRules, what: 'ufw rules file', option: '--ufw-rules', own },
    { role: 'ufw6', path: settings.ufw6Rules, what: 'ufw rules file', option: '--ufw6-rules', own },
  ];
}

/**
 * The CIDRs a section's lines put in force, whichever ufw backend wrote them: `-s CIDR` lines
 * are one block each; a `--match-set NAME` line stands for the members of NAME in the
 * ipset save file (`saved`). Other lines are not generated ones and count for nothing.
 */
export function sectionCidrs(lines: readonly string[], chain: string, saved: ReadonlyMap<string, readonly string[]>): string[] {
  const cidrs: string[] = [];
  const rule = new RegExp(`^-A ${escapeRegExp(chain)} -s (\\S+) -j ${escapeRegExp(chain)}-log$`); // not an exception's RETURN
  const set = new RegExp(`^-A ${escapeRegExp(chain)} -m set --match-set (\\S+) src -j `);
  for (const line of lines) {
    const m = rule.exec(line);
    if (m !== null) cidrs.push(m[1]!);
    const s = set.exec(line);
    if (s !== null) for (const cidr of saved.get(s[1]!) ?? []) cidrs.push(cidr);
  }
  return cidrs;
}

/** Whether a section's lines are the ipset backend's (a `--match-set` line). */
export function usesSets(lines: readonly string[]): boolean {
  return lines.some((l) => / -m set --match-set /.test(l));
}

/** How a ufw backend writes its section: the lines for a family's blocks, the check of each, and whether they name sets. */
export interface SectionKind {
  render: (family: 4 | 6) => string[];
  check: (line: string, chain: string) => void;
  sets: boolean;
}

/**
 * The new sections of both rules files and the commands that put them in force. `kind` null:
 * withdraw (another backend took over): an installed section is emptied, a missing file or one
 * without markers is left alone. `saved`: the ipset save file's members, for what a set line
 * stands for now.
 */
export function planSections(kind: SectionKind | null, targets: ReadonlyMap<Role, TargetFile>, context: PlanContext, saved: ReadonlyMap<string, readonly string[]>): { changes: FileChange[]; commands: string[][]; inForce: string[] } {
  const changes: FileChange[] = [];
  const inForce: string[] = [];
  let switching = false;
  for (const role of ['ufw4', 'ufw6'] as const) {
    const target = targets.get(role);
    if (target === undefined || context.keptByOthers.has(role)) continue;
    const installed = target.text !== null && target.text.split('\n').some((l) => l.startsWith(BEGIN_MARKER));
    if (kind === null && !installed) continue;
    if (target.text === null) {
      throw new SmtpguardError(`${target.path} does not exist`, {
        hint: 'run "smtpguard install" (or point --ufw-rules, --ufw6-rules, --access-map at the right files)',
      });
    }
    const section = findSection(target.text, target.path);
    const family = role === 'ufw4' ? 4 : 6;
    const chain = family === 4 ? context.ufwChain : context.ufw6Chain;
    const current = sectionLines(target.text, section);
    for (const cidr of sectionCidrs(current, chain, saved)) inForce.push(cidr);
    let lines: string[] = [];
    if (kind !== null) {
      checkUfwFile(target.text, section, target.path, chain);
      lines = kind.render(family);
      for (const line of lines) kind.check(line, chain);
    }
    if (kind === null ? current.length > 0 : usesSets(current) !== kind.sets) switching = true;
    const after = replaceSection(target.text, section, lines);
    // owed: put in force again although the text is the same (withdrawing: only an emptied section)
    const owed = context.reload && context.owed && (kind !== null || current.length === 0);
    if (after !== target.text || owed) changes.push({ role, path: target.path, before: target.text, after });
  }
  const commands: string[][] = [];
  if (changes.length > 0 && context.reload) {
    // a section that only swaps its kind (or the set line of the ipset backend, or emptied for another
    // backend) goes into the live chain at once: a ufw reload would drop every rule for a moment, and reset every counter
    const live = changes.every((c) => context.probe?.live?.[c.role === 'ufw4' ? 4 : 6] === true);
    if (live && (switching || kind?.sets === true)) {
      for (const c of changes) commands.push([c.role === 'ufw4' ? 'iptables-restore' : 'ip6tables-restore', '--noflush', chainFile(context.stateDir, c.role === 'ufw4' ? 4 : 6)]);
    } else commands.push(['ufw', 'reload']);
  }
  return { changes, commands, inForce };
}

/** Whether a rules file's section holds the ipset backend's set line now. */
export function namesSets(targets: ReadonlyMap<Role, TargetFile>): boolean {
  return (['ufw4', 'ufw6'] as const).some((role) => targets.get(role)?.text?.includes(' --match-set ') === true);
}

/** Whether each family's smtpguard chain is loaded in the kernel now. */
export async function probeLive(settings: FirewallSettings, query: Query): Promise<{ 4: boolean; 6: boolean }> {
  const live = async (command: string, chain: string) => (await query(command, ['-S', chain])).ok;
  return { 4: await live('iptables', settings.ufwChain), 6: await live('ip6tables', settings.ufw6Chain) };
}

/** Files the chain-only restore reads, one per family, beside the save file. */
export const chainFile = (stateDir: string, family: 4 | 6): string => path.join(stateDir, `ufw${family}-chain.smtpguard-new`);

/** The sections of a plan put in force: into the live chains, or by ufw reload (both rolled back when they fail). */
export async function applySections(changes: readonly FileChange[], commands: readonly string[][], context: PlanContext, reload: boolean, run: Runner): Promise<void> {
  const rules = changes.filter((c) => c.role === 'ufw4' || c.role === 'ufw6');
  if (rules.length === 0) return;
  const restores = commands.filter((c) => c[0] === 'iptables-restore' || c[0] === 'ip6tables-restore');
  if (restores.length > 0) await replaceChains(rules, restores, { 4: context.ufwChain, 6: context.ufw6Chain }, run);
  else await replaceRulesFiles(rules, reload, run);
}

/**
 * The rules files, and their new section swapped into the live chain alone: `iptables-restore
 * --noflush` with the chain declared flushes and refills just that chain, in one transaction.
 * No ufw reload: no moment without rules, no counters reset. A failure puts the files back.
 */
async function replaceChains(changes: readonly FileChange[], restores: readonly string[][], chains: { 4: string; 6: string }, run: Runner): Promise<void> {
  const swapped: Array<{ argv: readonly string[]; change: FileChange }> = [];
  const chainOf = (change: FileChange) => chains[change.role === 'ufw4' ? 4 : 6];
  const load = async (argv: readonly string[], change: FileChange, text: string) => {
    const file = argv[argv.length - 1]!;
    await writeOwnFile(file, chainRestoreText(text, change.path, chainOf(change)), 0o600);
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
  for (const { argv, change } of swapped) if (!(await load(argv, change, change.before)).ok) stuck.push(chainOf(change));
  throw new SmtpguardError(failure!, {
    exitCode: stuck.length > 0 ? ExitCode.rollbackFailed : ExitCode.rolledBack,
    hint:
      stuck.length > 0
        ? `the previous ${changes.map((c) => c.path).join(' and ')} were put back, but ${stuck.join(' and ')} in the kernel still has the new lines: "ufw reload" loads the files again`
        : `the previous ${changes.map((c) => c.path).join(' and ')} were put back and the chains in the kernel are as they were (check "iptables -S" and "smtpguard status")`,
  });
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

/** Whether ufw is enabled (ufw.conf beside the rules file); null when there is no ufw.conf. */
export const ufwEnabled = (settings: FirewallSettings): Promise<boolean | null> => readUfwEnabled(path.join(path.dirname(settings.ufwRules), 'ufw.conf'));

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

/** One rule of the chain as `iptables -L CHAIN -v -x -n` shows it: its source or its set, and its packet counter. */
export interface ChainRule {
  source: string | null;
  set: string | null;
  packets: number;
}

/** Packets per source of the chain's rules: `iptables -L CHAIN -v -x -n`; null when it cannot be read. */
export async function readChainRules(family: 4 | 6, chain: string, query: Query): Promise<ChainRule[] | null> {
  const { ok, output } = await query(family === 4 ? 'iptables' : 'ip6tables', ['-L', chain, '-v', '-x', '-n']);
  if (!ok) return null;
  const rules: ChainRule[] = [];
  for (const line of output.split('\n').slice(2)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 4 || !/^\d+$/.test(fields[0]!)) continue;
    const set = / match-set (\S+) src/.exec(line);
    if (set !== null) {
      rules.push({ source: null, set: set[1]!, packets: Number(fields[0]) });
      continue;
    }
    if (fields[2] === 'RETURN') continue; // an exception inside a block: not a block
    const source = fields[fields.length - 2]!; // ip6tables leaves the opt column empty: count from the right
    rules.push({ source: withLength(source), set: null, packets: Number(fields[0]) });
  }
  return rules;
}

/** Packets the smtpguard chains' rules sent to the log-and-drop chain, per family (iptables -L CHAIN -v: no set listed). */
export async function chainDrops(settings: FirewallSettings, query: Query): Promise<Array<{ family: 4 | 6; packets: number }> | null> {
  const out: Array<{ family: 4 | 6; packets: number }> = [];
  for (const [family, chain] of [[4, settings.ufwChain], [6, settings.ufw6Chain]] as const) {
    const rules = await readChainRules(family, chain, query);
    if (rules !== null) out.push({ family, packets: rules.reduce((sum, r) => sum + r.packets, 0) });
  }
  return out.length === 0 ? null : out;
}

/** The blocks both rules files' sections record: `-s CIDR` lines, or the saved members a `--match-set` line names. */
export async function readSections(settings: FirewallSettings, saved: { text: string | null; sets: ReadonlyMap<string, readonly string[]> }, saveFile: string): Promise<RecordedBlocks[]> {
  const out: RecordedBlocks[] = [];
  for (const [file, chain] of [
    [settings.ufwRules, settings.ufwChain],
    [settings.ufw6Rules, settings.ufw6Chain],
  ] as const) {
    let text: string;
    try {
      text = await readFile(file, 'latin1');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        out.push({ file, installed: false, cidrs: [], problem: null });
        continue;
      }
      const why = code === 'EACCES' || code === 'EPERM' ? 'permission denied (root only)' : (error as Error).message;
      out.push({ file, installed: null, cidrs: [], problem: why });
      continue;
    }
    if (!text.split('\n').some((l) => l.startsWith(BEGIN_MARKER))) {
      out.push({ file, installed: false, cidrs: [], problem: null });
      continue;
    }
    try {
      const lines = sectionLines(text, findSection(text, file));
      const cidrs = sectionCidrs(lines, chain, saved.sets);
      // a --match-set line stands for the saved members: without the save file they are unknown, not none
      const problem = saved.text === null && usesSets(lines) ? `its section names ipset sets and ${saveFile} cannot be read (root only; smtpguard run writes it)` : null;
      out.push({ file, installed: true, cidrs, problem });
    } catch (error) {
      out.push({ file, installed: true, cidrs: [], problem: error instanceof SmtpguardError ? error.message : (error as Error).message });
    }
  }
  return out;
}

/**
 * Install's pieces in ufw's rules files (chains declared, the jump of new SMTP connections, the
 * log-and-drop chain, the markers), shared by the rules and ipset backends: both keep their
 * section there, so switching between them is one run. At uninstall the pieces go (with a ufw
 * reload), then the chains nothing jumps to any more are flushed and deleted.
 */
export async function ufwInstallPart(context: InstallContext): Promise<InstallPart> {
  const { settings, uninstall, templates } = context;
  const edits: FileEdit[] = [];
  const warnings: string[] = [];
  for (const [file, family, chain] of [
    [settings.ufwRules, 4, settings.ufwChain],
    [settings.ufw6Rules, 6, settings.ufw6Chain],
  ] as const) {
    const before = await context.readOptional(file);
    if (before === null) {
      if (uninstall) continue;
      throw new SmtpguardError(`${file} does not exist`, { hint: 'is ufw installed? (apt-get install ufw), or point the option at the right file (or choose --firewall nftables on a host without ufw)' });
    }
    const after = uninstall ? uninstallUfw(before) : installUfw(before, file, family, chain, templates);
    if (typeof after === 'string') edits.push({ path: file, before, after });
    else {
      edits.push({ path: file, before, after: after.text });
      for (const warning of after.warnings) warnings.push(warning);
    }
  }
  const changed = edits.filter((e) => e.before !== e.after);
  const commands: string[][] = [];
  if (settings.reload && changed.length > 0) commands.push(['ufw', 'reload']);
  // uninstall: once ufw has reloaded without them, nothing jumps to the smtpguard chains (ufw's
  // stop does not flush chains it does not know: they would keep their rules)
  if (uninstall && settings.reload) {
    for (const [command, chain] of [['iptables', settings.ufwChain], ['ip6tables', settings.ufw6Chain]] as const) {
      if (!(await context.query(command, ['-S', chain])).ok) continue;
      for (const name of [chain, `${chain}-log`]) commands.push([command, '-F', name], [command, '-X', name]);
    }
  }
  return {
    name: 'ufw rules files',
    edits,
    commands,
    warnings,
    notes: [],
    pending: false,
    async carryOut(run, reload) {
      const out: string[] = [];
      const rules: FileChange[] = changed.map((e) => ({ role: e.path === settings.ufwRules ? 'ufw4' : 'ufw6', path: e.path, before: e.before!, after: e.after! }));
      if (rules.length > 0) await replaceRulesFiles(rules, reload, run);
      for (const argv of commands.filter((c) => c[0] !== 'ufw')) {
        const result = await run(argv);
        if (!result.ok) out.push(`${argv.join(' ')} failed: ${result.output}`);
      }
      return out;
    },
  };
}
