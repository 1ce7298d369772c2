/** The worker thread of jobs.ts: runs scan jobs it is sent, answers with serialized tallies. */
import { parentPort, workerData } from 'node:worker_threads';
import { SmtpguardError } from '../errors.js';
import { runJob, type ScanJob, type WorkerReply } from './jobs.js';
import { LineParser } from '../read/parse.js';
import { partsBuffers, tallyToParts } from '../count/transfer.js';
import { setTallyBound, type TallyBound } from '../count/tally.js';

const data = workerData as { now: number; tallyBound: TallyBound };
const parser = new LineParser(new Date(data.now));
setTallyBound(data.tallyBound);

parentPort!.on('message', (job: ScanJob) => {
  runJob(job, parser).then(
    (result) => {
      const tally = tallyToParts(result.tally);
      const reply: WorkerReply = { tally, counters: result.counters, kinds: result.kinds, rest: result.rest, warnings: result.warnings };
      parentPort!.postMessage(reply, partsBuffers(tally)); // the typed arrays move (each its own buffer), not copied: this thread is done with the tally; the rest is copied
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
