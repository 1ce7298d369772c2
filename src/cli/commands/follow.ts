/**
 * `smtpguard follow`: the cron job's decisions, applied as Postfix writes the log. One engine,
 * two drivers: each apply is `run`'s own (runLocked: policy, bans, overrides, fleet, sections,
 * atomic writes, reloads, rollback), given the events the follower keeps in memory instead of
 * reading the logs again.
 *
 * Reading: a full read as `run` does it (collectEvents, from the saved scan state, which it
 * saves) at start, after a rotation, and at least every SAVE_MS while new text came; in
 * between, tails read each live log's new complete lines into the same tally (inotify through
 * fs.watch wakes them, an fstat every BEAT_MS is the safety net). A full read replaces the
 * tally, so whatever a tail did is checked against the state: nothing counted twice, nothing
 * missed across a rename or a copytruncate, and a `kill -9` loses at most the unsaved tail,
 * which the next start reads again.
 *
 * The run lock is held only while an apply runs; a cron `run` leaves the work to a live
 * follower (its heartbeat in the state directory, follower.json).
 */
import { watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import { ExitCode, SmtpguardError, usageError } from '../../errors.js';
import { LineParser } from '../../read/parse.js';
import { STDIN } from '../../read/sources.js';
import type { JournalSource } from '../../read/journal.js';
import type { Collected, LiveLog } from '../../scan/collect.js';
import { FileTail, JournalTail, type Tail } from '../../scan/tail.js';
import { EVENT_KINDS, type EventKind } from '../../read/kinds.js';
import { readOverrides } from '../../store/overrides.js';
import { writeFollowerBeat, type FollowerBeat } from '../../store/follower.js';
import { backendFor } from '../../write/firewall/registry.js';
import { summaryLine, trackedClause } from '../../report/plan-report.js';
import { chooseJournal, collectAsRun, type Io } from './common.js';
import { withRunLock } from './locked.js';
import { runLocked, type RunStage } from './run.js';
import { refreshMetrics } from './metrics.js';
import { ApplySchedule, nextChange, type ScheduleOptions } from '../follow/schedule.js';
import type { Settings } from '../settings.js';

/** The safety-net fstat of every tail, and the heartbeat: a follower whose beat is older than twice this is gone. */
export const BEAT_MS = 5_000;
/** New log text is in the saved scan state at most this long after it was read. */
export const SAVE_MS = 30_000;
/** The shortest time between two full reads. */
const FULL_READ_GAP_MS = 1_000;
/** How long a starting follower waits for a busy lock (install restarts it while it still holds it). */
const FIRST_LOCK_WAIT_MS = 60_000;
/** A busy lock (a verb, an install) is tried again this soon. */
const LOCK_RETRY_MS = 200;

export interface FollowOptions {
  /** --log was not given anywhere: the default paths. */
  defaultLogs: boolean;
  /** Settings read again (SIGHUP). */
  reread: () => Promise<{ settings: Settings; defaultLogs: boolean }>;
  /**
   * The clock of the decisions (the window's end, ban ends, year-less stamps); pacing (the save
   * every 30 s, the heartbeat, --reload-interval) keeps the wall clock. A replay of a week of logs
   * (the bench) drives it from the log's own time.
   */
  now?: () => number;
}

export async function followCommand(settings: Settings, options: FollowOptions, io: Io): Promise<void> {
  if (settings.log.includes(STDIN)) throw usageError('follow reads log files or the journal, not standard input (--log -)', 'give the log file, e.g. --log /var/log/mail.log, or --journal');
  const follower = new Follower(settings, options, io);
  try {
    await follower.start();
  } catch (error) {
    follower.close(); // a journalctl it started, its watchers: nothing may keep the process up
    throw error;
  }
  await follower.finished;
}

export class Follower {
  private readonly now: () => number;
  private schedule: ApplySchedule;
  /** The last full read, with the tails' events added to its tally since; null: none yet (or one under way). */
  private collected: Collected | null = null;
  /** Each tail, when it last had nothing left to read, and its counts by kind already in readByKind. */
  private tails: Array<{ tail: Tail; caughtUpAt: number; kinds: number[] }> = [];
  /** The tails' parser: its `now` moves with the clock (year-less stamps after it would be last year's). */
  private parser: LineParser | null = null;
  private watchers: FSWatcher[] = [];
  private beatTimer: NodeJS.Timeout | null = null;
  private needFullRead = true;
  private lastFullRead = -Infinity;
  /** The decisions' time of the last full read. */
  private fullReadClock = -Infinity;
  /** When a tail first read text the saved state does not have yet. */
  private unsavedSince: number | null = null;
  /** Events per kind read since the last apply (the metrics' counters). */
  private readByKind = zeroKinds();
  private stopping = false;
  private applying = false;
  private wakeUp: (() => void) | null = null;
  /** The one timer of the loop's wait. */
  private timer: NodeJS.Timeout | null = null;
  private readonly started = new Date();
  private lastApply: FollowerBeat['lastApply'] = null;
  /** The last beat written, but its time: an unchanged one only touches the file. */
  private lastBeat = '';
  private journal: JournalSource | null = null;
  private resolveFinished!: () => void;
  readonly finished = new Promise<void>((resolve) => (this.resolveFinished = resolve));

  private readonly io: Io;
  /** Warnings said and still lasting: a fault is said once, again only after an apply without it. */
  private said = new Set<string>();
  private saidNow = new Set<string>();

  constructor(
    private settings: Settings,
    private readonly options: FollowOptions,
    io: Io,
  ) {
    this.io = {
      ...io,
      warn: (message) => {
        this.saidNow.add(message);
        if (this.said.has(message)) return;
        this.said.add(message);
        io.warn(message);
      },
    };
    this.now = options.now ?? Date.now;
    this.defaultLogs = options.defaultLogs;
    this.schedule = new ApplySchedule(this.scheduleOptions());
  }

  private defaultLogs: boolean;

  private scheduleOptions(): ScheduleOptions {
    const s = this.settings;
    return {
      reloadInterval: s.reloadInterval,
      firewallReloads: backendFor(s.firewall).reloadsAll === true,
      pullInterval: s.crowdsecUrl !== null && s.crowdsecBouncerKeyFile !== null ? s.pullInterval : null,
    };
  }

  async start(): Promise<void> {
    // first: a stop or a reload during the first (long) full read must not kill it half-way
    process.on('SIGTERM', () => this.stop());
    process.on('SIGINT', () => this.stop());
    process.on('SIGHUP', () => void this.reread());
    this.journal = await chooseJournal(this.settings, this.defaultLogs, this.io);
    // the first apply is a full run: a setting it cannot run with stops the follower here, with run's exit
    // code; a busy lock (install still finishing, a verb) is waited for
    for (const t0 = Date.now(); !(await this.apply(true)); ) {
      if (Date.now() - t0 > FIRST_LOCK_WAIT_MS) throw new SmtpguardError(`the run lock ${this.settings.lockFile} stayed busy for ${FIRST_LOCK_WAIT_MS / 1000} s`, { exitCode: ExitCode.lockBusy, hint: 'another smtpguard holds it: see which (cat the lock file), then start the follower again' });
    }
    const names = this.tails.map((t) => t.tail.name);
    this.io.stdout.write(`smtpguard follow: reading ${names.length === 0 ? 'no log yet' : names.join(', ')} as it grows (pid ${process.pid})\n`);
    this.beatTimer = setInterval(() => {
      this.wake();
      void this.beat();
    }, BEAT_MS);
    await this.beat();
    void this.loop();
  }

  private stop(): void {
    this.stopping = true;
    this.wake();
  }

  private wake(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const wakeUp = this.wakeUp;
    this.wakeUp = null;
    wakeUp?.();
  }

  /** Tails, watchers, the beat: what keeps the process up (a start that failed). */
  close(): void {
    if (this.beatTimer !== null) clearInterval(this.beatTimer);
    for (const w of this.watchers) w.close();
    this.closeTails();
  }

  private async loop(): Promise<void> {
    try {
      while (!this.stopping) {
        this.poll();
        // while a fault is waited out, its retry alone is due (it reads and saves too)
        let at = this.schedule.failing ? this.schedule.nextAt() : Math.min(this.schedule.nextAt(), this.unsavedSince === null ? Infinity : this.unsavedSince + SAVE_MS);
        const now = Date.now();
        // a source that keeps going away (journalctl dying at once) is read again at most once a second
        if (this.needFullRead && at <= now) at = Math.max(at, this.lastFullRead + FULL_READ_GAP_MS);
        if (at <= now) {
          await this.apply(false);
          continue;
        }
        await new Promise<void>((resolve) => {
          this.wakeUp = resolve;
          if (Number.isFinite(at)) this.timer = setTimeout(() => this.wake(), Math.min(at - now, 2 ** 31 - 1));
        });
      }
      await this.shutdown();
    } catch (error) {
      this.io.warn(`follow stopped: ${(error as Error).message}`);
      process.exitCode = error instanceof SmtpguardError ? error.exitCode : ExitCode.internal;
      await this.shutdown(false);
    }
  }

  /** Reads what the tails have; new events make an apply due, a moved log a full read. */
  private poll(): void {
    const now = Date.now();
    const decisionNow = this.now();
    this.parser?.moveTo(new Date(decisionNow + 1000));
    // the tails add every event they read: a full read keeps the window's alone, so memory stays
    // bounded by the window and a quarter (by construction, whatever the clocks: a replay too)
    if (this.collected !== null && decisionNow - this.fullReadClock > Math.max(this.settings.window / 4, 60_000)) {
      this.needFullRead = true;
      this.schedule.trigger();
    }
    for (const t of this.tails) {
      const read = t.tail.read();
      if (read.bytes > 0 && this.unsavedSince === null) this.unsavedSince = now;
      if (read.events > 0) this.schedule.trigger();
      if (read.moved) {
        if (read.problem !== undefined) this.io.warn(`${read.problem}; started again from the saved cursor`);
        this.needFullRead = true;
        this.schedule.trigger();
      }
      if (t.tail.behind().bytes === 0) t.caughtUpAt = now;
      for (const [i, kind] of EVENT_KINDS.entries()) {
        this.readByKind[kind] += t.tail.kinds[i]! - t.kinds[i]!;
        t.kinds[i] = t.tail.kinds[i]!;
      }
    }
  }

  /**
   * One apply, as `run` does it, under the run lock; `first`: a failure stops the follower
   * (bad settings at start). A busy lock (a verb is applying) is tried again shortly.
   */
  private async apply(first: boolean): Promise<boolean> {
    const started = Date.now();
    const mark = this.schedule.mark;
    this.applying = true;
    let busy = false;
    try {
      await withRunLock(this.settings, false, async (watchdog) => {
        if (this.needFullRead || this.collected === null || (this.unsavedSince !== null && started - this.unsavedSince >= SAVE_MS)) await this.readFully();
        else this.poll(); // what came while the lock was waited for
        const now = new Date(this.now());
        const pull = this.schedule.pullDue(started);
        const collected: Collected = { ...this.collected!, readByKind: this.takeReadByKind() };
        const stage: RunStage = { name: 'scan', facts: null };
        const result = await runLocked(
          this.settings,
          { now, defaultLogs: this.defaultLogs, dryRun: false, share: true, pull, collected, holdMap: this.schedule.holdMap(started) },
          this.io,
          () => readOverrides(this.settings.stateDir),
          watchdog,
          stage,
        );
        const { plan, summarised } = result;
        const line = `${summaryLine(plan)}${trackedClause(summarised)}`;
        const news = plan.changes.length > 0 && !plan.quiet && (plan.summary.added > 0 || plan.summary.removed > 0 || !plan.changes.every((c) => c.role === 'map'));
        if (news) this.io.stdout.write(`${line}\n`);
        if (plan.changes.length > 0) this.lastApply = { time: now.toISOString(), ok: true, summary: line };
        const reloaded = plan.changes.some((c) => c.role === 'map') || (backendFor(this.settings.firewall).reloadsAll === true && plan.firewall.some((p) => p.changes.length > 0));
        // the next change by itself, from the decisions' clock to the pacing clock (the same but in a replay)
        const due = nextChange(plan.decision, result.overrides, now.getTime());
        this.schedule.applied(started, { reloaded, mapHeld: plan.mapHeld, pulled: pull, due: due === Infinity ? Infinity : started + (due - now.getTime()) }, mark);
        await refreshMetrics(this.settings, { started, facts: stage.facts }, this.io);
        try {
          result.fleet?.finish();
        } catch (error) {
          this.io.warn((error as Error).message);
        }
      });
    } catch (error) {
      if (error instanceof SmtpguardError && error.exitCode === ExitCode.lockBusy) {
        busy = true;
        await new Promise((resolve) => setTimeout(resolve, LOCK_RETRY_MS));
        return false;
      }
      if (first || !(error instanceof SmtpguardError)) throw error;
      // a failed apply was put back as run puts it back: said once, tried again after the reload interval
      const message = `${error.message}${error.hint === undefined ? '' : ` -- ${error.hint}`}`;
      this.io.warn(message);
      this.lastApply = { time: new Date(started).toISOString(), ok: false, summary: message };
      this.schedule.applied(started, null, mark);
    } finally {
      this.applying = false;
      if (!busy) {
        // what this apply did not say again is over: said anew if it comes back
        this.said = this.saidNow;
        this.saidNow = new Set();
      }
    }
    if (!first) await this.beat();
    return true;
  }

  /** A full read as `run` does it (saving the scan state); the tails start again where it stopped. */
  private async readFully(): Promise<void> {
    this.closeTails();
    // the counts in memory are read again: let them go first (two copies of a flood's tally would not fit the budget)
    this.collected = null;
    const at = this.now();
    const firstRead = this.fullReadClock === -Infinity;
    this.lastFullRead = Date.now();
    this.fullReadClock = at;
    const collected = await collectAsRun(this.settings, new Date(at), this.defaultLogs, this.io, { follow: true, journal: this.journal });
    this.collected = collected;
    // the events a tail read were counted already: only the first read's are news for the metrics
    if (firstRead) for (const kind of EVENT_KINDS) this.readByKind[kind] += collected.readByKind[kind];
    this.needFullRead = false;
    this.unsavedSince = null;
    const parser = new LineParser(new Date(at));
    this.parser = parser;
    // one live file per syslog group: collectEvents' `follow` read one family of each
    const caughtUpAt = Date.now();
    for (const live of collected.live) this.tails.push({ tail: new FileTail(live, parser, collected.tally), caughtUpAt, kinds: EVENT_KINDS.map(() => 0) });
    if (this.journal !== null) {
      const { followJournal, journalName } = await import('../../read/journal.js');
      const child = await followJournal(this.journal, collected.journalCursor, collected.journalCursor === null ? at : null);
      this.tails.push({ tail: new JournalTail(journalName(this.journal), child, parser, collected.tally, () => this.wake()), caughtUpAt, kinds: EVENT_KINDS.map(() => 0) });
    }
    this.watch(collected.live);
  }

  private takeReadByKind(): Record<EventKind, number> {
    const taken = this.readByKind;
    this.readByKind = zeroKinds();
    return taken;
  }

  /** inotify on each log's directory (a write, a rename, a new file) and on the state directory (overrides.json). */
  private watch(live: readonly LiveLog[]): void {
    for (const w of this.watchers) w.close();
    this.watchers = [];
    const dirs = new Map<string, Set<string>>();
    const logDirs = live.map((l) => l.path);
    // a log that does not exist yet: its directory, to notice it when it comes
    if (this.journal === null || !this.defaultLogs) for (const pattern of this.settings.log) logDirs.push(pattern);
    for (const file of logDirs) {
      const dir = path.dirname(file);
      const names = dirs.get(dir) ?? new Set<string>();
      names.add(path.basename(file).split('*')[0]!);
      dirs.set(dir, names);
    }
    const tailed = new Set(live.map((l) => path.basename(l.path)));
    for (const [dir, prefixes] of dirs) {
      try {
        const watcher = watch(dir, { persistent: false }, (type, name) => {
          const file = name === null ? '' : String(name);
          if (tailed.has(file)) return this.wake();
          // a log appeared, or a rotation renamed one: read everything again
          if (type === 'rename' && [...prefixes].some((p) => file.startsWith(p))) {
            this.needFullRead = true;
            this.schedule.trigger();
            this.wake();
          }
        });
        watcher.on('error', () => undefined);
        this.watchers.push(watcher);
      } catch {
        // not watchable (gone, not a directory): the safety-net fstat and the next full read find it
      }
    }
    try {
      const watcher = watch(this.settings.stateDir, { persistent: false }, (_type, name) => {
        if (name !== null && String(name) === 'overrides.json' && !this.applying) {
          this.schedule.trigger();
          this.wake();
        }
      });
      watcher.on('error', () => undefined);
      this.watchers.push(watcher);
    } catch {
      // the state directory is made by the first apply; a verb applies its own change anyway
    }
  }

  private closeTails(): void {
    for (const t of this.tails) t.tail.close();
    this.tails = [];
  }

  /** SIGHUP: the config file again; a setting it cannot run with is said, and the old settings stay. */
  private async reread(): Promise<void> {
    try {
      const { settings, defaultLogs } = await this.options.reread();
      const journal = await chooseJournal(settings, defaultLogs, this.io);
      // all or nothing: the new settings only once everything about them is known
      this.settings = settings;
      this.defaultLogs = defaultLogs;
      this.journal = journal;
      this.schedule.reconfigure(this.scheduleOptions());
      this.needFullRead = true;
      this.schedule.trigger(); // an apply with the new settings now
      this.io.stdout.write('smtpguard follow: settings read again\n');
    } catch (error) {
      this.io.warn(`the settings were not read again: ${(error as Error).message}; the follower goes on with the ones it had`);
    }
    this.wake();
  }

  /** One beat at a time, in order: a late one must not overwrite a newer one (or the stop). */
  private beating: Promise<void> = Promise.resolve();

  private beat(stopped = false): Promise<void> {
    this.beating = this.beating.then(() => this.writeBeat(stopped));
    return this.beating;
  }

  private async writeBeat(stopped: boolean): Promise<void> {
    const now = Date.now();
    const beat: FollowerBeat = {
      pid: process.pid,
      started: this.started.toISOString(),
      heartbeat: new Date(now).toISOString(),
      interval: BEAT_MS,
      sources: this.tails.map((t) => {
        const bytes = t.tail.behind().bytes;
        return { name: t.tail.name, behindBytes: bytes, behindSeconds: bytes === 0 ? 0 : Math.round((now - t.caughtUpAt) / 1000) };
      }),
      lastApply: this.lastApply,
      ...(stopped ? { stopped: new Date(now).toISOString() } : {}),
    };
    const content = JSON.stringify({ ...beat, heartbeat: '' });
    try {
      await writeFollowerBeat(this.settings.stateDir, beat, content === this.lastBeat);
      this.lastBeat = content;
    } catch (error) {
      this.lastBeat = ''; // written whole next time
      this.io.warn(`cannot write the heartbeat: ${(error as Error).message}`);
    }
  }

  /** SIGTERM: the apply in progress is done; what the tails read is saved with the state; exit 0. */
  private async shutdown(save = true): Promise<void> {
    if (this.beatTimer !== null) clearInterval(this.beatTimer);
    for (const w of this.watchers) w.close();
    if (save && this.unsavedSince !== null) {
      await withRunLock(this.settings, false, async () => {
        await collectAsRun(this.settings, new Date(this.now()), this.defaultLogs, this.io, { follow: true });
      }).catch((error: Error) => this.io.warn(`the scan state was not saved: ${error.message}; the next start reads the unsaved part again`));
    }
    this.closeTails();
    await this.beat(true);
    this.resolveFinished();
  }
}

function zeroKinds(): Record<EventKind, number> {
  return Object.fromEntries(EVENT_KINDS.map((k) => [k, 0])) as Record<EventKind, number>;
}
