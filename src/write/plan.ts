/**
 * Plan: a decision and the current target files -> what would be written where and
 * which commands would run. Pure. `--dry-run`, `--json` and the real run all come
 * from this one object, so a dry run cannot disagree with a run.
 *
 * Every target is validated here, before anything is written: a marker problem in
 * any file stops the run with no file changed.
 */
import path from 'node:path';
import { compareCidrs } from '../address.js';
import { SmtpguardError } from '../errors.js';
import { MAX_BLOCK_ADDRESSES, type Decision } from '../decide/policy.js';
import { addressesLeftOutOfMap, INDEX_SUFFIX, NEW_MAP_SUFFIX, renderAccessMap, type MapType } from './access-map.js';
import { BEGIN_MARKER, findSection, replaceSection, sectionLines } from './sections.js';
import { checkUfwFile } from './firewall/ufw.js';
import { backendFor, sectionCidrs, usesSets, type FirewallMode } from './firewall/backend.js';
import { initSectionLines, parseSaveFile, renderSaveFile, RESTORE_FILE, SET_NAMES } from './firewall/ipset.js';

export { INDEX_SUFFIX, NEW_MAP_SUFFIX };

/**
 * ufw4/ufw6: the rules files; map: the access map; sets: the ipset save file (state dir);
 * init: ufw's before.init, whose section creates the sets at boot.
 */
export type Role = 'ufw4' | 'ufw6' | 'map' | 'sets' | 'init';

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
  /** The firewall backend (default rules). */
  firewall?: FirewallMode;
  /** Where the ipset save file and the scripts of a change live. */
  stateDir?: string;
  /** Whether the kernel has each family's smtpguard chain loaded now: a change of the section is then swapped into that chain alone (iptables-restore --noflush), without a ufw reload. */
  liveChains?: { 4: boolean; 6: boolean };
}

export interface FileChange {
  role: Role;
  path: string;
  before: string;
  /** '' for the save file of the ipset backend when the rules backend takes over: it is removed. */
  after: string;
}

export interface Plan {
  decision: Decision;
  mapType: MapType;
  /** The smtpguard chain of each rules file (a chain-only restore names it). */
  chains: { ufw4: string; ufw6: string };
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
  summary: {
    blocks: number;
    added: number;
    removed: number;
    addedCidrs: string[];
    removedCidrs: string[];
    leftOut: number;
    leftOutOfMap: number;
    /** The rules backend just went past RULES_ADVICE_BLOCKS: said once, in the cron line. */
    rulesPastAdvice: boolean;
  };
}

/** Past this many blocks the rules backend costs every new connection and every reload (bench/results.md): the cron line says so once. */
export const RULES_ADVICE_BLOCKS = 1000;


/** Reloads a file needs although its text does not change (see PendingReloads). */
export type Owed = ReadonlySet<'ufw' | 'map'>;

