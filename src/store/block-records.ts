/** What `run` blocked and why (blocks.json in the state directory): for `status`, and what rebuilds a lost bans.json. */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { isValidRange } from '../address.js';
import { readStore, readStoreBytes } from './store-file.js';
import { writeOwnFile } from './atomic.js';
import type { Warn } from '../warn.js';

/** What `run` blocked, and why: kept for `smtpguard status`. */
export interface BlockRecord {
  cidr: string;
  family: 4 | 6;
  reason: string;
  total: number;
  addresses: string[];
  firstSeen: string;
  lastSeen: string;
  /** When this block first appeared (kept from run to run while it stays). */
  since: string;
  /** With ban times: when it ends (ISO; null: never) and how many bans in a row it is. */
  until?: string | null;
  times?: number;
  /** Fleet blocks: the CrowdSec decision's scenario, origin and end. */
  fleet?: { scenario: string; origin: string; until: string };
  /** A range's exceptions, and whether it rests on message-level rejects: what rebuilds a lost bans.json. */
  exceptions?: string[];
  messageLevel?: true;
}

const BLOCKS_FILE = 'blocks.json';

/**
 * The records `run` kept, or null when there are none. A file that is not valid (hand-edited,
 * truncated, `[null]`) is a warning, and the next run writes it anew from what it decides.
 */
export async function readBlockRecords(stateDir: string, warn?: Warn): Promise<BlockRecord[] | null> {
  const file = path.join(stateDir, BLOCKS_FILE);
  let text: string | null = null;
  const records = await readStore(file, {
    parse: (read) => {
      text = read;
      const records = JSON.parse(read) as unknown;
      if (!Array.isArray(records) || !records.every(isBlockRecord)) throw new Error('it does not hold block records');
      return records as BlockRecord[];
    },
    warn: warn ?? (() => undefined),
    keep: warn === undefined, // status: changes nothing
    consequence: "it is written anew from this run's decisions",
  });
  lastRead = { file, text: records === null ? null : text };
  return records;
}

function isBlockRecord(value: unknown): value is BlockRecord {
  if (typeof value !== 'object' || value === null) return false;
  const r = value as Record<string, unknown>;
  const time = (t: unknown) => typeof t === 'string' && !Number.isNaN(Date.parse(t));
  return (
    typeof r.cidr === 'string' &&
    isValidRange(r.cidr) &&
    (r.family === 4 || r.family === 6) &&
    typeof r.reason === 'string' &&
    typeof r.total === 'number' &&
    Array.isArray(r.addresses) &&
    r.addresses.every((a) => typeof a === 'string') &&
    time(r.firstSeen) &&
    time(r.lastSeen) &&
    time(r.since)
  );
}

/** The text readBlockRecords last read: a run reads the records, then writes them, and need not read 20 MB twice. */
let lastRead: { file: string; text: string | null } | null = null;

/** Writes the records when they differ from what is there: one record per line (100,000 blocks are ~25 MB). */
export async function writeBlockRecords(stateDir: string, records: readonly BlockRecord[]): Promise<void> {
  const text = records.length === 0 ? '[]\n' : `[\n${records.map((r) => JSON.stringify(r)).join(',\n')}\n]\n`;
  const file = path.join(stateDir, BLOCKS_FILE);
  const before = lastRead?.file === file ? lastRead.text : await readStoreBytes(file).then((b) => b.toString('utf8'), () => null);
  if (before === text) return;
  lastRead = { file, text };
  await mkdir(stateDir, { recursive: true, mode: 0o755 });
  await writeOwnFile(file, text, 0o644);
}
