/**
 * What any Node program pays to do the least of smtpguard's job on a log: read it on every core
 * (as smtpguard does: os.availableParallelism threads, each a part cut at a line start), find each
 * line with `: reject: `, take its client's address text (`from NAME[ADDR]`) and count it in a
 * hash table. No timestamp, no check of the line's shape, no minute buckets, no merge of the
 * threads' tables, no decision, no output: less than a reader that is right must do, so the time
 * it takes is a floor under smtpguard's on the same file (npm run bench prints it beside each flood).
 *
 *   node dist-bench/bench/floor.js FILE      prints {"events": N, "addresses": M}
 *
 * `addresses` adds up each thread's distinct addresses (an address in two parts counts twice),
 * keyed by a 64-bit hash of its text: a measure of work, not a count to trust. It keeps every
 * address (smtpguard's tally folds past 10 x --max-tracked), and its searches may run past a line
 * (on a flood nearly every line is a reject): one plain way to do this least, not a proven bound.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

interface Part {
  file: string;
  from: number;
  to: number;
}

interface Counted {
  events: number;
  addresses: number;
}

const REJECT = Buffer.from(': reject: ', 'latin1');
const FROM = Buffer.from(' from ', 'latin1');
const NEWLINE = 0x0a;
const CHUNK = 1 << 20;

/** Distinct 64-bit keys, counted: open addressing, (hi, lo) pairs, 0/0 free. */
class Counts {
  private keys = new Int32Array(1 << 17);
  private counts = new Int32Array(1 << 16);
  size = 0;

  add(hi: number, lo: number): void {
    if (hi === 0 && lo === 0) lo = 1;
    if (this.size * 2 >= this.counts.length) this.grow();
    const mask = this.counts.length - 1;
    let i = (lo ^ Math.imul(hi, 0x9e3779b1)) & mask;
    while (this.keys[i * 2] !== 0 || this.keys[i * 2 + 1] !== 0) {
      if (this.keys[i * 2] === hi && this.keys[i * 2 + 1] === lo) {
        this.counts[i]!++;
        return;
      }
      i = (i + 1) & mask;
    }
    this.keys[i * 2] = hi;
    this.keys[i * 2 + 1] = lo;
    this.counts[i] = 1;
    this.size++;
  }

  private grow(): void {
    const keys = this.keys;
    const counts = this.counts;
    this.keys = new Int32Array(keys.length * 2);
    this.counts = new Int32Array(counts.length * 2);
    const mask = this.counts.length - 1;
    for (let k = 0; k < counts.length; k++) {
      const hi = keys[k * 2]!;
      const lo = keys[k * 2 + 1]!;
      if (hi === 0 && lo === 0) continue;
      let i = (lo ^ Math.imul(hi, 0x9e3779b1)) & mask;
      while (this.keys[i * 2] !== 0 || this.keys[i * 2 + 1] !== 0) i = (i + 1) & mask;
      this.keys[i * 2] = hi;
      this.keys[i * 2 + 1] = lo;
      this.counts[i] = counts[k]!;
    }
  }
}

/** Counts the rejects of the lines that start in `[from, to)` of `file` (the line at `from` is the part's first only when `from` is 0 or follows a newline). */
function countPart({ file, from, to }: Part): Counted {
  const fd = openSync(file, 'r');
  const buffer = Buffer.allocUnsafeSlow(CHUNK * 2);
  const counts = new Counts();
  let events = 0;
  let held = 0; // bytes of an unfinished line kept at the buffer's start
  let at = from; // file offset of buffer[held]
  let skipFirst = from > 0;
  try {
    for (;;) {
      if (held > CHUNK) throw new Error(`floor: a line longer than ${CHUNK} bytes in ${file}`);
      const got = readSync(fd, buffer, held, CHUNK, at);
      const length = held + got;
      const base = at - held; // file offset of buffer[0]
      let line = 0;
      if (skipFirst) {
        // a part's first line belongs to the part before it unless it starts right at `from`
        const before = Buffer.alloc(1);
        readSync(fd, before, 0, 1, from - 1);
        if (before[0] !== NEWLINE) {
          const nl = buffer.indexOf(NEWLINE, 0);
          if (nl === -1 || nl >= length) return { events, addresses: counts.size }; // the part is inside the file's last line
          line = nl + 1;
        }
        skipFirst = false;
      }
      for (;;) {
        if (base + line >= to) return { events, addresses: counts.size };
        let end = buffer.indexOf(NEWLINE, line);
        if (end === -1 || end >= length) {
          if (got !== 0 || line >= length) break;
          end = length; // the file's last line, without a newline
        }
        const reject = buffer.indexOf(REJECT, line);
        if (reject !== -1 && reject < end) {
          const name = buffer.indexOf(FROM, reject);
          const open = name === -1 ? -1 : buffer.indexOf(0x5b, name);
          const close = open === -1 ? -1 : buffer.indexOf(0x5d, open);
          if (close !== -1 && close < end) {
            let hi = 0x811c9dc5;
            let lo = 0x01000193;
            for (let k = open + 1; k < close; k++) {
              hi = Math.imul(hi ^ buffer[k]!, 0x01000193);
              lo = Math.imul(lo ^ buffer[k]!, 0x5bd1e995);
            }
            counts.add(hi, lo);
            events++;
          }
        }
        line = end + 1;
      }
      if (got === 0) return { events, addresses: counts.size };
      buffer.copy(buffer, 0, line, length);
      held = length - line;
      at = base + length;
    }
  } finally {
    closeSync(fd);
  }
}

async function main(file: string): Promise<void> {
  const fd = openSync(file, 'r');
  const size = fstatSync(fd).size;
  closeSync(fd);
  const threads = Math.max(1, availableParallelism());
  const cuts = Array.from({ length: threads + 1 }, (_, i) => Math.floor((size * i) / threads));
  const parts = cuts.slice(0, -1).map((from, i) => ({ file, from, to: cuts[i + 1]! }));
  const others = parts.slice(1).map(
    (part) =>
      new Promise<Counted>((resolve, reject) => {
        const worker = new Worker(new URL(import.meta.url), { workerData: part });
        worker.once('message', resolve);
        worker.once('error', reject);
      }),
  );
  const mine = countPart(parts[0]!);
  const all = [mine, ...(await Promise.all(others))];
  console.log(JSON.stringify({ events: all.reduce((s, c) => s + c.events, 0), addresses: all.reduce((s, c) => s + c.addresses, 0) }));
  process.exit(0);
}

if (isMainThread) {
  const file = process.argv[2];
  if (file === undefined) {
    console.error('usage: node dist-bench/bench/floor.js FILE');
    process.exit(2);
  }
  await main(file);
} else {
  parentPort!.postMessage(countPart(workerData as Part));
}
