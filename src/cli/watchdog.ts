/**
 * The whole-run time limit (`--timeout`). A run can wait forever on things outside it (a
 * log on a hung NFS mount, a FIFO slipped in between the checks); cron then starts run
 * after run, each finding the lock taken. Past the limit the watchdog calls `expire` (which
 * releases the lock and exits) unless the run is applying a change: that part writes
 * atomically and its commands have their own time limits, so it is let finish.
 */
export class Watchdog {
  private applying = false;
  private expired = false;
  private readonly timer: NodeJS.Timeout | null;

  constructor(ms: number, private readonly expire: () => void) {
    // setTimeout takes at most 2^31-1 ms (24.8 days): longer means no limit in practice
    this.timer = Number.isFinite(ms) && ms < 2 ** 31 ? setTimeout(() => this.fire(), ms) : null;
  }

  /** Runs `apply` to the end even when the limit passes meanwhile. */
  async whileApplying<T>(apply: () => Promise<T>): Promise<T> {
    if (this.expired) return new Promise<never>(() => undefined); // expire() is ending the process: change nothing
    this.applying = true;
    try {
      return await apply();
    } finally {
      this.applying = false;
    }
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
  }

  private fire(): void {
    this.expired = true;
    if (!this.applying) this.expire();
  }
}
