/**
 * When `run` last ran and what it said (edge): `last-run.json` in the state directory,
 * for the summary bare `smtpguard` prints. Never fails a run.
 */
import path from 'node:path';
import { readStoreBytes } from './store-file.js';
import { writeOwnFile } from './atomic.js';

export interface LastRun {
  /** ISO time the run ended. */
  time: string;
  /** Its summary line. */
  summary: string;
  /** Whether it changed anything. */
  changed: boolean;
}

const FILE = 'last-run.json';

export async function writeLastRun(stateDir: string, run: LastRun): Promise<void> {
  await writeOwnFile(path.join(stateDir, FILE), `${JSON.stringify(run)}\n`, 0o644).catch(() => undefined);
}

export async function readLastRun(stateDir: string): Promise<LastRun | null> {
  try {
    const value = JSON.parse((await readStoreBytes(path.join(stateDir, FILE))).toString('utf8')) as LastRun;
    return typeof value.time === 'string' && typeof value.summary === 'string' ? value : null;
  } catch {
    return null;
  }
}
