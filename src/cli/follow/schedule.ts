/**
 * When a follower decides again (pure; times in ms, the clock is the caller's). One apply at a
 * time: what arrives while one runs waits for the next, which carries all of it. New events,
 * a changed overrides file or a signal make the next one due at once; a ban, an override or a
 * fleet decision that ends makes it due when it ends; the CrowdSec pull on its own interval.
 * What reloads (postmap + postfix reload; ufw reload with the rules backend) happens at most
 * once per --reload-interval: in between, a set backend still puts new blocks in force at once
 * and the access map waits (held, then written by the first apply the interval allows).
 */
import type { Decision } from '../../decide/policy.js';
import type { Override } from '../../decide/overrides.js';

export interface ScheduleOptions {
  /** --reload-interval (ms). */
  reloadInterval: number;
  /** The firewall backend reloads the whole firewall for a change (the rules backend). */
  firewallReloads: boolean;
  /** --pull-interval (ms), or null without a CrowdSec bouncer key. */
  pullInterval: number | null;
}

/** What an apply did, for the schedule. */
export interface Applied {
  /** It ran postfix reload or ufw reload. */
  reloaded: boolean;
  /** It left a change of the access map for later. */
  mapHeld: boolean;
  /** When the decision changes by itself next (ms), Infinity: never without new events. */
  due: number;
  /** It pulled the fleet's decisions. */
  pulled: boolean;
}

/** The longest wait before a failed apply is tried again. */
export const RETRY_MAX_MS = 5 * 60_000;

export class ApplySchedule {
  /** Something arrived that no apply has looked at yet. */
  private dirty = true;
  private due = -Infinity;
  private lastReload = -Infinity;
  private mapOwed = false;
  private lastPull = -Infinity;
  /** Applies that failed in a row. */
  private failures = 0;

  constructor(private options: ScheduleOptions) {}

  /** Counts triggers: an apply clears `dirty` only when none came while it ran. */
  private generation = 0;

  /** New events, a changed overrides file, a signal. During a fault's backoff they wait for the retry. */
  trigger(): void {
    this.generation++;
    this.dirty = this.failures === 0;
  }

  /** Where the triggers are when an apply starts: give it back to applied(). */
  get mark(): number {
    return this.generation;
  }

  /** Whether a fault is being waited out (then nothing but its retry is due). */
  get failing(): boolean {
    return this.failures > 0;
  }

  /** New settings (SIGHUP): what was learned (last reload, pull, failures) stays. */
  reconfigure(options: ScheduleOptions): void {
    this.options = options;
  }

  /** When to apply next (ms); Infinity: not before something arrives. */
  nextAt(): number {
    if (this.failures > 0) return this.due; // the retry, and nothing sooner
    const { reloadInterval, firewallReloads, pullInterval } = this.options;
    const reloadFree = this.lastReload + reloadInterval;
    let at = this.due;
    if (this.dirty) at = Math.min(at, firewallReloads ? reloadFree : -Infinity);
    if (this.mapOwed) at = Math.min(at, reloadFree);
    if (pullInterval !== null) at = Math.min(at, this.lastPull + pullInterval);
    return at;
  }

  /** Whether an apply at `now` leaves the access map as it is (a reload now would come too soon). */
  holdMap(now: number): boolean {
    return now < this.lastReload + this.options.reloadInterval;
  }

  /** Whether an apply at `now` pulls the fleet's decisions. */
  pullDue(now: number): boolean {
    return this.options.pullInterval !== null && now >= this.lastPull + this.options.pullInterval;
  }

  /**
   * An apply that started at `now` is done (or failed: `applied` null, tried again after the
   * reload interval); `mark`: the triggers when it started (what came since makes the next one due).
   */
  applied(now: number, applied: Applied | null, mark = this.generation): void {
    this.dirty = this.generation !== mark && applied !== null;
    if (applied === null) {
      // a fault that lasts: tried again after the reload interval, then twice as long each time, at most RETRY_MAX_MS
      this.due = now + Math.min(RETRY_MAX_MS, this.options.reloadInterval * 2 ** Math.min(this.failures, 16));
      this.failures++;
      return;
    }
    this.failures = 0;
    if (applied.reloaded) this.lastReload = now;
    if (applied.pulled) this.lastPull = now;
    this.mapOwed = applied.mapHeld;
    this.due = applied.due;
  }
}

/** A re-count of the window when blocks stand on it alone (no ban end to wait for): once a minute. */
const WINDOW_RECHECK_MS = 60_000;

/**
 * When the blocks change by themselves after `now`: the first end of a ban, a manual block,
 * an unblock or a fleet decision; a minute on while a block has none of these (its count in
 * the window may drop under the threshold).
 */
export function nextChange(decision: Decision, overrides: readonly Override[], now: number): number {
  let due = Infinity;
  const consider = (iso: string | null | undefined) => {
    if (iso === null || iso === undefined) return;
    const t = Date.parse(iso);
    if (Number.isFinite(t) && t > now && t < due) due = t;
  };
  for (const block of decision.blocks) {
    consider(block.until);
    consider(block.fleet?.until);
    if (block.until === undefined && block.fleet === undefined && block.reason !== 'manual') due = Math.min(due, now + WINDOW_RECHECK_MS);
  }
  for (const o of overrides) consider(o.until);
  return due;
}
