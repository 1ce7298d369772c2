/**
 * Plan: a decision and the current target files -> what would be written where and
 * which commands would run. Pure. `--dry-run`, `--json` and the real run all come
 * from this one object, so a dry run cannot disagree with a run.
 *
 * Every target is validated here, before anything is written: a marker problem in
 * any file stops the run with no file changed. The firewall's part comes from the
 * backends (write/firewall/registry.ts): the chosen one for the blocks, every other
 * one to take out what it still has (a switch of backend is one run).
 */
import { compareCidrs } from '../address.js';
import { SmtpguardError } from '../errors.js';
import { MAX_BLOCK_ADDRESSES, type Decision } from '../decide/policy.js';
import { addressesLeftOutOfMap, INDEX_SUFFIX, NEW_MAP_SUFFIX, renderAccessMap, type MapType } from './access-map.js';
import { findSection, replaceSection } from './sections.js';
import { BACKENDS } from './firewall/registry.js';
import type { BackendPlan, Probe } from './firewall/backend.js';
import type { FileChange, Owed, Role, TargetFile } from './change.js';

export { INDEX_SUFFIX, NEW_MAP_SUFFIX };

export interface PlanOptions {
  ufwChain: string;
  ufw6Chain: string;
  mapType: MapType;
  rejectText: string;
  /** `-c DIR` for postmap and postfix. */
  postfixConfigDir: string | null;
  reload: boolean;
  /** Close the open SMTP sessions of new blocks once the firewall has them (default true). */
  cutSessions?: boolean;
  /** The firewall backend (default: the registry's first, rules). */
  firewall?: string;
  /** Where the backends' save files and the scripts of a change live. */
  stateDir?: string;
  /** The ports a block closes, where the backend renders them itself. */
  smtpPorts?: readonly number[];
  /** What each backend's probe found (asked only when its files change). */
  probes?: ReadonlyMap<string, Probe>;
  /** Now (ms): a ban's time left counts from here (default: the clock). */
  now?: number;
  /** Whether each family's ufw chain is loaded now (shorthand for the ufw backends' probe). */
  liveChains?: { 4: boolean; 6: boolean };
  /** Leave the access map as it is (a follower between two reloads of Postfix): `mapHeld` says whether it would have changed. */
  holdMap?: boolean;
}

export interface Plan {
  decision: Decision;
  mapType: MapType;
  /** Only the files whose content changes. */
  changes: FileChange[];
  /** In the order they run. */
  commands: string[][];
  /** The firewall's part, per backend: the chosen one first, then the ones that withdraw. */
  firewall: BackendPlan[];
  /** Its changes only renew ban ends already in force (a backend with kernel timeouts): carried out, but no news for the cron line. */
  quiet: boolean;
  /** `holdMap` left out a change of the access map: owed to a later plan. */
  mapHeld: boolean;
  notes: string[];
  /**
   * Blocks after the run, which are new or gone (from the backends' records, sorted by address),
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
    /** The backend just went past the number of blocks it advises against (the rules backend: 1000): said once, in the cron line. */
    rulesPastAdvice: boolean;
  };
  /** What the cron line says then: `over N blocks as ...`; null when the backend advises nothing. */
  advice: string | null;
}

