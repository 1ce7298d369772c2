/** The worker thread of jobs.ts: runs scan jobs it is sent, answers with serialized tallies. */
import { parentPort, workerData } from 'node:worker_threads';
import { SmtpguardError } from '../errors.js';
import { runJob, type ScanJob, type WorkerReply } from './jobs.js';
import { LineParser } from '../read/parse.js';
import { tallyToParts } from '../count/transfer.js';

const parser = new LineParser(new Date((workerData as { now: number }).now));

parentPort!.on('message', (job: ScanJob) => {
  runJob(job, parser).then(
    (result) => {
      const tally = tallyToParts(result.tally);
      const reply: WorkerReply = { tally, counters: result.counters, kinds: result.kinds, rest: result.rest, warnings: result.warnings };
      const moved = Object.values(tally).flatMap((part: unknown) => (ArrayBuffer.isView(part) ? [part.buffer as ArrayBuffer] : []));
      parentPort!.postMessage(reply, moved); // the typed arrays move (each its own buffer: toParts slices them); the rest is copied
    },
    (error: unknown) => {
      const e = error as Error & { code?: string };
      const reply: WorkerReply = {
        error: { message: e.message, code: e.code, name: e.name, ...(error instanceof SmtpguardError ? { hint: error.hint, exitCode: error.exitCode } : {}) },
      };
      parentPort!.postMessage(reply);
    },
  );
});
