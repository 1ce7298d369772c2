/**
 * The `ipset` backend (`--firewall ipset`): the generated section of each ufw rules file
 * holds one line, `-A ufw-smtpguard -m set --match-set smtpguard4 src -j ufw-smtpguard-log`
 * (smtpguard6 in before6.rules), and the blocks are the members of two `hash:net` sets: one
 * hash lookup per new connection however many blocks there are.
 *
 * - The save file (`STATE/ipset.save`, `ipset save` format) is the record of the members, as
 *   the rules files are for the rules backend; it is written atomically after the kernel has
 *   the members.
 * - A change is loaded into temporary sets with one `ipset restore` (all creates and adds
 *   first, then the swaps): a failure stops before any swap, so the sets in force stay as
 *   they were. Nothing reloads ufw.
 * - ufw's rules name the sets, so the sets must exist before ufw loads them at boot and on
 *   every `ufw reload`: a generated section of ufw's own hook, before.init (ufw-init runs it
 *   with `start` before it loads the rules files), creates them from the save file.
 */
import { chmod, readFile, stat, unlink } from 'node:fs/promises';
import { writeWithBackup } from '../../store/atomic.js';
import { readStoreBytes } from '../../store/store-file.js';
import path from 'node:path';
import { withLength } from '../../address.js';
import { ExitCode, SmtpguardError } from '../../errors.js';
import { sortBlocks } from '../access-map.js';
import { writeOwnFile } from '../../store/atomic.js';
import type { Block } from '../../decide/policy.js';
import type { FileChange, Query, Runner } from '../change.js';
import { findSection, sectionLines, replaceSection, BEGIN_MARKER } from '../sections.js';
import { installInit, uninstallInit } from '../install.js';
import { applySections, chainDrops, ufwEnabled, MISSING_SECTION, planSections, probeLive, readChainRules, readSections, USES_UFW } from './ufw.js';
import type { FirewallBackend, FirewallSettings, KernelView } from './backend.js';

export const SET_NAMES = { 4: 'smtpguard4', 6: 'smtpguard6' } as const;
/** The members of the last run, in the state directory: what boot restores. */
export const SAVE_FILE = 'ipset.save';
/** The script of one change, beside the save file while `ipset restore` runs. */
export const RESTORE_FILE = 'ipset.smtpguard-new';
const TEMP_SUFFIX = '-new';
/** Never the 65,536 default that silently fills: at least 2^17, and twice the members. */
const MIN_MAXELEM = 131_072;

/** ufw's before.init: beside the rules files, where ufw-init looks for it. */
export const initFileOf = (ufwRules: string): string => path.join(path.dirname(ufwRules), 'before.init');

/** u+x, and g+x / o+x where it is readable (0640 -> 0750): ufw-init runs before.init only when it is executable. */
export async function makeExecutable(file: string): Promise<void> {
  const mode = (await stat(file)).mode & 0o7777;
  if ((mode & 0o100) === 0) await chmod(file, mode | 0o100 | ((mode & 0o040) >> 2) | ((mode & 0o004) >> 2));
}

export const setLine = (family: 4 | 6, chain: string): string => `-A ${chain} -m set --match-set ${SET_NAMES[family]} src -j ${chain}-log`;

/** maxelem and hashsize for a set of `count` members: powers of two with room to double. */
export function setSize(count: number): { maxelem: number; hashsize: number } {
  return { maxelem: Math.max(MIN_MAXELEM, pow2(2 * count)), hashsize: Math.max(1024, pow2(Math.ceil(count / 2))) };
}

const pow2 = (n: number): number => 2 ** Math.ceil(Math.log2(Math.max(1, n)));

