/** `bans.json` in the state directory (edge): every block's length and history (bans.ts). */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { isValidRange, networkOf, normaliseAddress } from '../address.js';
import type { BanRecord } from './bans.js';
import { writeAtomically } from '../write/files.js';
import type { Warn } from '../read/sources.js';

export const BANS_FILE = 'bans.json';

/** The records, or none; a file that does not validate is a warning, and the bans start over from the logs. */
export async function readBans(stateDir: string, warn: Warn): Promise<BanRecord[]> {
  const file = path.join(stateDir, BANS_FILE);
  const text = await readFile(file, 'utf8').catch(() => null);
  if (text === null) return [];
  try {
    const data = JSON.parse(text) as { version?: unknown; bans?: unknown };
    if (data.version !== 1 || !Array.isArray(data.bans) || !data.bans.every(isBanRecord)) throw new Error('not a ban list');
    return data.bans;
  } catch (error) {
    warn(`${file} is not valid (${(error as Error).message}); ban times start over from what the logs show`);
    return [];
  }
}

/** Writes the records when they differ from what is there. */
export async function writeBans(stateDir: string, bans: readonly BanRecord[]): Promise<void> {
  const file = path.join(stateDir, BANS_FILE);
  const text = `${JSON.stringify({ version: 1, bans }, null, 1)}\n`;
  if ((await readFile(file, 'utf8').catch(() => null)) === text) return;
  await writeAtomically(file, text, null, 0o600);
}

function isBanRecord(value: unknown): value is BanRecord {
  if (typeof value !== 'object' || value === null) return false;
  const r = value as Record<string, unknown>;
  const time = (t: unknown) => typeof t === 'number' && Number.isFinite(t);
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
    (r.addresses === undefined || (Array.isArray(r.addresses) && r.addresses.length <= 256 && r.addresses.every((a) => typeof a === 'string' && normaliseAddress(a) === a)))
  );
}

/** `192.0.2.0/24` as networkOf writes it (with its length, no host bits): the only form the ban index can look up. */
function isCanonicalCidr(cidr: string): boolean {
  const slash = cidr.lastIndexOf('/');
  if (slash === -1 || !isValidRange(cidr)) return false;
  const address = normaliseAddress(cidr.slice(0, slash));
  return address !== null && networkOf(address, Number(cidr.slice(slash + 1))) === cidr;
}
