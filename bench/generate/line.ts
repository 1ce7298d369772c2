/** One generated line, before its timestamp; and the process IDs that the lines show. */
import type { EventKind } from '../../src/read/kinds.js';
import type { Random } from './random.js';

export interface Line {
  /** `postfix/smtpd[1234]: ...`: everything after `TIMESTAMP HOST `. */
  text: string;
  /** The event the parser must find in it, if any. */
  address: string | null;
  kind: EventKind | null;
  /** How many events of `kind` the line stands for (a disconnect line's failed AUTH count). */
  count: number;
  /** Written by a program other than Postfix (absent from a Postfix maillog_file). */
  foreign: boolean;
}

/** Long-lived and short-lived process IDs, growing the way a busy server's do. */
export class Pids {
  private next: number;
  constructor(private readonly rng: Random) {
    this.next = rng.range(900, 30000);
  }
  fresh(): number {
    this.next += this.rng.range(1, 40);
    if (this.next > 4_194_304) this.next = this.rng.range(300, 3000);
    return this.next;
  }
}

/** A set of processes of one service: each session uses one; now and then one exits and another starts. */
export class PidPool {
  private readonly pids: number[];
  constructor(
    private readonly pids_: Pids,
    private readonly rng: Random,
    size: number,
    private readonly churn: number,
  ) {
    this.pids = Array.from({ length: size }, () => pids_.fresh());
  }
  pick(): number {
    const i = this.rng.int(this.pids.length);
    if (this.rng.chance(this.churn)) this.pids[i] = this.pids_.fresh();
    return this.pids[i]!;
  }
}