/** The save file for these blocks: both sets, created and filled, sorted by address (pure). */
export function renderSaveFile(blocks: readonly Block[]): string {
  const lines = ['# smtpguard --firewall ipset: the members of its sets after the last run (ipset restore format); boot restores them from here'];
  for (const family of [4, 6] as const) {
    const members = sortBlocks(blocks).filter((b) => b.family === family);
    const { maxelem, hashsize } = setSize(members.length);
    lines.push(`create ${SET_NAMES[family]} hash:net family ${family === 4 ? 'inet' : 'inet6'} hashsize ${hashsize} maxelem ${maxelem}`);
    // an exception inside a range: a `nomatch` member, which hash:net checks before the range; each
    // element once (ipset restore stops at a second add of it), and never one that is also a block
    const blocked = new Set(members.map((b) => b.cidr));
    const nomatch = new Set<string>();
    for (const b of members) {
      lines.push(`add ${SET_NAMES[family]} ${b.cidr}`);
      for (const e of b.exceptions ?? []) {
        if (blocked.has(e) || nomatch.has(e)) continue;
        nomatch.add(e);
        lines.push(`add ${SET_NAMES[family]} ${e} nomatch`);
      }
    }
  }
  return lines.join('\n') + '\n';
}

/** The members per set a save file names, as CIDRs with their length (`192.0.2.7/32`). */
export function parseSaveFile(text: string): Map<string, string[]> {
  const sets = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const m = /^(create|add) (\S+)(?: (\S+))?/.exec(line);
    if (m === null || line.endsWith(' nomatch')) continue; // an exception is no block
    if (m[1] === 'create') sets.set(m[2]!, sets.get(m[2]!) ?? []);
    else if (m[3] !== undefined) (sets.get(m[2]!) ?? sets.set(m[2]!, []).get(m[2]!)!).push(withLength(m[3]));
  }
  return sets;
}

/**
 * The `ipset restore` script that puts a save file in force. A set that exists is filled
 * as SET-new and swapped in at the end (atomic per set; an error before stops every swap);
 * a set that does not exist yet is created under its own name. `existing`: the names the
 * kernel has now.
 */
export function restoreScript(saveText: string, existing: ReadonlySet<string>): string {
  const out: string[] = [];
  const swaps: string[] = [];
  for (const line of saveText.split('\n')) {
    const m = /^(create|add) (\S+)( .*)?$/.exec(line);
    if (m === null) continue;
    const name = m[2]!;
    const target = existing.has(name) ? name + TEMP_SUFFIX : name;
    out.push(`${m[1]} ${target}${m[3] ?? ''}`);
    if (m[1] === 'create' && target !== name) swaps.push(`swap ${target} ${name}`, `destroy ${target}`);
  }
  return [...out, ...swaps].join('\n') + '\n';
}

/**
 * The body of before.init's generated section: at `start`, sets that do not exist are
 * restored from the save file, or created empty when it is missing or bad, so that ufw's
 * rules always load. Sets that exist (a `ufw reload`) are left as they are.
 */
export function initSectionLines(stateDir: string): string[] {
  const file = path.resolve(stateDir, SAVE_FILE); // ufw-init runs in /: never a relative path
  const save = shellQuote(file);
  const lines = [
    '# smtpguard --firewall ipset: ufw\'s rules match the sets smtpguard4 and smtpguard6, so they must',
    '# exist before ufw loads its rules: at start, restore them from the last run\'s members.',
    'if [ "$1" = start ]; then',
    '    (',
    '        PATH=/usr/sbin:/usr/bin:/sbin:/bin',
    `        if ! ipset -q -n list ${SET_NAMES[4]} >/dev/null || ! ipset -q -n list ${SET_NAMES[6]} >/dev/null; then`,
    `            ipset -exist restore -file ${save} || echo 'smtpguard: could not restore its sets from ipset.save; the missing ones start empty until its next run' >&2`,
  ];
  for (const family of [4, 6] as const) {
    lines.push(`            ipset -q -n list ${SET_NAMES[family]} >/dev/null || ipset create ${SET_NAMES[family]} hash:net family ${family === 4 ? 'inet' : 'inet6'} maxelem ${MIN_MAXELEM} || echo 'smtpguard: cannot create the set ${SET_NAMES[family]} (is ipset installed?)' >&2`);
  }
  lines.push('        fi', '    )', 'fi');
  return lines;
}

