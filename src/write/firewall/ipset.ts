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
import { readStoreBytes } from '../../store/store-file.js';
import path from 'node:path';
import { withLength } from '../../address.js';
import { ExitCode, SmtpguardError } from '../../errors.js';
import { sortBlocks } from '../access-map.js';
import { writeOwnFile } from '../../store/atomic.js';
import type { Block } from '../../decide/policy.js';
import type { Runner } from '../apply.js';
import type { ChainRule, FirewallBackend, KernelView } from './backend.js';

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

export const ipsetBackend: FirewallBackend = {
  mode: 'ipset',
  sectionLines: (blocks, family, chain) => [setLine(family, chain)],
  checkLine(line, chain) {
    if (line !== setLine(4, chain) && line !== setLine(6, chain)) throw new Error(`bad generated ufw line: ${line}`);
  },
  async readKernel(rules: readonly ChainRule[], _family, query): Promise<KernelView> {
    const view: KernelView = { blocks: [], packets: new Map(), sets: [] };
    for (const rule of rules) {
      if (rule.set === null) continue;
      const listed = await query('ipset', ['list', rule.set]);
      if (!listed.ok) {
        view.sets.push({ name: rule.set, members: 0, maxelem: null, packets: rule.packets });
        continue;
      }
      const [head, members = ''] = listed.output.split(/\nMembers:\n?/);
      // a `nomatch` member is an exception inside a range, not a block
      const cidrs = members.split('\n').filter((l) => l.trim() !== '' && !/\snomatch\b/.test(l)).map((l) => withLength(l.trim().split(/\s/)[0]!));
      for (const cidr of cidrs) view.blocks.push(cidr);
      const maxelem = /\bmaxelem (\d+)/.exec(head ?? '');
      view.sets.push({ name: rule.set, members: cidrs.length, maxelem: maxelem === null ? null : Number(maxelem[1]), packets: rule.packets });
    }
    return view;
  },
};

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

/** After a switch back to the rules backend: the sets nothing names any more, and their save file. Failures are warnings. */
export async function dropSets(saveFile: string, run: Runner): Promise<string[]> {
  const warnings: string[] = [];
  for (const name of Object.values(SET_NAMES)) {
    if (!(await run(['ipset', '-q', '-n', 'list', name])).ok) continue;
    const destroyed = await run(['ipset', 'destroy', name]);
    if (!destroyed.ok) warnings.push(`could not destroy the ipset set ${name} (${destroyed.output || 'no output'}): "ipset destroy ${name}" once nothing uses it`);
  }
  await unlink(saveFile).catch(() => undefined);
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