export function buildPlan(decision: Decision, targets: readonly TargetFile[], options: PlanOptions, owed: Owed = new Set()): Plan {
  const changes: FileChange[] = [];
  const previousBlocks = new Set<string>();
  const mode = options.firewall ?? 'rules';
  const backend = backendFor(mode);
  const savedText = targets.find((t) => t.role === 'sets')?.text ?? null;
  const saved = parseSaveFile(savedText ?? '');
  let switching = false;
  for (const target of targets) {
    if (target.role === 'sets') {
      // the ipset save file: the set backend's record; gone when the rules backend takes over
      const after = mode === 'ipset' ? renderSaveFile(decision.blocks) : '';
      const before = target.text ?? '';
      if (after !== before || (mode === 'ipset' && options.reload && owed.has('ufw'))) changes.push({ role: 'sets', path: target.path, before, after });
      continue;
    }
    if (target.role === 'init' && (target.text === null || !target.text.split('\n').some((l) => l.startsWith(BEGIN_MARKER)))) {
      if (mode === 'rules') continue; // the rules backend needs nothing at boot
      throw new SmtpguardError(`${target.path} ${target.text === null ? 'does not exist' : 'has no smtpguard section'}: --firewall ipset needs it to create its sets before ufw loads its rules at boot`, {
        hint: 'run "smtpguard install --firewall ipset", which adds the section (ufw ships before.init; reinstall ufw if it is missing)',
      });
    }
    if (target.text === null) {
      throw new SmtpguardError(`${target.path} does not exist`, {
        hint: 'run "smtpguard install" (or point --ufw-rules, --ufw6-rules, --access-map at the right files)',
      });
    }
    const section = findSection(target.text, target.path);
    let lines: string[];
    if (target.role === 'map') {
      lines = renderAccessMap(decision.blocks, options.mapType, options.rejectText);
    } else if (target.role === 'init') {
      lines = mode === 'ipset' ? initSectionLines(options.stateDir ?? '') : [];
    } else {
      const chain = target.role === 'ufw4' ? options.ufwChain : options.ufw6Chain;
      checkUfwFile(target.text, section, target.path, chain);
      lines = backend.sectionLines(decision.blocks, target.role === 'ufw4' ? 4 : 6, chain);
      for (const line of lines) backend.checkLine(line, chain);
      const current = sectionLines(target.text, section);
      for (const cidr of sectionCidrs(current, chain, saved)) previousBlocks.add(cidr);
      if (usesSets(current) !== (mode === 'ipset')) switching = true;
    }
    const after = replaceSection(target.text, section, lines);
    const reloadOwed = options.reload && target.role !== 'init' && owed.has(target.role === 'map' ? 'map' : 'ufw');
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
    rulesPastAdvice: mode === 'rules' && previousBlocks.size <= RULES_ADVICE_BLOCKS && current.size > RULES_ADVICE_BLOCKS,
  };
  return { decision, mapType: options.mapType, chains: { ufw4: options.ufwChain, ufw6: options.ufw6Chain }, changes, commands: options.reload ? commandsFor(changes, options, addedCidrs, switching) : [], notes: notesFor(decision, options), summary };
}

/** The SMTP ports install sends through the smtpguard chain (templates/ufw-rules.rules). */
export const SMTP_PORTS = [25, 465, 587] as const;
/** Blocks per `ss -K` command (one filter expression each; 1024 IPv6 terms are ~46 kB, under the 128 kB an argument may be, and ss parses them in ~20 ms). */
const CUT_BATCH = 1024;

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

/** Files the chain-only restore reads, one per family, beside the save file. */
export const chainFile = (stateDir: string, family: 4 | 6): string => path.join(stateDir, `ufw${family}-chain.smtpguard-new`);

function commandsFor(changes: readonly FileChange[], options: PlanOptions, added: readonly string[], switching: boolean): string[][] {
  const commands: string[][] = [];
  const config = options.postfixConfigDir === null ? [] : ['-c', options.postfixConfigDir];
  const stateDir = options.stateDir ?? '';
  const map = changes.find((c) => c.role === 'map');
  if (map !== undefined) {
    if (options.mapType !== 'cidr') commands.push(['postmap', ...config, `${options.mapType}:${map.path}${NEW_MAP_SUFFIX}`]);
    commands.push(['postfix', ...config, 'reload']);
  }
  // the firewall: sets first (ufw's rules must never name a set that is not there), then the chains, then the sets nothing names
  const sets = changes.find((c) => c.role === 'sets');
  if (sets !== undefined && sets.after !== '') commands.push(['ipset', 'restore', '-file', path.join(stateDir, RESTORE_FILE)]);
  const ufw = changes.filter((c) => c.role === 'ufw4' || c.role === 'ufw6');
  if (ufw.length > 0) {
    // a section that only swaps backends (or the set line of the ipset backend) goes into the live chain at once:
    // a ufw reload would drop every rule for a moment, and reset every counter
    const live = ufw.every((c) => options.liveChains?.[c.role === 'ufw4' ? 4 : 6] === true);
    if (live && (switching || options.firewall === 'ipset')) {
      for (const c of ufw) commands.push([c.role === 'ufw4' ? 'iptables-restore' : 'ip6tables-restore', '--noflush', chainFile(stateDir, c.role === 'ufw4' ? 4 : 6)]);
    } else commands.push(['ufw', 'reload']);
  }
  if (sets !== undefined && sets.after === '') for (const name of Object.values(SET_NAMES)) commands.push(['ipset', 'destroy', name]);
  if ((ufw.length > 0 || (sets !== undefined && sets.after !== '')) && options.cutSessions !== false) for (const cut of cutSessionCommands(added)) commands.push(cut);
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
