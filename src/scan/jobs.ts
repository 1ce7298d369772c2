/**
 * Scan jobs: byte ranges of open logs, scanned on this thread and, when there is enough
 * to read, on worker threads at the same time (every core os.availableParallelism() gives). A worker reads through the
 * same file descriptors: threads share them, so a log rotated meanwhile is still the
 * file that was opened.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { ExitCode, SmtpguardError } from '../errors.js';
import { LineParser } from '../read/parse.js';
import { LogScanner, type ScanCounters } from '../read/scan.js';
import { guard, readGzip, readPlain } from '../read/sources.js';
import { currentTallyBound, Tally } from '../count/tally.js';
import { tallyFromParts, type TallyParts } from '../count/transfer.js';
import type { ProgressHook } from '../progress.js';

export interface ScanJob {
  path: string;
  fd: number;
  gzip: boolean;
  /** Text offsets; `to` is Infinity for "to the end". A range always starts and ends at a line start. */
  from: number;
  to: number;
  /** Bytes this job will read, for scheduling. */
  size: number;
  /** Leave an unterminated last line unread and return it (the end of a live log). */
  stopAtLastLine: boolean;
  /** With progress on: the bytes read so far go to slot `index` of this shared array (the worker's too). */
  progress?: { slots: SharedArrayBuffer; index: number };
}

export interface JobResult {
  tally: Tally;
  counters: ScanCounters;
  /** Events read per kind (LogScanner.kinds). */
  kinds: number[];
  /** The unterminated last line (stopAtLastLine), else empty. */
  rest: Buffer;
  warnings: string[];
}

/** The worker script; when this module runs from src/ (the tests), the built one. */
const WORKER = import.meta.url.endsWith('.ts') ? new URL('../../dist/scan/scan-worker.js', import.meta.url) : new URL('./scan-worker.js', import.meta.url);

export async function runJob(job: ScanJob, parser: LineParser, tick?: () => void): Promise<JobResult> {
  const tally = new Tally();
  const scanner = job.progress === undefined ? new LogScanner(parser, tally) : new CountingScanner(parser, tally, new Float64Array(job.progress.slots), job.progress.index, tick);
  const warnings: string[] = [];
  await guard(job.path, () =>
    job.gzip ? readGzip(job.fd, job.path, scanner, (w) => warnings.push(w), job.from) : readPlain(job.fd, scanner, job.from, job.to),
  );
  let rest: Buffer = Buffer.alloc(0);
  if (job.stopAtLastLine) rest = scanner.endAtLastNewline();
  else scanner.end();
  return { tally, counters: scanner.counters, kinds: scanner.kinds, rest, warnings };
}

/** A worker's young generation (V8's default grows it to 32 MiB and more): a scan's garbage dies young, and a small one is as fast. */
const YOUNG_MB = 12;

/** Threads to read with: every core the system gives this process (os.availableParallelism), this one included. */
export const THREADS = Math.max(1, availableParallelism());

/**
 * A scanner that says how far it got, block by block: into a shared slot (read by the progress
 * line on the main thread), and with a tick on the main thread, whose own jobs do not yield.
 * Only made when progress is on: the scanner of a cron run stays the one class.
 */
class CountingScanner extends LogScanner {
  constructor(
    parser: LineParser,
    tally: Tally,
    private readonly slots: Float64Array,
    private readonly index: number,
    private readonly tick: (() => void) | undefined,
  ) {
    super(parser, tally);
  }

  override commit(bytes: number): void {
    super.commit(bytes);
    this.slots[this.index] = this.counters.bytes;
    this.tick?.();
  }
}

