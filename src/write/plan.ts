/**
 * Plan: a decision and the current target files -> what would be written where and
 * which commands would run. Pure. `--dry-run`, `--json` and the real run all come
 * from this one object, so a dry run cannot disagree with a run.
 *
 * Every target is validated here, before anything is written: a marker problem in
 * any file stops the run with no file changed.
 */
import { compareCidrs } from '../address.js';
import { SmtpguardError } from '../errors.js';
import { MAX_BLOCK_ADDRESSES, type Decision } from '../decide/policy.js';
import {
  addressesLeftOutOfMap,
  checkUfwFile,
  checkUfwLine,
  findSection,
  renderAccessMap,
  renderUfwRules,
  replaceSection,
  sectionLines,
  type MapType,
} from './render.js';

export type Role = 'ufw4' | 'ufw6' | 'map';

export interface TargetFile {
  role: Role;
  path: string;
  /** null: the file does not exist. */
  text: string | null;
}

export interface PlanOptions {
  ufwChain: string;
  ufw6Chain: string;
  mapType: MapType;
  rejectText: string;
  /** `-c DIR` for postmap and postfix. */
  postfixConfigDir: string | null;
  reload: boolean;
  /** Close the open SMTP sessions of new blocks after ufw reloads (default true). */
  cutSessions?: boolean;
}

export interface FileChange {
  role: Role;
  path: string;
  before: string;
  after: string;
}

export interface Plan {
  decision: Decision;
  mapType: MapType;
  /** Only the files whose content changes. */
  changes: FileChange[];
  /** In the order they run. */
  commands: string[][];
  notes: string[];
  /**
   * Blocks after the run, which are new or gone (from the ufw sections, sorted by address),
   * offenders that --max-blocks left out, and addresses of IPv6 range blocks an indexed map
   * does not name.
   */
  summary: { blocks: number; added: number; removed: number; addedCidrs: string[]; removedCidrs: string[]; leftOut: number; leftOutOfMap: number };
}

/** Suffix postmap adds for each indexed map type. */
export const INDEX_SUFFIX: Readonly<Record<Exclude<MapType, 'cidr'>, string>> = { hash: '.db', btree: '.db', lmdb: '.lmdb', cdb: '.cdb' };
/** The new map is built beside the live one, then renamed over it (FIELD-NOTES §3). */
export const NEW_MAP_SUFFIX = '.smtpguard-new';

/** Reloads a file needs although its text does not change (see PendingReloads). */
export type Owed = ReadonlySet<'ufw' | 'map'>;

export function buildPlan(decision: Decision, targets: readonly TargetFile[], options: PlanOptions, owed: Owed = new Set()): Plan {
  const changes: FileChange[] = [];
  const previousBlocks = new Set<string>();
  for (const target of targets) {
    if (target.text === null) {
      throw new SmtpguardError(`${target.path} does not exist`, {
        hint: 'run "smtpguard install" (or point --ufw-rules, --ufw6-rules, --access-map at the right files)',
      });
    }
    const section = findSection(target.text, target.path);
    let lines: string[];
    if (target.role === 'map') {
      lines = renderAccessMap(decision.blocks, options.mapType, options.rejectText);
    } else {
      const chain = target.role === 'ufw4' ? options.ufwChain : options.ufw6Chain;
      checkUfwFile(target.text, section, target.path, chain);
      lines = renderUfwRules(decision.blocks, target.role === 'ufw4' ? 4 : 6, chain);
      for (const line of lines) checkUfwLine(line, chain);
      for (const line of sectionLines(target.text, section)) {
        const m = /^-A \S+ -s (\S+) /.exec(line);
        if (m !== null) previousBlocks.add(m[1]!);
      }
    }
    const after = replaceSection(target.text, section, lines);
    const reloadOwed = options.reload && owed.has(target.role === 'map' ? 'map' : 'ufw');
    if (after !== target.text || reloadOwed) changes.push({ role: target.role, path: target.path, before: target.text, after });
  }

  const current = new Set(decision.blocks.map((b) => b.cidr));
  const addedCidrs = [...current].filter((c) => !previousBlocks.has(c)).sort(compareCidrs);
  const removedCidrs = [...previousBlocks].filter((c) => !current.has(c)).sort(compareCidrs);
  const summary = {
    blocks: current.size,
    added: addedCidrs.length,
    removed: removedCidrs.length,
    addedCidrs,
    removedCidrs,
    leftOut: decision.overLimit.length,
    leftOutOfMap: addressesLeftOutOfMap(decision.blocks, options.mapType),
  };
  return { decision, mapType: options.mapType, changes, commands: options.reload ? commandsFor(changes, options, addedCidrs) : [], notes: notesFor(decision, options), summary };
}

