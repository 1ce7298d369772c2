/**
 * Progress on long work, as the stages report it: a stage says what it is doing (a reading it can
 * be asked for at any time) and ticks from loops that keep the event loop busy. A terminal shows it
 * (report/progress.ts); cron and pipes never get one, and then nothing here costs anything.
 */
export interface ProgressReading {
  /** What is being done: `reading the logs`, `reading the journal`, `applying`. */
  label: string;
  done: number;
  /** null: not known (stdin, the journal). */
  total: number | null;
  unit: 'bytes' | 'entries' | 'steps';
  /** For steps: the one under way (`ufw reload`). */
  step?: string;
}

export interface ProgressHook {
  /** What to show from now on (null: nothing, the work is done). */
  watch(source: (() => ProgressReading) | null): void;
  /** From a loop that does not yield: redraw if it is time. Cheap. */
  tick(): void;
}