/** Runs the jobs, biggest first, on this thread and up to THREADS - 1 workers; results in the jobs' order. */
export async function runJobs(inputJobs: readonly ScanJob[], now: Date, parallelMinBytes: number, progress?: ProgressHook): Promise<JobResult[]> {
  const parser = new LineParser(now);
  let jobs = inputJobs;
  if (progress !== undefined && jobs.length > 0) {
    const slots = new SharedArrayBuffer(8 * jobs.length);
    const read = new Float64Array(slots);
    jobs = jobs.map((job, index) => ({ ...job, progress: { slots, index } }));
    const total = jobs.reduce((sum, j) => sum + (Number.isFinite(j.size) ? j.size : 0), 0);
    progress.watch(() => ({ label: 'reading the logs', done: read.reduce((sum, n) => sum + n, 0), total: total > 0 ? total : null, unit: 'bytes' }));
  }
  try {
    return await runAll(jobs, parser, now, parallelMinBytes, progress?.tick.bind(progress));
  } finally {
    progress?.watch(null);
  }
}

async function runAll(jobs: readonly ScanJob[], parser: LineParser, now: Date, parallelMinBytes: number, tick: (() => void) | undefined): Promise<JobResult[]> {
  const results = new Array<JobResult>(jobs.length);
  const total = jobs.reduce((sum, j) => sum + j.size, 0);
  const workers = Math.min(THREADS - 1, jobs.length - 1);
  if (workers < 1 || total < parallelMinBytes) {
    for (const [i, job] of jobs.entries()) results[i] = await runJob(job, parser, tick);
    return results;
  }
  const order = jobs.map((_, i) => i).sort((a, b) => jobs[b]!.size - jobs[a]!.size);
  let next = 0;
  const started: Worker[] = [];
  const onWorker = (): ((job: ScanJob) => Promise<JobResult>) => {
    const worker = new Worker(WORKER, { workerData: { now: now.getTime(), tallyBound: currentTallyBound() }, resourceLimits: { maxYoungGenerationSizeMb: YOUNG_MB } });
    started.push(worker);
    // one job at a time on a worker: one reply handler, and an error or exit fails the job waiting
    let waiting: { resolve: (r: JobResult) => void; reject: (e: unknown) => void } | null = null;
    const fail = (error: unknown) => {
      waiting?.reject(error);
      waiting = null;
    };
    worker.on('message', (m: WorkerReply) => {
      const job = waiting;
      waiting = null;
      if (job === null) return;
      if ('error' in m) {
        const { message, hint, exitCode, code } = m.error;
        job.reject(exitCode === undefined ? Object.assign(new Error(message), { code }) : new SmtpguardError(message, { hint, exitCode: exitCode as ExitCode }));
      } else {
        job.resolve({ tally: tallyFromParts(m.tally), counters: m.counters, kinds: m.kinds, rest: Buffer.from(m.rest), warnings: m.warnings });
      }
    });
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`the scan worker stopped (exit code ${code})`)));
    return (job: ScanJob) =>
      new Promise<JobResult>((resolve, reject) => {
        waiting = { resolve, reject };
        worker.postMessage(job);
      });
  };
  try {
    // this thread takes the biggest job (planJobs makes a split log's first part the bigger one: a
    // worker must first load), but runs it only after each worker has been sent its first job:
    // reading a plain file here is synchronous, and nothing else runs until it is done
    const mine = order[next++]!;
    const lanes: Array<Promise<void>> = [];
    for (let w = 0; w < workers; w++) {
      const run = onWorker();
      lanes.push(
        (async () => {
          while (next < order.length) {
            const i = order[next++]!;
            results[i] = await run(jobs[i]!);
          }
        })(),
      );
    }
    lanes.push(
      (async () => {
        for (let i: number | undefined = mine; i !== undefined; i = next < order.length ? order[next++] : undefined) {
          results[i] = await runJob(jobs[i]!, parser, tick);
          await new Promise((resolve) => setImmediate(resolve)); // let the workers' replies in
        }
      })(),
    );
    await Promise.all(lanes);
  } finally {
    await Promise.all(started.map((w) => w.terminate()));
  }
  return results;
}

export type WorkerReply =
  | { tally: TallyParts; counters: ScanCounters; kinds: number[]; rest: Uint8Array; warnings: string[] }
  | { error: { message: string; code?: string; name?: string; hint?: string; exitCode?: number } };