const shellQuote = (text: string): string => `'${text.replace(/'/g, `'\\''`)}'`;

/**
 * Puts a new save file's members in force: one `ipset restore` of the script (restoreScript),
 * written beside the save file; the save file is replaced only once the kernel has them. A
 * failure destroys what the script left half made and throws exit 5 (rolled back): the
 * sets in force are the old ones.
 */
export async function loadSets(saveFile: string, saveText: string, restoreArgv: readonly string[], run: Runner): Promise<void> {
  const names = Object.values(SET_NAMES);
  const exists = async (name: string) => (await run(['ipset', '-q', '-n', 'list', name])).ok;
  for (const name of names) if (await exists(name + TEMP_SUFFIX)) await run(['ipset', '-q', 'destroy', name + TEMP_SUFFIX]); // a run that died half-way
  const existing = new Set<string>();
  for (const name of names) if (await exists(name)) existing.add(name);
  const scriptFile = restoreArgv[restoreArgv.length - 1]!;
  await writeOwnFile(scriptFile, restoreScript(saveText, existing), 0o600); // in the state dir: never through a link
  const restored = await run(restoreArgv);
  await unlink(scriptFile).catch(() => undefined);
  if (!restored.ok) {
    // only what this script made: the temporary sets, and sets it created fresh (nothing names them yet)
    for (const name of names) {
      await run(['ipset', '-q', 'destroy', name + TEMP_SUFFIX]);
      if (!existing.has(name)) await run(['ipset', '-q', 'destroy', name]);
    }
    throw new SmtpguardError(`ipset restore failed, the sets in force were not changed: ${restored.output || 'no output'}`, {
      exitCode: ExitCode.rolledBack,
      hint: `is ipset installed (apt-get install ipset), and do the ip_set modules load (modprobe ip_set_hash_net)? check "ipset list -t"; ${saveFile} still holds the members in force`,
    });
  }
}

/** After a switch to another backend: the sets nothing names any more, then their save file (kept while a set could not be destroyed: the next run tries again). Failures are warnings. */
export async function dropSets(saveFile: string, run: Runner): Promise<string[]> {
  const warnings: string[] = [];
  for (const name of Object.values(SET_NAMES)) {
    if (!(await run(['ipset', '-q', '-n', 'list', name])).ok) continue;
    const destroyed = await run(['ipset', 'destroy', name]);
    if (!destroyed.ok) warnings.push(`could not destroy the ipset set ${name} (${destroyed.output || 'no output'}): "ipset destroy ${name}" once nothing uses it`);
  }
  if (warnings.length === 0) await unlink(saveFile).catch(() => undefined); // else kept: the next run tries again
  return warnings;
}

/** The members the save file records, per set; an empty map when there is none. */
export async function readSaveFile(stateDir: string): Promise<{ text: string | null; sets: Map<string, string[]> }> {
  const text = await readStoreBytes(path.join(stateDir, SAVE_FILE)).then((b) => b.toString('latin1'), () => null);
  return { text, sets: parseSaveFile(text ?? '') };
}

/**
 * Why ufw would not find the sets at its next start, or null: ufw-init runs before.init only
 * when it is executable, and only its filled section creates the sets.
 */
export async function bootProblem(initFile: string): Promise<string | null> {
  const [text, info] = await Promise.all([readFile(initFile, 'latin1').catch(() => null), stat(initFile).catch(() => null)]);
  if (text === null || info === null) return `${initFile} is missing: at the next boot or ufw start, ufw cannot load its rules (they name the sets smtpguard4/smtpguard6); "smtpguard install --firewall ipset" puts it back`;
  if (!text.includes(`ipset -exist restore -file`)) return `${initFile} does not create the sets yet: the next "smtpguard run" writes its section`;
  if ((info.mode & 0o100) === 0) return `${initFile} is not executable, so ufw-init skips it: at the next boot ufw cannot load its rules (they name the sets smtpguard4/smtpguard6); "chmod u+x ${initFile}" (or "smtpguard install --firewall ipset")`;
  return null;
}

/** Whether each set the save file names is in the kernel with as many members (`ipset list -t`: no member list). */
async function setsMatch(saveText: string, query: Query): Promise<boolean> {
  for (const [name, members] of parseSaveFile(saveText)) {
    const listed = await query('ipset', ['list', '-t', name]);
    const count = /^Number of entries: (\d+)$/m.exec(listed.output);
    if (!listed.ok || count === null || Number(count[1]) !== members.length) return false;
  }
  return true;
}

/** before.init, made executable when its section creates the sets (ufw-init runs it only then; Debian ships it 0640). */
async function writeInit(init: FileChange): Promise<void> {
  await writeWithBackup(init.path, init.after, init.path);
  if (sectionLines(init.after, findSection(init.after, init.path)).length > 0) await makeExecutable(init.path);
}

const hasMarker = (text: string | null): boolean => text !== null && text.split('\n').some((l) => l.startsWith(BEGIN_MARKER));

/**
 * What the kernel enforces through the smtpguard chains of ufw, whichever of the two ufw backends
 * wrote them: `-s` lines (the rules backend, or a switch whose update is owed) and `--match-set`
 * lines with their sets' members.
 */
export async function readUfwKernel(settings: FirewallSettings, query: Query): Promise<{ view: KernelView | null; problem: string | null }> {
  const view: KernelView = { blocks: [], extra: [], packets: new Map(), expires: new Map(), sets: [], dropped: [] };
  for (const [family, chain] of [[4, settings.ufwChain], [6, settings.ufw6Chain]] as const) {
    const rules = await readChainRules(family, chain, query);
    if (rules === null) return { view: null, problem: `cannot read the ${family === 4 ? 'iptables' : 'ip6tables'} counters of ${chain} (root only, and ufw must be loaded)` };
    view.dropped.push({ family, packets: rules.reduce((sum, r) => sum + r.packets, 0) });
    for (const rule of rules) {
      if (rule.set === null) {
        // a rules backend's line (a switch whose update is owed)
        if (rule.source !== null) view.packets.set(rule.source, (view.packets.get(rule.source) ?? 0) + rule.packets);
        if (rule.source !== null) view.blocks.push(rule.source);
        continue;
      }
      const listed = await query('ipset', ['list', rule.set]);
      if (!listed.ok) {
        view.sets.push({ name: rule.set, members: 0, maxelem: null, packets: rule.packets, present: false });
        continue;
      }
      const [head, members = ''] = listed.output.split(/\nMembers:\n?/);
      // a `nomatch` member is an exception inside a range, not a block
      const cidrs = members.split('\n').filter((l) => l.trim() !== '' && !/\snomatch\b/.test(l)).map((l) => withLength(l.trim().split(/\s/)[0]!));
      for (const cidr of cidrs) view.blocks.push(cidr);
      const maxelem = /\bmaxelem (\d+)/.exec(head ?? '');
      view.sets.push({ name: rule.set, members: cidrs.length, maxelem: maxelem === null ? null : Number(maxelem[1]), packets: rule.packets, present: true });
    }
  }
  return { view, problem: null };
}

/** The blocks ufw's rules files record (the set lines standing for the save file's members). */
export const ufwRecorded = async (settings: FirewallSettings) => readSections(settings, await readSaveFile(settings.stateDir), path.join(settings.stateDir, SAVE_FILE));

export const ipsetBackend: FirewallBackend = {
  mode: 'ipset',
  summary: 'members of the ipset sets smtpguard4/smtpguard6, swapped in without a reload (for thousands of blocks)',
  kernelName: "the kernel's sets",
  recordName: 'the save file',
  updateName: 'set update (ipset restore)',
  missingRecord: MISSING_SECTION,
  enabled: ufwEnabled,
  roles: ['ufw4', 'ufw6', 'sets', 'init'],
  files: (settings) => [
    { role: 'ufw4', path: settings.ufwRules, what: 'ufw rules file', option: '--ufw-rules', own: true },
    { role: 'ufw6', path: settings.ufw6Rules, what: 'ufw rules file', option: '--ufw6-rules', own: true },
    { role: 'sets', path: path.join(settings.stateDir, SAVE_FILE), what: 'ipset save file', option: '--state-dir', own: true },
    { role: 'init', path: initFileOf(settings.ufwRules), what: 'ufw before.init script', option: '--ufw-rules', own: true, hint: 'before.init sits beside the rules file: check --ufw-rules' },
  ],
  settingsProblem: (settings) =>
    settings.state
      ? null
      : new SmtpguardError('--firewall ipset keeps the members of its sets in the state directory (ipset.save, which boot restores): it cannot run with --no-state', { hint: 'drop --no-state (or use --firewall rules)' }),
  // a boot that could not restore the sets (or a hand) left them short, and a run that sees no change in the decision would never put them back
  kernelOwes: async (_settings, targets, query) => {
    const saved = targets.get('sets')?.text ?? null;
    return saved !== null && !(await setsMatch(saved, query));
  },
  probe: async (settings, _targets, query) => ({ live: await probeLive(settings, query) }),
  plan(blocks, targets, context) {
    const changes: FileChange[] = [];
    const commands: string[][] = [];
    const setsFile = targets.get('sets');
    const init = targets.get('init');
    const saved = parseSaveFile(setsFile?.text ?? '');
    if (blocks === null) {
      // withdraw: before.init's section emptied, the sets and their save file gone (once the rules no longer name them)
      if (init !== undefined && !context.keptByOthers.has('init') && hasMarker(init.text)) {
        const after = replaceSection(init.text!, findSection(init.text!, init.path), []);
        if (after !== init.text) changes.push({ role: 'init', path: init.path, before: init.text!, after });
      }
      if (setsFile !== undefined && !context.keptByOthers.has('sets') && setsFile.text !== null) {
        changes.push({ role: 'sets', path: setsFile.path, before: setsFile.text, after: '' });
        if (context.reload) for (const name of Object.values(SET_NAMES)) commands.push(['ipset', 'destroy', name]);
      }
      return { mode: 'ipset', active: false, changes, commands, inForce: [], owes: changes.some((c) => c.role === 'sets'), context };
    }
    if (setsFile !== undefined) {
      const after = renderSaveFile(blocks);
      const before = setsFile.text ?? '';
      if (after !== before || (context.reload && context.owed)) {
        changes.push({ role: 'sets', path: setsFile.path, before, after });
        if (context.reload) commands.push(['ipset', 'restore', '-file', path.join(context.stateDir, RESTORE_FILE)]);
      }
    }
    if (init !== undefined) {
      if (!hasMarker(init.text)) {
        throw new SmtpguardError(`${init.path} ${init.text === null ? 'does not exist' : 'has no smtpguard section'}: --firewall ipset needs it to create its sets before ufw loads its rules at boot`, {
          hint: 'run "smtpguard install --firewall ipset", which adds the section (ufw ships before.init; reinstall ufw if it is missing)',
        });
      }
      const after = replaceSection(init.text!, findSection(init.text!, init.path), initSectionLines(context.stateDir));
      if (after !== init.text) changes.push({ role: 'init', path: init.path, before: init.text!, after });
    }
    const kind = { render: (family: 4 | 6) => [setLine(family, family === 4 ? context.ufwChain : context.ufw6Chain)], check: checkSetLine, sets: true };
    const sections = planSections(kind, targets, context, saved);
    const all = [...sections.changes, ...changes];
    return { mode: 'ipset', active: true, changes: all, commands: [...commands, ...sections.commands], inForce: sections.inForce, owes: all.some((c) => c.role !== 'init'), context };
  },
  /**
   * The sets' new members first (ipset restore), before.init, the rules files (into the live
   * chains, or ufw reload): a rule never names a set that is not there. Withdrawn: before.init
   * emptied, then the sets nothing names any more.
   */
  async apply(part, run, reload) {
    const sets = part.changes.find((c) => c.role === 'sets');
    const init = part.changes.find((c) => c.role === 'init');
    const warnings: string[] = [];
    if (part.active) {
      if (sets !== undefined) {
        const restore = part.commands.find((c) => c[0] === 'ipset' && c[1] === 'restore');
        if (restore !== undefined) await loadSets(sets.path, sets.after, restore, run);
        await writeOwnFile(sets.path, sets.after, 0o600);
      }
      if (init !== undefined) await writeInit(init);
      await applySections(part.changes, part.commands, part.context, reload, run);
      return warnings;
    }
    if (init !== undefined) await writeInit(init);
    // without a reload the kernel's sets stay in use: the save file stays too, and the next run with reloads drops both
    if (sets !== undefined && reload) for (const warning of await dropSets(sets.path, run)) warnings.push(warning);
    return warnings;
  },
  recorded: ufwRecorded,
  readKernel: readUfwKernel,
  dropped: chainDrops,
  boot: async () => 'nothing to load: ufw\'s before.init restores the sets before ufw loads its rules at boot',
  bootProblem: (settings) => bootProblem(initFileOf(settings.ufwRules)),
  async install(context) {
    const { settings, uninstall } = context;
    if (!uninstall && !USES_UFW.has(settings.firewall)) return null;
    const initFile = initFileOf(settings.ufwRules);
    const before = await context.readOptional(initFile);
    if (before === null && settings.firewall === 'ipset' && !uninstall) {
      throw new SmtpguardError(`${initFile} does not exist: --firewall ipset creates its sets there before ufw loads its rules at boot`, {
        hint: 'ufw ships it (a conffile): "apt-get install --reinstall -o Dpkg::Options::=--force-confmiss ufw" puts it back',
      });
    }
    const edits = before === null ? [] : [{ path: initFile, before, after: uninstall ? uninstallInit(before) : installInit(before) }];
    const commands: string[][] = [];
    if (uninstall && settings.reload) for (const name of Object.values(SET_NAMES)) if ((await context.query('ipset', ['-n', 'list', name])).ok) commands.push(['ipset', 'destroy', name]);
    const executable = before === null || uninstall || settings.firewall !== 'ipset' ? true : ((await stat(initFile)).mode & 0o100) !== 0;
    return {
      name: 'ufw before.init',
      edits,
      commands,
      warnings: [],
      notes: executable ? [] : [`${initFile} is made executable: ufw-init runs it only then`],
      pending: !executable,
      async carryOut(run) {
        const warnings: string[] = [];
        // at uninstall it goes after the ufw reload: it may create the sets the rules still named
        for (const e of edits) if (e.after !== e.before) await writeWithBackup(e.path, e.after, e.path);
        if (!uninstall && settings.firewall === 'ipset') await makeExecutable(initFile);
        for (const argv of commands) {
          const result = await run(argv);
          if (!result.ok) warnings.push(`${argv.join(' ')} failed: ${result.output}`);
        }
        return warnings;
      },
    };
  },
};

/** The one line of the ipset backend's section, and nothing else (a bug, caught before writing). */
function checkSetLine(line: string, chain: string): void {
  if (line !== setLine(4, chain) && line !== setLine(6, chain)) throw new Error(`bad generated ufw line: ${line}`);
}
