/**
 * The follower's heartbeat (edge): `follower.json` in the state directory, rewritten by
 * `smtpguard follow` every few seconds and after each apply. A cron run reads it to leave
 * the work to a live follower; `status` and the bare command show it.
 */
import { stat, utimes } from 'node:fs/promises';
import path from 'node:path';
import { readStoreBytes } from './store-file.js';
import { writeOwnFile } from './atomic.js';

export interface FollowerSource {
  /** The log file, or journal:UNIT. */
  name: string;
  /** Bytes written to it that the follower has not read yet. */
  behindBytes: number;
  /** Seconds since it last had nothing left to read (0: caught up). */
  behindSeconds: number;
}

export interface FollowerBeat {
  pid: number;
  /** ISO times: when it started, and this beat. */
  started: string;
  heartbeat: string;
  /** Milliseconds between two beats: a beat older than twice this is stale. */
  interval: number;
  sources: FollowerSource[];
  /** The last apply that changed something, or failed. */
  lastApply: { time: string; ok: boolean; summary: string } | null;
  /** Set when it stopped on purpose (SIGTERM): a cron run then takes over without a warning. */
  stopped?: string;
}

export const FOLLOWER_FILE = 'follower.json';

/**
 * Writes the beat; `same`: nothing but the time changed since the last write, so only the file's
 * time is set (one syscall: an idle follower's beat costs nothing measurable). The heartbeat is
 * the later of the file's time and its `heartbeat` field.
 */
export async function writeFollowerBeat(stateDir: string, beat: FollowerBeat, same = false): Promise<void> {
  const file = path.join(stateDir, FOLLOWER_FILE);
  if (same) {
    const now = new Date(beat.heartbeat);
    if (await utimes(file, now, now).then(() => true, () => false)) return;
  }
  await writeOwnFile(file, `${JSON.stringify(beat)}\n`, 0o644);
}

export async function readFollowerBeat(stateDir: string): Promise<FollowerBeat | null> {
  try {
    const value = JSON.parse((await readStoreBytes(path.join(stateDir, FOLLOWER_FILE))).toString('utf8')) as FollowerBeat;
    const valid = Number.isInteger(value?.pid) && value.pid > 0 && typeof value.heartbeat === 'string' && !Number.isNaN(Date.parse(value.heartbeat)) && Number.isFinite(value.interval) && Array.isArray(value.sources);
    if (!valid) return null;
    const touched = (await stat(path.join(stateDir, FOLLOWER_FILE))).mtimeMs;
    return touched > Date.parse(value.heartbeat) ? { ...value, heartbeat: new Date(touched).toISOString() } : value;
  } catch {
    return null;
  }
}
