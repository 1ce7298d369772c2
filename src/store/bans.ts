/** `bans.json` in the state directory (edge): every block's length and history (bans.ts). */
import path from 'node:path';
import { isValidRange, networkOf, normaliseAddress } from '../address.js';
import type { BanRecord } from '../decide/bans.js';
import { isTime, readStore, readStoreBytes } from './store-file.js';
import { writeOwnFile } from './atomic.js';
import type { Warn } from '../warn.js';
import { readBlockRecords, type BlockRecord } from './block-records.js';

export const BANS_FILE = 'bans.json';

/** The records, or none; a file that does not validate is a warning, and the bans start over from the logs. */
export async function readBans(stateDir: string, warn: Warn, keep = false): Promise<BanRecord[]> {
  const bans = await readStore(path.join(stateDir, BANS_FILE), {
    parse: (text) => {
      const data = JSON.parse(text) as { version?: unknown; bans?: unknown };
      if (data?.version !== 1 || !Array.isArray(data.bans) || !data.bans.every(isBanRecord)) throw new Error('not a ban list');
      return data.bans as BanRecord[];
    },
    warn,
    keep,
    consequence: 'the bans in force are taken from blocks.json, their history starts over',
    rebuild: async () => bansFromRecords((await readBlockRecords(stateDir)) ?? []),
  });
  return bans ?? [];
}

/**
 * Ban records made again from what the last run blocked (blocks.json): a bans.json set aside
 * must not lift the bans in force. The history before them (earlier bans) is lost.
 */
export function bansFromRecords(records: readonly BlockRecord[]): BanRecord[] {
  const bans: BanRecord[] = [];
  for (const r of records) {
    if (!LOCAL_REASONS.has(r.reason) || r.until === undefined || !isCanonicalCidr(r.cidr)) continue;
    const until = r.until === null ? null : Date.parse(r.until);
    const lastEvent = Date.parse(r.lastSeen);
    const firstBlocked = Date.parse(r.since);
    if (!isTime(lastEvent) || !isTime(firstBlocked) || (until !== null && !isTime(until))) continue;
    const addresses = r.addresses.filter((a) => normaliseAddress(a) === a).slice(0, 256);
    const exceptions = (r.exceptions ?? []).filter((e) => typeof e === 'string' && isCanonicalCidr(e));
    bans.push({
      cidr: r.cidr,
      family: r.family,
      reason: r.reason,
      firstBlocked,
      lastEvent,
      until,
      times: Math.max(1, Math.floor(r.times ?? 1)),
      banMs: until === null ? null : Math.max(1, until - lastEvent),
      addresses,
      ...(exceptions.length > 0 ? { exceptions } : {}),
      ...(r.messageLevel === true ? { messageLevel: true as const } : {}),
    });
  }
  return bans;
}

/** Blocks the logs made (not manual, not the fleet's): the ones ban times apply to. */
const LOCAL_REASONS: ReadonlySet<string> = new Set(['host', 'subnet', 'prefix', 'subnet6']);

/** Writes the records when they differ from what is there. */
export async function writeBans(stateDir: string, bans: readonly BanRecord[]): Promise<void> {
  const file = path.join(stateDir, BANS_FILE);
  const text = `${JSON.stringify({ version: 1, bans }, null, 1)}\n`;
  if ((await readStoreBytes(file).then((b) => b.toString('utf8'), () => null)) === text) return;
  await writeOwnFile(file, text, 0o600);
}

function isBanRecord(value: unknown): value is BanRecord {
  if (typeof value !== 'object' || value === null) return false;
  const r = value as Record<string, unknown>;
  const time = isTime; // a time no Date can hold (until: 1e300) would stop every run that prints it
  return (
    typeof r.cidr === 'string' &&
    isCanonicalCidr(r.cidr) &&
    (r.family === 4 || r.family === 6) &&
    typeof r.reason === 'string' &&
    time(r.firstBlocked) &&
    time(r.lastEvent) &&
    (r.until === null || time(r.until)) &&
    typeof r.times === 'number' &&
    Number.isInteger(r.times) &&
    r.times >= 1 &&
    (r.banMs === null || (time(r.banMs) && (r.banMs as number) > 0)) &&
    (r.released === undefined || typeof r.released === 'boolean') &&
    (r.addresses === undefined || (Array.isArray(r.addresses) && r.addresses.length <= 256 && r.addresses.every((a) => typeof a === 'string' && normaliseAddress(a) === a))) &&
    (r.exceptions === undefined || (Array.isArray(r.exceptions) && r.exceptions.length <= 1000 && r.exceptions.every((e) => typeof e === 'string' && isCanonicalCidr(e)))) &&
    (r.messageLevel === undefined || r.messageLevel === true)
  );
}

/** `192.0.2.0/24` as networkOf writes it (with its length, no host bits): the only form the ban index can look up. */
function isCanonicalCidr(cidr: string): boolean {
  const slash = cidr.lastIndexOf('/');
  if (slash === -1 || !isValidRange(cidr)) return false;
  const address = normaliseAddress(cidr.slice(0, slash));
  return address !== null && networkOf(address, Number(cidr.slice(slash + 1))) === cidr;
}
