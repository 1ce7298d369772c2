/**
 * The `nftables` backend (`--firewall nftables`): no ufw needed. smtpguard keeps a table of its
 * own, `inet smtpguard`, beside whatever else the host runs (ufw, firewalld, a hand-written
 * ruleset): two sets with `flags interval, timeout`, a base chain on the input hook at priority
 * `filter - 1` (and one on the forward hook, for Postfix in a container behind DNAT) that sends
 * new connections to the SMTP ports from the sets to a chain that logs (rate-limited,
 * `[SMTPGUARD BLOCK] `) and drops. A drop in any base chain is final, so an accept elsewhere
 * cannot undo it.
 *
 * - Each block's element carries the time its ban has left as a kernel timeout: the element
 *   goes by itself when the ban ends, even if smtpguard never runs again. Blocks without an end
 *   (forever, a manual block without --for, a policy block with no ban time) have none.
 * - Elements never overlap (no auto-merge: merged elements would share one timeout): the blocks
 *   are cut into disjoint intervals, each ending when the last block covering it ends, less the
 *   exceptions inside them (where someone logged in).
 * - A run changes only the difference, in one `nft -f` transaction (all or nothing). An element
 *   to remove is added and deleted in that transaction, so one the kernel already expired does
 *   not fail it; a changed end is a delete and an add (re-adding would keep the old timeout).
 * - The save file (`STATE/nftables.save`) records the blocks with their absolute ends, written
 *   after the kernel took the change; the boot unit (`smtpguard-nftables.service`) runs
 *   `smtpguard load-firewall`, which loads it with the time each ban has left then.
 */
import { stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { ipv4Cidr, ipv6Groups, ipv6Text } from '../../address.js';
import { escapeForSystemd, systemdReads as systemdReadsDir } from '../install.js';
import { ExitCode, SmtpguardError } from '../../errors.js';
import { ensureDirectory, writeOwnFile, writeWithBackup } from '../../store/atomic.js';
import { readStoreBytes } from '../../store/store-file.js';
import type { Block } from '../../decide/policy.js';
import type { FileChange, Query, Runner } from '../change.js';
import type { FirewallBackend, FirewallSettings, KernelView } from './backend.js';

export const TABLE = 'inet smtpguard';
/**
 * Two sets per family: single addresses in a plain hash set (`flags timeout`), ranges in an
 * interval set (`flags interval, timeout`). nft 1.0.6 deletes from an interval set at about 0.2 s
 * an element when the set holds 100,000 (its userspace rebuilds the intervals for each), from a
 * hash set in microseconds: most blocks are single addresses, and they change most.
 */
export const SET_NAMES = { hosts: { 4: 'hosts4', 6: 'hosts6' }, ranges: { 4: 'ranges4', 6: 'ranges6' } } as const;
export type SetKind = keyof typeof SET_NAMES;

/** The blocks in force, with their ends: what the boot unit loads. */
export const NFT_SAVE_FILE = 'nftables.save';
/** The transaction of one change, beside the save file while `nft -f` reads it. */
export const NFT_SCRIPT_FILE = 'nftables.smtpguard-new';
export const UNIT_NAME = 'smtpguard-nftables.service';
const LOG_PREFIX = '[SMTPGUARD BLOCK] ';
/** Elements per `add element` statement (nft parses one statement in one piece). */
const CHUNK = 4096;
/** The longest timeout the kernel takes (213503 days, about 584 years, measured): a later end is loaded with this. */
export const MAX_TIMEOUT_DAYS = 213_503;

const HEADER = '# smtpguard --firewall nftables: the blocks in force after the last run, and when each ends; the boot unit loads them ("smtpguard load-firewall") with the time each has left';

/** A block as the save file records it: its range, its end (ms; null: never), the addresses inside it never blocked. */
export interface SavedBlock {
  cidr: string;
  until: number | null;
  exceptions: string[];
}

export interface Saved {
  ports: number[];
  blocks: SavedBlock[];
}

/** When a block ends: its ban's end, or its fleet decision's; null: never (or no known end: the next run takes it out). */
export function endOf(block: Block): number | null {
  const iso = block.until ?? block.fleet?.until ?? null;
  if (iso === null) return null;
  const ms = Date.parse(iso);
  return Number.isFinite(ms) ? ms : null;
}

/** The save file for these blocks (pure): the ports, then one line per block, sorted as the decision is. */
export function renderNftSave(blocks: readonly Block[], ports: readonly number[]): string {
  const lines = [HEADER, `ports ${ports.join(',')}`];
  for (const b of blocks) {
    const until = endOf(b);
    lines.push(`block ${b.cidr} until=${until === null ? 'never' : new Date(until).toISOString()}${(b.exceptions ?? []).length > 0 ? ` except=${b.exceptions!.join(',')}` : ''}`);
  }
  return lines.join('\n') + '\n';
}

/** The last texts parsed, with what they gave: a run reads the same record in its plan and its apply (0.15 s each at 100,000 blocks). */
const parsed = new Map<string, Saved>();

/** The save file's blocks; a line that is not one is a problem (named), not a crash. Callers do not change what it returns. */
export function parseNftSave(text: string, file: string): Saved {
  const known = parsed.get(text);
  if (known !== undefined) return known;
  const saved = parseSave(text, file);
  if (parsed.size >= 2) parsed.delete(parsed.keys().next().value!);
  parsed.set(text, saved);
  return saved;
}

function parseSave(text: string, file: string): Saved {
  const saved: Saved = { ports: [], blocks: [] };
  text.split('\n').forEach((line, i) => {
    if (line === '' || line.startsWith('#')) return;
    const ports = /^ports ([\d,]+)$/.exec(line);
    if (ports !== null) {
      saved.ports = ports[1]!.split(',').map(Number);
      return;
    }
    const m = /^block (\S+) until=(\S+)(?: except=(\S+))?$/.exec(line);
    const until = m === null ? NaN : m[2] === 'never' ? null : Date.parse(m[2]!);
    if (m === null || (until !== null && !Number.isFinite(until)) || rangeOf(m[1]!) === null) {
      throw new SmtpguardError(`${file} line ${i + 1} is not a block of the nftables save file: ${line.slice(0, 120)}`, {
        hint: `smtpguard writes this file: remove it and run "smtpguard run" again (the run puts every block back)`,
      });
    }
    saved.blocks.push({ cidr: m[1]!, until, exceptions: m[3]?.split(',') ?? [] });
  });
  return saved;
}

/** An interval of one family's addresses and when it ends (ms; null: never). */
export interface Element {
  family: 4 | 6;
  /** The set it goes in: a single address (hosts) or an interval (ranges). */
  set: SetKind;
  lo: bigint;
  hi: bigint;
  end: number | null;
}

/** A CIDR's first and last address as numbers (bigint: IPv6 needs 128 bits), or null. By hand: ipaddr.js tries IPv6 first and took seconds over 100,000 IPv4 blocks. */
function rangeOf(cidr: string): { family: 4 | 6; lo: bigint; hi: bigint } | null {
  const v4 = ipv4Cidr(cidr);
  if (v4 !== null) {
    const size = 2 ** (32 - v4[1]);
    const lo = v4[0] - (v4[0] % size);
    return { family: 4, lo: BigInt(lo), hi: BigInt(lo + size - 1) };
  }
  const slash = cidr.indexOf('/');
  const groups = ipv6Groups(slash === -1 ? cidr : cidr.slice(0, slash));
  const bits = slash === -1 ? 128 : /^\d{1,3}$/.test(cidr.slice(slash + 1)) ? Number(cidr.slice(slash + 1)) : NaN;
  if (groups === null || !(bits >= 0 && bits <= 128)) return null;
  let value = 0n;
  for (const g of groups) value = (value << 16n) | BigInt(g);
  const host = (1n << BigInt(128 - bits)) - 1n;
  return { family: 6, lo: value & ~host, hi: (value & ~host) | host };
}

function textOf(value: bigint, family: 4 | 6): string {
  if (family === 4) {
    const n = Number(value);
    return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
  }
  const groups = new Uint16Array(8);
  for (let i = 7, v = value; i >= 0; i--, v >>= 16n) groups[i] = Number(v & 0xffffn);
  return ipv6Text(groups);
}

/**
 * The kernel's elements for these blocks at `now` (pure). A single address with no exception is
 * one element of its family's hosts set, ending with its block (the latest, if named twice). A
 * range is cut into disjoint intervals of the ranges set: each block less its exceptions, cut at
 * every boundary, each piece ending when the last range covering it ends; neighbours with the
 * same end joined. An address in both sets is dropped until the later end. Blocks already ended
 * are left out. Sorted by family, set and address.
 */
export function elementsOf(blocks: readonly SavedBlock[], now: number): Element[] {
  const out: Element[] = [];
  for (const family of [4, 6] as const) {
    const hosts = new Map<bigint, Element>();
    const pieces: Element[] = [];
    for (const b of blocks) {
      const r = rangeOf(b.cidr);
      if (r === null || r.family !== family || (b.until !== null && b.until <= now)) continue;
      if (r.lo === r.hi && b.exceptions.length === 0) {
        const had = hosts.get(r.lo);
        hosts.set(r.lo, { family, set: 'hosts', lo: r.lo, hi: r.hi, end: had === undefined ? b.until : later(had.end, b.until) });
        continue;
      }
      let parts = [{ lo: r.lo, hi: r.hi }];
      for (const e of b.exceptions) {
        const x = rangeOf(e);
        if (x === null) continue;
        parts = parts.flatMap((p) => (x.hi < p.lo || x.lo > p.hi ? [p] : [...(x.lo > p.lo ? [{ lo: p.lo, hi: x.lo - 1n }] : []), ...(x.hi < p.hi ? [{ lo: x.hi + 1n, hi: p.hi }] : [])]));
      }
      for (const p of parts) pieces.push({ family, set: p.lo === p.hi ? 'hosts' : 'ranges', lo: p.lo, hi: p.hi, end: b.until });
    }
    for (const p of pieces.filter((x) => x.set === 'hosts')) hosts.set(p.lo, { ...p, end: hosts.has(p.lo) ? later(hosts.get(p.lo)!.end, p.end) : p.end });
    for (const e of [...hosts.values()].sort((a, b) => (a.lo < b.lo ? -1 : 1))) out.push(e);
    for (const e of disjoint(pieces.filter((x) => x.set === 'ranges'), family)) out.push(e);
  }
  return out;
}

const later = (a: number | null, b: number | null): number | null => (a === null || b === null ? null : Math.max(a, b));

/** Overlapping ranges cut at every boundary, each interval ending with the latest range over it; neighbours with the same end joined. */
function disjoint(pieces: Element[], family: 4 | 6): Element[] {
  const out: Element[] = [];
  const points = [...new Set(pieces.flatMap((p) => [p.lo, p.hi + 1n]))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  pieces.sort((a, b) => (a.lo < b.lo ? -1 : a.lo > b.lo ? 1 : 0));
  const active: Element[] = [];
  let next = 0;
  for (let i = 0; i + 1 < points.length; i++) {
    const lo = points[i]!;
    const hi = points[i + 1]! - 1n;
    while (next < pieces.length && pieces[next]!.lo <= lo) active.push(pieces[next++]!);
    for (let j = active.length - 1; j >= 0; j--) if (active[j]!.hi < lo) active.splice(j, 1);
    if (active.length === 0) continue;
    let end: number | null = active[0]!.end;
    for (const p of active) end = later(end, p.end);
    const last = out.at(-1);
    if (last !== undefined && last.hi + 1n === lo && last.end === end) last.hi = hi;
    else out.push({ family, set: 'ranges', lo, hi, end });
  }
  return out;
}

/** `192.0.2.7`, `192.0.2.0/24`, or `192.0.2.0-192.0.2.6` where the interval is no prefix. */
export function elementText(e: Pick<Element, 'family' | 'lo' | 'hi'>): string {
  const size = e.hi - e.lo + 1n;
  const width = e.family === 4 ? 32 : 128;
  if ((size & (size - 1n)) === 0n && e.lo % size === 0n) {
    const bits = width - (size.toString(2).length - 1);
    return bits === width ? textOf(e.lo, e.family) : `${textOf(e.lo, e.family)}/${bits}`;
  }
  return `${textOf(e.lo, e.family)}-${textOf(e.hi, e.family)}`;
}

/**
 * ` timeout 3600s` with the time left (whole seconds, rounded up; `12d3600s` from a day on, as nft
 * takes no number of more than 8 digits; at most MAX_TIMEOUT_DAYS); '' for no end.
 */
function timeoutText(e: Element, now: number): string {
  if (e.end === null) return '';
  const seconds = Math.min(MAX_TIMEOUT_DAYS * 86_400, Math.max(1, Math.ceil((e.end - now) / 1000)));
  return ` timeout ${seconds < 86_400 ? `${seconds}s` : `${Math.floor(seconds / 86_400)}d${seconds % 86_400}s`}`;
}

const elementKey = (e: Element): string => `${e.family} ${e.set} ${e.lo}-${e.hi} ${e.end}`;

/** The table: its sets (no elements), the ports, and the chains, for these ports. */
export function tableLines(ports: readonly number[]): string[] {
  const rules = (hook: 'input' | 'forward') =>
    (['hosts', 'ranges'] as const).flatMap((kind) =>
      ([4, 6] as const).map((family) => `    ct state new ${hook === 'input' ? 'tcp dport @smtp_ports' : 'ct status dnat meta l4proto tcp ct original proto-dst @smtp_ports'} ${family === 4 ? 'ip' : 'ip6'} saddr @${SET_NAMES[kind][family]} counter jump block`),
    );
  return [
    `table ${TABLE} {`,
    `  set smtp_ports { type inet_service; elements = { ${ports.join(', ')} }; }`,
    `  set ${SET_NAMES.hosts[4]} { type ipv4_addr; flags timeout; counter; }`,
    `  set ${SET_NAMES.hosts[6]} { type ipv6_addr; flags timeout; counter; }`,
    `  set ${SET_NAMES.ranges[4]} { type ipv4_addr; flags interval, timeout; counter; }`,
    `  set ${SET_NAMES.ranges[6]} { type ipv6_addr; flags interval, timeout; counter; }`,
    '  chain input {',
    '    type filter hook input priority filter - 1; policy accept;',
    ...rules('input'),
    '  }',
    '  chain forward {',
    '    type filter hook forward priority filter - 1; policy accept;',
    ...rules('forward'),
    '  }',
    '  chain block {',
    `    limit rate 3/minute burst 10 packets log prefix "${LOG_PREFIX}"`,
    '    drop',
    '  }',
    '}',
  ];
}

function addLines(elements: readonly Element[], now: number, withTimeout: boolean): string[] {
  const lines: string[] = [];
  for (const kind of ['hosts', 'ranges'] as const) {
    for (const family of [4, 6] as const) {
      const mine = elements.filter((e) => e.family === family && e.set === kind);
      for (let i = 0; i < mine.length; i += CHUNK) {
        const words = mine.slice(i, i + CHUNK).map((e) => `${elementText(e)}${withTimeout ? timeoutText(e, now) : ''}`);
        lines.push(`add element ${TABLE} ${SET_NAMES[kind][family]} { ${words.join(', ')} }`);
      }
    }
  }
  return lines;
}

/** The whole table with its elements, as one transaction: made anew whether or not it was there. */
export function fullLoad(elements: readonly Element[], ports: readonly number[], now: number): string {
  return [`add table ${TABLE}`, `delete table ${TABLE}`, ...tableLines(ports), ...addLines(elements, now, true), ''].join('\n');
}

/**
 * The difference, as one transaction: elements that go (or change their end) are added and
 * deleted (an add of one the kernel already expired makes the delete find it), then the new ones
 * are added with the time they have left. A range set that loses or reshapes an element is flushed
 * and filled again instead: nft refuses an add that overlaps an element of that transaction's own
 * delete (a /23 split into two /24s, an exception cut into a /24), and deletes from a big
 * interval set are slow. '' when nothing changes.
 */
export function changeScript(before: readonly Element[], after: readonly Element[], now: number): string {
  const keep = new Set(after.map(elementKey));
  const had = new Set(before.map(elementKey));
  let gone = before.filter((e) => !keep.has(elementKey(e)));
  let added = after.filter((e) => !had.has(elementKey(e)));
  if (gone.length === 0 && added.length === 0) return '';
  const flushes: string[] = [];
  for (const family of [4, 6] as const) {
    const mine = (e: Element) => e.set === 'ranges' && e.family === family;
    if (!gone.some(mine)) continue;
    flushes.push(`flush set ${TABLE} ${SET_NAMES.ranges[family]}`);
    gone = gone.filter((e) => !mine(e));
    added = [...added.filter((e) => !mine(e)), ...after.filter(mine)];
  }
  const deletes = addLines(gone, now, false);
  return [...flushes, ...deletes, ...deletes.map((l) => l.replace(/^add /, 'delete ')), ...addLines(added, now, true), ''].join('\n');
}

/** How long after its end an element may still be in the kernel (rounding up, the time a load takes, a clock step). */
const EXPIRY_GRACE_MS = 10_000;

const samePorts = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((p, i) => p === b[i]);

/** The save file's blocks, or null when there is none; a bad file is an error naming it. */
async function readSaved(stateDir: string): Promise<{ text: string | null; saved: Saved | null }> {
  const file = path.join(stateDir, NFT_SAVE_FILE);
  const text = await readStoreBytes(file).then((b) => b.toString('latin1'), () => null);
  return { text, saved: text === null ? null : parseNftSave(text, file) };
}

/** Loads a transaction: written beside the save file (never through a link), `nft -f`, removed. */
async function runScript(stateDir: string, script: string, run: Runner): Promise<{ ok: boolean; output: string }> {
  const file = path.join(stateDir, NFT_SCRIPT_FILE);
  await writeOwnFile(file, script, 0o600);
  const result = await run(['nft', '-f', file]);
  await unlink(file).catch(() => undefined);
  return result;
}

/** What the kernel has of the table: its elements (with expiry and counters), the rules' counters; null when the table is not there. */
interface KernelTable {
  elements: Array<{ family: 4 | 6; set: SetKind; lo: bigint; hi: bigint; expires: number | null; packets: number | null }>;
  /** Packets the rules sent to the block chain, per family and per set. */
  packets: { 4: number; 6: number };
  bySet: Map<string, number>;
}

async function readTable(query: Query): Promise<{ table: KernelTable | null; problem: string | null }> {
  const listed = await query('nft', ['-j', 'list', 'table', ...TABLE.split(' ')]);
  if (!listed.ok) {
    if (/No such file or directory/i.test(listed.output)) return { table: null, problem: null };
    return { table: null, problem: `cannot read the nftables table ${TABLE} (root only): ${listed.output || 'nft failed'}` };
  }
  let json: { nftables?: Array<Record<string, any>> };
  try {
    json = JSON.parse(listed.output);
  } catch {
    return { table: null, problem: `cannot read the JSON of "nft -j list table ${TABLE}"` };
  }
  const table: KernelTable = { elements: [], packets: { 4: 0, 6: 0 }, bySet: new Map() };
  for (const item of json.nftables ?? []) {
    if (item.set !== undefined) {
      const family = item.set.name === SET_NAMES.hosts[6] || item.set.name === SET_NAMES.ranges[6] ? 6 : item.set.name === SET_NAMES.hosts[4] || item.set.name === SET_NAMES.ranges[4] ? 4 : null;
      if (family === null) continue; // smtp_ports
      const set: SetKind = item.set.name.startsWith('hosts') ? 'hosts' : 'ranges';
      for (const raw of item.set.elem ?? []) {
        const entry = raw.elem ?? { val: raw };
        const val = entry.val;
        const expires = typeof entry.expires === 'number' ? entry.expires : null;
        const packets = typeof entry.counter?.packets === 'number' ? entry.counter.packets : null;
        let r: { lo: bigint; hi: bigint } | null = null;
        if (typeof val === 'string') r = rangeOf(val.includes('/') ? val : `${val}/${family === 4 ? 32 : 128}`);
        else if (val?.prefix !== undefined) r = rangeOf(`${val.prefix.addr}/${val.prefix.len}`);
        else if (Array.isArray(val?.range)) {
          const lo = rangeOf(`${val.range[0]}/${family === 4 ? 32 : 128}`);
          const hi = rangeOf(`${val.range[1]}/${family === 4 ? 32 : 128}`);
          if (lo !== null && hi !== null) r = { lo: lo.lo, hi: hi.lo };
        }
        if (r !== null) table.elements.push({ family, set, lo: r.lo, hi: r.hi, expires, packets });
      }
    }
  }
  const counted = countersOf(json);
  table.packets = { 4: counted[4], 6: counted[6] };
  table.bySet = counted.bySet;
  return { table, problem: null };
}

/** Packets the input and forward rules counted, per family (the rule naming @blocked6 is IPv6's). */
function countersOf(json: { nftables?: Array<Record<string, any>> }): { 4: number; 6: number; bySet: Map<string, number> } {
  const packets = { 4: 0, 6: 0, bySet: new Map<string, number>() };
  for (const item of json.nftables ?? []) {
    if (item.rule === undefined || (item.rule.chain !== 'input' && item.rule.chain !== 'forward')) continue;
    const expr: Array<Record<string, any>> = item.rule.expr ?? [];
    const counter = expr.find((x) => x.counter !== undefined)?.counter;
    const set = /"@((?:hosts|ranges)[46])"/.exec(JSON.stringify(expr))?.[1];
    if (set === undefined || typeof counter?.packets !== 'number') continue;
    packets[set.endsWith('6') ? 6 : 4] += counter.packets;
    packets.bySet.set(set, (packets.bySet.get(set) ?? 0) + counter.packets);
  }
  return packets;
}

/** countersOf one listing's JSON; null when it is not JSON. */
function ruleCounters(output: string): { 4: number; 6: number } | null {
  try {
    return countersOf(JSON.parse(output));
  } catch {
    return null;
  }
}

/**
 * Whether the table is in the kernel: its small port set listed (nft fetches only that set; any
 * listing of the table or a chain fetches every element first, about 1 s at 100,000).
 */
const hasTable = async (query: Query): Promise<boolean> => (await query('nft', ['list', 'set', ...TABLE.split(' '), 'smtp_ports'])).ok;

export const nftablesBackend: FirewallBackend = {
  mode: 'nftables',
  summary: 'elements of the nftables sets of its own table inet smtpguard, each with the time its ban has left as a kernel timeout (no ufw needed)',
  kernelName: "the kernel's nftables sets",
  recordName: 'the save file',
  updateName: 'nft transaction',
  missingRecord: 'does not exist ("smtpguard install --firewall nftables" makes it, and every run keeps it)',
  enabled: async () => null, // its own table: on whenever nf_tables is
  roles: ['nft'],
  files: (settings) => [{ role: 'nft', path: path.join(settings.stateDir, NFT_SAVE_FILE), what: 'nftables save file', option: '--state-dir', own: true }],
  settingsProblem: (settings) =>
    settings.state
      ? null
      : new SmtpguardError('--firewall nftables keeps its blocks and their ends in the state directory (nftables.save, which boot loads): it cannot run with --no-state', { hint: 'drop --no-state' }),
  // a boot without the unit, or a hand, left the table out: the next plan loads it whole
  kernelOwes: async (_settings, targets, query) => targets.get('nft')?.text != null && !(await hasTable(query)),
  probe: async () => ({}),
  plan(blocks, targets, context) {
    const target = targets.get('nft');
    const changes: FileChange[] = [];
    const commands: string[][] = [];
    let previous: Saved | null = null;
    try {
      previous = target?.text == null ? null : parseNftSave(target.text, target.path);
    } catch (error) {
      if (blocks !== null) throw error; // withdrawing, a bad leftover record does not stop the run: the table goes anyway
    }
    const inForce = previous === null ? [] : previous.blocks.filter((b) => b.until === null || b.until > context.now).map((b) => b.cidr);
    const script = ['nft', '-f', path.join(context.stateDir, NFT_SCRIPT_FILE)];
    if (blocks === null) {
      // withdraw: the table goes, then its save file
      if (target !== undefined && target.text !== null && !context.keptByOthers.has('nft')) {
        changes.push({ role: 'nft', path: target.path, before: target.text, after: '' });
        if (context.reload) commands.push(['nft', 'delete', 'table', ...TABLE.split(' ')]);
      }
      return { mode: 'nftables', active: false, changes, commands, inForce, owes: changes.length > 0, context };
    }
    if (target === undefined) return { mode: 'nftables', active: true, changes, commands, inForce, owes: false, context };
    const after = renderNftSave(blocks, context.smtpPorts);
    const before = target.text ?? '';
    if (after !== before || (context.reload && context.owed)) {
      changes.push({ role: 'nft', path: target.path, before, after });
      if (context.reload) commands.push(script);
    }
    // the same blocks, only later ends: a ban renewed by the client's new events
    const renewals = changes.length > 0 && !context.owed && before.replace(/ until=\S+/g, '') === after.replace(/ until=\S+/g, '');
    return { mode: 'nftables', active: true, changes, commands, inForce, owes: changes.length > 0, renewals, context };
  },
  /**
   * Active: the transaction (the difference from the save file's blocks, or the whole table when
   * it is not there, the ports changed or the kernel is owed it), then the save file. A rejected
   * transaction changed nothing in the kernel: exit 5, the save file as it was.
   */
  async apply(part, run, reload) {
    const change = part.changes.find((c) => c.role === 'nft');
    if (change === undefined) return [];
    const stateDir = part.context.stateDir;
    if (!part.active) {
      if (reload) {
        const dropped = await run(['nft', 'delete', 'table', ...TABLE.split(' ')]);
        if (!dropped.ok && !/No such file or directory|ENOENT|could not start/i.test(dropped.output)) return [`could not delete the nftables table ${TABLE} (${dropped.output || 'no output'}): "nft delete table ${TABLE}" once nothing needs it`];
        await unlink(change.path).catch(() => undefined);
      }
      return [];
    }
    if (reload) {
      const now = Date.now();
      const next = parseNftSave(change.after, change.path);
      const previous = change.before === '' ? null : parseNftSave(change.before, change.path);
      const whole = previous === null || part.context.owed || !samePorts(previous.ports, next.ports);
      // an element that ended a moment ago may still be in the kernel (timeouts are rounded up and
      // start when the load ran): counted as there, so a re-add of it goes through add and delete
      const script = whole ? fullLoad(elementsOf(next.blocks, now), next.ports, now) : changeScript(elementsOf(previous.blocks, now - EXPIRY_GRACE_MS), elementsOf(next.blocks, now), now);
      if (script !== '') {
        const loaded = await runScript(stateDir, script, run);
        if (!loaded.ok) {
          throw new SmtpguardError(`nft rejected the change, the table ${TABLE} in the kernel is as it was (one transaction): ${loaded.output || 'no output'}`, {
            exitCode: ExitCode.rolledBack,
            hint: `is nftables installed (apt-get install nftables) and the kernel's nf_tables loaded? check "nft list table ${TABLE}"; ${change.path} still holds the blocks in force`,
          });
        }
      }
    }
    try {
      await writeOwnFile(change.path, change.after, 0o600);
    } catch (error) {
      if (!reload) throw error; // nothing reached the kernel: every file is as it was
      // the kernel has the change and the record does not: the update stays owed, and the next run loads the table whole
      throw new SmtpguardError(`the table ${TABLE} in the kernel has the change, but ${change.path} could not be written: ${(error as Error).message}`, {
        exitCode: ExitCode.rollbackFailed,
        hint: 'free space or fix permissions in the state directory; the next run loads the table whole from the decision',
        cause: error,
      });
    }
    return [];
  },
  async recorded(settings) {
    const file = path.join(settings.stateDir, NFT_SAVE_FILE);
    try {
      const { text, saved } = await readSaved(settings.stateDir);
      if (text === null || saved === null) {
        const exists = await stat(file).then(() => true, () => false);
        return [{ file, installed: exists ? null : false, cidrs: [], problem: exists ? 'permission denied (root only)' : null }];
      }
      const now = Date.now();
      return [{ file, installed: true, cidrs: saved.blocks.filter((b) => b.until === null || b.until > now).map((b) => b.cidr), problem: null }];
    } catch (error) {
      return [{ file, installed: true, cidrs: [], problem: (error as Error).message }];
    }
  },
  /**
   * The kernel's elements against the save file's at this moment: a block is there when every
   * piece of it lies in an element; an element no block explains is extra. An element the kernel
   * expired on time is expected gone, so it is not missing.
   */
  async readKernel(settings, query) {
    const { table, problem } = await readTable(query);
    if (problem !== null) return { view: null, problem };
    const view: KernelView = { blocks: [], extra: [], packets: new Map(), expires: new Map(), sets: [], dropped: [] };
    const now = Date.now();
    const saved = (await readSaved(settings.stateDir).catch(() => ({ saved: null }))).saved;
    if (table === null) {
      for (const kind of ['hosts', 'ranges'] as const) for (const family of [4, 6] as const) view.sets.push({ name: `${TABLE} ${SET_NAMES[kind][family]}`, members: 0, maxelem: null, packets: null, present: false });
      return { view, problem: null };
    }
    const expected = elementsOf(saved?.blocks ?? [], now);
    // one lookup per piece: the hosts by address, the ranges (disjoint) by a binary search on their start
    const hosts = new Map(table.elements.filter((e) => e.set === 'hosts').map((e) => [`${e.family} ${e.lo}`, e]));
    const ranges = { 4: table.elements.filter((e) => e.set === 'ranges' && e.family === 4).sort((x, y) => (x.lo < y.lo ? -1 : 1)), 6: table.elements.filter((e) => e.set === 'ranges' && e.family === 6).sort((x, y) => (x.lo < y.lo ? -1 : 1)) };
    const covering = (family: 4 | 6, set: SetKind, lo: bigint, hi: bigint): KernelTable['elements'] => {
      if (set === 'hosts') return hosts.has(`${family} ${lo}`) ? [hosts.get(`${family} ${lo}`)!] : [];
      const list = ranges[family];
      let at = -1;
      for (let low = 0, high = list.length - 1; low <= high; ) {
        const mid = (low + high) >> 1;
        if (list[mid]!.lo <= lo) (at = mid), (low = mid + 1);
        else high = mid - 1;
      }
      // the piece may lie across neighbouring elements (another range with another end cut it)
      const found: KernelTable['elements'] = [];
      for (let cur = lo; at >= 0 && at < list.length && list[at]!.lo <= cur && list[at]!.hi >= cur; at++) {
        found.push(list[at]!);
        cur = list[at]!.hi + 1n;
        if (cur > hi) return found;
      }
      return [];
    };
    for (const b of saved?.blocks ?? []) {
      if (b.until !== null && b.until <= now) continue;
      const mine = elementsOf([b], now);
      const hits = mine.map((p) => covering(p.family, p.set, p.lo, p.hi));
      if (hits.every((h) => h.length > 0)) view.blocks.push(b.cidr);
      const first = hits.find((h) => h.length > 0)?.[0];
      if (first !== undefined) {
        view.expires.set(b.cidr, first.expires === null ? null : new Date(now + first.expires * 1000).toISOString());
        const packets = hits.flat().reduce<number | null>((sum, e) => (e.packets === null ? sum : (sum ?? 0) + e.packets), null);
        if (packets !== null) view.packets.set(b.cidr, packets);
      }
    }
    const known = new Set(expected.map((e) => `${e.family} ${e.set} ${e.lo}-${e.hi}`));
    for (const e of table.elements) if (!known.has(`${e.family} ${e.set} ${e.lo}-${e.hi}`)) view.extra.push(elementText(e));
    for (const kind of ['hosts', 'ranges'] as const) {
      for (const family of [4, 6] as const) {
        const members = table.elements.filter((e) => e.family === family && e.set === kind);
        view.sets.push({ name: `${TABLE} ${SET_NAMES[kind][family]}`, members: members.length, maxelem: null, packets: table.bySet.get(SET_NAMES[kind][family]) ?? 0, present: true });
      }
    }
    for (const family of [4, 6] as const) view.dropped.push({ family, packets: table.packets[family] });
    return { view, problem: null };
  },
  async dropped(_settings, query) {
    // one terse listing of the table (no elements printed, but nft reads them: about 1 s at 100,000)
    const listed = await query('nft', ['-t', '-j', 'list', 'table', ...TABLE.split(' ')]);
    const counted = listed.ok ? ruleCounters(listed.output) : null;
    return counted === null ? null : [{ family: 4, packets: counted[4] }, { family: 6, packets: counted[6] }];
  },
  boot: (settings, run) => loadAtBoot(settings, run),
  async bootProblem() {
    return null; // the unit's presence is install's to check (status shows the kernel against the save file)
  },
  async install(context) {
    const { settings, uninstall } = context;
    if (!uninstall && settings.firewall !== 'nftables') return null;
    const unit = path.join(context.systemdDir, UNIT_NAME);
    const saveFile = path.join(settings.stateDir, NFT_SAVE_FILE);
    const [unitBefore, saveBefore] = await Promise.all([context.readOptional(unit), context.readOptional(saveFile)]);
    const edits = uninstall
      ? [...(unitBefore !== null && unitBefore.includes('smtpguard install') ? [{ path: unit, before: unitBefore, after: null }] : []), ...(saveBefore !== null ? [{ path: saveFile, before: saveBefore, after: null }] : [])]
      : [{ path: unit, before: unitBefore, after: unitText(context.command(['load-firewall', '--config', context.configFile]), settings.stateDir) }, ...(saveBefore === null ? [{ path: saveFile, before: null, after: renderNftSave([], settings.smtpPorts) }] : [])];
    const changed = edits.filter((e) => e.before !== e.after);
    const commands: string[][] = [];
    // systemctl only for a directory systemd reads (a test's, or a staging tree's, is left to the admin)
    const systemdReads = systemdReadsDir(context.systemdDir);
    const notes = systemdReads || !changed.some((e) => e.path === unit) ? [] : [`${unit} is not in a directory systemd reads: copy it to /etc/systemd/system and "systemctl enable ${UNIT_NAME}"`];
    if (settings.reload && !systemdReads) {
      if (uninstall && (await hasTable(context.query))) commands.push(['nft', 'delete', 'table', ...TABLE.split(' ')]);
    } else if (settings.reload) {
      if (uninstall) {
        if (changed.some((e) => e.path === unit)) commands.push(['systemctl', 'disable', UNIT_NAME], ['systemctl', 'daemon-reload']);
        if (await hasTable(context.query)) commands.push(['nft', 'delete', 'table', ...TABLE.split(' ')]);
      } else if (changed.some((e) => e.path === unit)) commands.push(['systemctl', 'daemon-reload'], ['systemctl', 'enable', UNIT_NAME]);
    }
    return {
      name: 'nftables boot unit and save file',
      edits,
      commands,
      warnings: [],
      notes,
      pending: false,
      async carryOut(run) {
        const warnings: string[] = [];
        for (const e of changed) {
          if (e.after === null) continue;
          if (e.before === null) await ensureDirectory(path.dirname(e.path), 'the directory', e.path === saveFile ? '--state-dir' : '--systemd-dir');
          if (e.path === saveFile) await writeOwnFile(e.path, e.after, 0o600);
          else await writeWithBackup(e.path, e.after, e.before === null ? null : e.path);
        }
        for (const argv of commands) {
          const result = await run(argv);
          if (!result.ok) warnings.push(`${argv.join(' ')} failed: ${result.output}`);
        }
        for (const e of changed) if (e.after === null) await unlink(e.path).catch(() => undefined);
        return warnings;
      },
    };
  },
};

/**
 * The boot unit: loads the table from the save file before the network is up and before Postfix
 * accepts mail, with the time each ban has left (a ban that ended while the host was down is not
 * loaded). A oneshot that stays active.
 */
export function unitText(command: string, stateDir: string): string {
  return [
    '# Added by "smtpguard install --firewall nftables"; "smtpguard uninstall" removes it.',
    '[Unit]',
    'Description=smtpguard: load its nftables table (the blocks, each with the time its ban has left)',
    'DefaultDependencies=no',
    'Before=network-pre.target postfix.service shutdown.target',
    'Wants=network-pre.target',
    // Debian's nftables.service loads /etc/nftables.conf, which starts with "flush ruleset": load after it, and again when it restarts or reloads
    'After=local-fs.target nftables.service',
    'PartOf=nftables.service',
    'ReloadPropagatedFrom=nftables.service',
    `RequiresMountsFor=${stateDir}`,
    'Conflicts=shutdown.target',
    '',
    '[Service]',
    'Type=oneshot',
    'RemainAfterExit=yes',
    `ExecStart=${escapeForSystemd(command)}`,
    `ExecReload=${escapeForSystemd(command)}`,
    '',
    '[Install]',
    'WantedBy=sysinit.target',
    '',
  ].join('\n');
}

/**
 * `smtpguard load-firewall` (the boot unit): the save file's blocks into the kernel as one
 * transaction, each with the time it has left now. Returns what it did, in one line.
 */
export async function loadAtBoot(settings: FirewallSettings, run: Runner, now = Date.now()): Promise<string> {
  const { saved } = await readSaved(settings.stateDir);
  if (saved === null) return `nothing to load: ${path.join(settings.stateDir, NFT_SAVE_FILE)} does not exist (the first "smtpguard run" writes it)`;
  const elements = elementsOf(saved.blocks, now);
  const loaded = await runScript(settings.stateDir, fullLoad(elements, saved.ports.length > 0 ? saved.ports : settings.smtpPorts, now), run);
  if (!loaded.ok) {
    throw new SmtpguardError(`nft could not load the table ${TABLE}: ${loaded.output || 'no output'}`, {
      exitCode: ExitCode.rolledBack,
      hint: 'is nftables installed (apt-get install nftables)? the next "smtpguard run" tries again',
    });
  }
  const ended = saved.blocks.filter((b) => b.until !== null && b.until <= now).length;
  return `loaded ${saved.blocks.length - ended} block(s) as ${elements.length} element(s) into ${TABLE}${ended > 0 ? `; ${ended} whose ban ended while it was not loaded left out` : ''}`;
}