/** The SMTP ports install sends through the smtpguard chain (templates/ufw-rules.rules). */
export const SMTP_PORTS = [25, 465, 587] as const;
/** Blocks per `ss -K` command (one filter expression each). */
const CUT_BATCH = 64;

/**
 * `ss -K` for the SMTP sessions already open from new blocks: the ufw chain sits after the
 * ESTABLISHED accept, so without this a client blocked in the middle of an AUTH session
 * keeps guessing on its open connection. `ss -K` (SOCK_DESTROY) closes the server's socket,
 * which resets the client at once; it runs in the firewall's network namespace, as the run does.
 */
export function cutSessionCommands(cidrs: readonly string[]): string[][] {
  const commands: string[][] = [];
  const ports = `( ${SMTP_PORTS.map((p) => `sport = :${p}`).join(' or ')} )`;
  for (let i = 0; i < cidrs.length; i += CUT_BATCH) {
    const batch = cidrs.slice(i, i + CUT_BATCH);
    commands.push(['ss', '-K', '-tn', 'state', 'established', `( ${batch.map((c) => `dst ${c}`).join(' or ')} )`, 'and', ports]);
  }
  return commands;
}

function commandsFor(changes: readonly FileChange[], options: PlanOptions, added: readonly string[]): string[][] {
  const commands: string[][] = [];
  const config = options.postfixConfigDir === null ? [] : ['-c', options.postfixConfigDir];
  const map = changes.find((c) => c.role === 'map');
  if (map !== undefined) {
    if (options.mapType !== 'cidr') commands.push(['postmap', ...config, `${options.mapType}:${map.path}${NEW_MAP_SUFFIX}`]);
    commands.push(['postfix', ...config, 'reload']);
  }
  if (changes.some((c) => c.role !== 'map')) {
    commands.push(['ufw', 'reload']);
    if (options.cutSessions !== false) for (const cut of cutSessionCommands(added)) commands.push(cut);
  }
  return commands;
}

function notesFor(decision: Decision, options: PlanOptions): string[] {
  const notes: string[] = [];
  const prefixes = decision.blocks.filter((b) => b.family === 6 && !b.cidr.endsWith('/128'));
  if (options.mapType !== 'cidr' && prefixes.length > 0) {
    const left = addressesLeftOutOfMap(decision.blocks, options.mapType);
    notes.push(
      `a ${options.mapType}: map cannot hold IPv6 ranges: ${prefixes.length} IPv6 range block(s) are written to the access map as the addresses seen in them` +
        (left > 0 ? `, at most ${MAX_BLOCK_ADDRESSES} per block (the worst): ${left} address(es) left out of the map` : '') +
        ' (the firewall blocks the whole range); --map-type cidr is the accurate type for IPv6',
    );
  }
  if (decision.overLimit.length > 0) {
    notes.push(`--max-blocks left out ${decision.overLimit.length} offender(s) with fewer events: they are NOT blocked; raise --max-blocks (or use a coarser --ipv6-subnet) to block them`);
  }
  return notes;
}
