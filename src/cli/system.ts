/**
 * What the host says about itself (edge): Postfix settings through postconf, and the
 * addresses of this machine. Everything here may be missing; callers get a fallback
 * and a warning, never a crash.
 */
import { networkInterfaces } from 'node:os';
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { isValidRange } from '../address.js';
import { neverBlockRanges } from '../decide/never-block.js';
import { readStore, readStoreBytes } from '../store/store-file.js';
import { writeOwnFile } from '../store/atomic.js';
import type { NamedRange } from '../decide/policy.js';
import { MAP_TYPES, type MapType } from '../write/access-map.js';
import type { Warn } from '../warn.js';

const TIMEOUT_MS = 60_000;

export interface QueryResult {
  ok: boolean;
  /** stdout (trimmed) when ok, else what went wrong (stderr, or why it did not start). */
  output: string;
}

/**
 * A read-only command (postconf, iptables -L, journalctl -k): node's execFile, not execa,
 * whose loading alone costs more than such a query on every cron run.
 */
export function query(command: string, args: readonly string[]): Promise<QueryResult> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: TIMEOUT_MS, maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      resolve(error === null ? { ok: true, output: stdout.trim() } : { ok: false, output: (stderr.trim() || error.message).trim() });
    });
  });
}

/** postconf [-c DIR] ARGS: values from stdout only (its warnings go to stderr). */
export function postconf(args: readonly string[], configDir: string | null): Promise<QueryResult> {
  return query('postconf', [...(configDir === null ? [] : ['-c', configDir]), ...args]);
}

/** `postconf -h default_database_type`, or hash where Postfix is not installed. */
export async function findDefaultMapType(configDir: string | null): Promise<MapType> {
  const { ok, output } = await postconf(['-h', 'default_database_type'], configDir);
  return ok && (MAP_TYPES as readonly string[]).includes(output) ? (output as MapType) : 'hash';
}

/** The mynetworks last read from Postfix, kept in the state directory for a run where postconf fails. */
export const MYNETWORKS_FILE = 'mynetworks.json';

/**
 * Postfix's mynetworks as ranges. Entries that are not addresses (a hostname, a
 * `type:table` or `/file` lookup, a negation) cannot be checked here: warned about.
 * Sticky: what postconf said is kept in `stateDir` (when given), and a run where postconf
 * fails uses it, with a warning, instead of dropping the exemption for that run.
 */
export async function findMynetworks(configDir: string | null, warn: Warn, stateDir: string | null = null, keep = true): Promise<NamedRange[]> {
  const { ok, output } = await postconf(['-h', 'mynetworks'], configDir);
  const file = stateDir === null ? null : path.join(stateDir, MYNETWORKS_FILE);
  if (ok) {
    if (file !== null && keep) await keepMynetworks(file, output);
    return parseMynetworks(output, warn);
  }
  const kept = file === null ? null : await readStore(file, { parse: parseKept, warn, keep: !keep, consequence: 'it is written anew when postconf answers' });
  if (kept === null) {
    warn(`cannot ask Postfix for mynetworks (postconf: ${output}); only loopback, this host and --allow are exempt`);
    return [];
  }
  warn(`cannot ask Postfix for mynetworks (postconf: ${output}); using the mynetworks it gave on ${kept.time}, kept in ${file}`);
  return parseMynetworks(kept.mynetworks, warn);
}

function parseKept(text: string): { time: string; mynetworks: string } {
  const kept = JSON.parse(text) as { time?: unknown; mynetworks?: unknown };
  if (typeof kept?.time !== 'string' || typeof kept.mynetworks !== 'string') throw new Error('not a kept mynetworks');
  return { time: kept.time, mynetworks: kept.mynetworks };
}

/** Writes what postconf said when it differs from what is kept; a state dir this user cannot write is no problem. */
async function keepMynetworks(file: string, mynetworks: string): Promise<void> {
  const before = await readStoreBytes(file).then((b) => parseKept(b.toString('utf8')).mynetworks, () => null);
  if (before === mynetworks) return;
  await mkdir(path.dirname(file), { recursive: true, mode: 0o755 }).catch(() => undefined);
  await writeOwnFile(file, `${JSON.stringify({ time: new Date().toISOString(), mynetworks })}\n`, 0o644).catch(() => undefined);
}

export function parseMynetworks(value: string, warn: Warn): NamedRange[] {
  const ranges: NamedRange[] = [];
  for (const entry of value.split(/[\s,]+/).filter((e) => e !== '')) {
    const cidr = entry.replace(/^\[([^\]]+)\]/, '$1'); // [::1]/128 -> ::1/128
    if (isValidRange(cidr)) ranges.push({ cidr, source: 'mynetworks' });
    else warn(`mynetworks entry ${entry} is not an address or range; smtpguard cannot exempt what it names (add --allow for it)`);
  }
  return ranges;
}

/** Every address of this host's interfaces, each as a host range. */
export function findOwnAddresses(): NamedRange[] {
  const ranges: NamedRange[] = [];
  for (const addresses of Object.values(networkInterfaces())) {
    for (const a of addresses ?? []) {
      const address = a.address.replace(/%.*$/, '');
      if (isValidRange(address)) ranges.push({ cidr: address, source: 'this host' });
    }
  }
  return ranges;
}

export interface NeverBlockSettings {
  allow: readonly string[];
  postfixConfigDir: string | null;
  blockLinkLocal: boolean;
  /** Where the mynetworks last read is kept (null: not kept). */
  stateDir: string | null;
  /** false (a dry run): the kept mynetworks is read, not written. */
  keep: boolean;
}

/** Everything that is never blocked: special addresses, this host, mynetworks, --allow (decide/never-block.ts). */
export async function findNeverBlock(settings: NeverBlockSettings, warn: Warn): Promise<NamedRange[]> {
  return neverBlockRanges({
    own: findOwnAddresses(),
    mynetworks: await findMynetworks(settings.postfixConfigDir, warn, settings.stateDir, settings.keep),
    allow: settings.allow,
    blockLinkLocal: settings.blockLinkLocal,
  });
}
