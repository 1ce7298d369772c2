/** Whether `smtpguard follow` does the work now (a cron `run` reads this first), and what `status` shows of it. */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { readFollowerBeat, type FollowerBeat } from '../../store/follower.js';
import type { FollowerView } from '../../report/status-report.js';
import { isSmtpguardRunning, readOwner } from '../lock.js';

/**
 * Whether a live follower does the work (a cron `run` then changes nothing): its pid is an
 * smtpguard and its heartbeat is younger than twice its interval. `gone`: one was running and
 * is not any more (killed, hung), not stopped on purpose: the cron run says so.
 */
export async function followerInCharge(stateDir: string, now = Date.now(), lockFile: string | null = null): Promise<{ inCharge: boolean; gone: FollowerBeat | null }> {
  const beat = await readFollowerBeat(stateDir);
  if (beat === null || beat.stopped !== undefined) return { inCharge: false, gone: null };
  const fresh = now - Date.parse(beat.heartbeat) < 2 * beat.interval;
  // a beat late because the follower is in a long apply (a flood's full read) holding the lock: still in charge
  const applying = !fresh && lockFile !== null && (await readOwner(lockFile)) === beat.pid;
  if (beat.pid !== process.pid && isSmtpguardRunning(beat.pid) && (fresh || applying)) return { inCharge: true, gone: null };
  return { inCharge: false, gone: beat };
}

/** The follower for `status` and the bare command: its beat, whether it runs, whether its unit is installed. */
export async function followerView(stateDir: string, systemdDir = '/etc/systemd/system', now = Date.now()): Promise<FollowerView | null> {
  const beat = await readFollowerBeat(stateDir);
  const installed = (await stat(path.join(systemdDir, 'smtpguard-follow.service')).catch(() => null)) !== null;
  if (beat === null) return installed ? { beat: null, running: false, installed } : null;
  const running = beat.stopped === undefined && isSmtpguardRunning(beat.pid) && now - Date.parse(beat.heartbeat) < 2 * beat.interval;
  return { beat, running, installed };
}