export function buildPlan(decision: Decision, targets: readonly TargetFile[], options: PlanOptions, owed: Owed = new Set()): Plan {
  const byRole = new Map<Role, TargetFile>(targets.map((t) => [t.role, t]));
  const mode = options.firewall ?? BACKENDS[0]!.mode;
  const chosen = BACKENDS.find((b) => b.mode === mode);
  if (chosen === undefined) throw new SmtpguardError(`--firewall ${mode} is not a firewall backend`, { hint: `use one of ${BACKENDS.map((b) => b.mode).join(', ')}` });
  const context = (m: string, active: boolean, keptByOthers: ReadonlySet<Role>) => ({
    keptByOthers,
    ufwChain: options.ufwChain,
    ufw6Chain: options.ufw6Chain,
    stateDir: options.stateDir ?? '',
    smtpPorts: options.smtpPorts ?? SMTP_PORTS,
    reload: options.reload,
    // owed for every backend: a withdrawal whose reload did not happen (--no-reload, a run killed half-way) is done again
    owed: owed.has('ufw'),
    probe: options.probes?.get(m) ?? (options.liveChains === undefined ? undefined : { live: options.liveChains }),
    now: options.now ?? Date.now(),
  });
  // the chosen backend first, then the others withdraw from the files no backend before them keeps
  const firewall: BackendPlan[] = [chosen.plan(decision.blocks, byRole, context(mode, true, new Set()))];
  const kept = new Set<Role>(chosen.roles);
  for (const backend of BACKENDS) {
    if (backend === chosen) continue;
    const part = backend.plan(null, byRole, context(backend.mode, false, new Set(kept)));
    for (const role of backend.roles) kept.add(role);
    if (part.changes.length > 0 || part.commands.length > 0) firewall.push(part);
  }

  const changes: FileChange[] = firewall.flatMap((p) => p.changes);
  const map = byRole.get('map');
  let mapHeld = false;
  if (map !== undefined) {
    if (map.text === null) {
      throw new SmtpguardError(`${map.path} does not exist`, {
        hint: 'run "smtpguard install" (or point --ufw-rules, --ufw6-rules, --access-map at the right files)',
      });
    }
    const after = replaceSection(map.text, findSection(map.text, map.path), renderAccessMap(decision.blocks, options.mapType, options.rejectText));
    if (after !== map.text || (options.reload && owed.has('map'))) {
      if (options.holdMap === true) mapHeld = true;
      else changes.push({ role: 'map', path: map.path, before: map.text, after });
    }
  }

  const previousBlocks = new Set(firewall.flatMap((p) => p.inForce));
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
    rulesPastAdvice: chosen.advice !== undefined && previousBlocks.size <= chosen.advice.blocks && current.size > chosen.advice.blocks,
  };
  const commands: string[][] = [];
  if (options.reload) {
    const config = options.postfixConfigDir === null ? [] : ['-c', options.postfixConfigDir];
    const mapChange = changes.find((c) => c.role === 'map');
    if (mapChange !== undefined) {
      if (options.mapType !== 'cidr') commands.push(['postmap', ...config, `${options.mapType}:${mapChange.path}${NEW_MAP_SUFFIX}`]);
      commands.push(['postfix', ...config, 'reload']);
    }
    for (const part of firewall) for (const argv of part.commands) commands.push(argv);
    if (firewall[0]!.commands.length > 0 && options.cutSessions !== false) for (const cut of cutSessionCommands(addedCidrs, options.smtpPorts)) commands.push(cut);
  }
  const quiet = changes.length > 0 && changes.every((c) => firewall.some((p) => p.renewals === true && p.changes.includes(c)));
  const advice = chosen.advice === undefined ? null : `over ${chosen.advice.blocks} blocks ${chosen.advice.text}`;
  return { decision, mapType: options.mapType, changes, commands, firewall, quiet, mapHeld, advice, notes: notesFor(decision, options), summary };
}

/** The SMTP ports install sends through the smtpguard chain (templates/ufw-rules.rules), and the default of --smtp-ports. */
export const SMTP_PORTS = [25, 465, 587] as const;
/** Blocks per `ss -K` command (one filter expression each; 1024 IPv6 terms are ~46 kB, under the 128 kB an argument may be, and ss parses them in ~20 ms). */
const CUT_BATCH = 1024;

/**
 * `ss -K` for the SMTP sessions already open from new blocks: the firewall drops new
 * connections only, so without this a client blocked in the middle of an AUTH session
 * keeps guessing on its open connection. `ss -K` (SOCK_DESTROY) closes the server's socket,
 * which resets the client at once; it runs in the firewall's network namespace, as the run does.
 */
export function cutSessionCommands(cidrs: readonly string[], ports: readonly number[] = SMTP_PORTS): string[][] {
  const commands: string[][] = [];
  const sports = `( ${ports.map((p) => `sport = :${p}`).join(' or ')} )`;
  for (let i = 0; i < cidrs.length; i += CUT_BATCH) {
    const batch = cidrs.slice(i, i + CUT_BATCH);
    commands.push(['ss', '-K', '-tn', 'state', 'established', `( ${batch.map((c) => `dst ${c}`).join(' or ')} )`, 'and', sports]);
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
