/**
 * The hot path: mail-log bytes in, events out, without looking at most lines.
 *
 * Bytes arrive in large blocks. In each block, a few short byte patterns that
 * every event line contains are searched with Buffer#indexOf (memchr speed for
 * patterns of up to 7 bytes whose first byte is rare in mail logs); only the lines
 * around a hit are decoded and handed to the parser. Newlines are counted with
 * indexOf too. A flood, where most lines are events, is read line by line instead
 * (the patterns would find nearly every line, at many passes over the block), and
 * its rejects and SASL failures are read in place (parse-bytes.ts); ordinary text
 * goes to the parser alone, which is as fast there and kept less memory.
 * Memory: one block buffer plus the tally, whatever the log size.
 * Pure: the caller feeds bytes (from a file, a gunzip stream, stdin, a test).
 */
import type { LineParser, MailEvent } from './parse.js';
import { EVENT_KINDS, KIND_INDEX } from './kinds.js';
import { newByteEvent, readLineBytes, StampMemo, type ByteEvent } from './parse-bytes.js';

/** Where the scanner puts each event: a Tally (count/), or a filter for one address (explain). */
export interface EventSink {
  add(event: MailEvent): void;
  /** When present, the events the parser's fast path reads come here instead (parse-bytes.ts; the same counts). */
  addBytes?(event: ByteEvent): void;
  /** When present, each event comes here too with its line and line number (1-based): slower, for explain only. */
  line?(event: MailEvent, text: string, line: number): void;
}

/**
 * Every event shape in parse.ts contains one of these. Keep each at most 7 bytes
 * and starting with a byte that is rare in mail logs: longer patterns switch Node to
 * a Boyer-Moore search that is several times slower on this text.
 */
const PATTERNS: readonly Buffer[] = [
  'warning', // warning: NAME[ADDR]: SASL ... authentication failed / rate limit exceeded
  'ject: ', // reject: / milter-reject: (smtpd and postscreen)
  'client=', // QUEUEID: client=NAME[ADDR][, sasl_method=...] (mail accepted, a login)
  'auth=', // disconnect from NAME[ADDR] ... auth=0/3 ...
  // smtpd's session anomalies; each pattern starts with a byte rarer in mail logs than its
  // neighbours' ('y' 0.4%, 'u' 0.9%, 'r' and 'l' under 2% of the bytes of bench/data/plain-1m.log)
  'lost co', // lost connection after CMD (AUTH: authLost)
  'y error', // too many errors after CMD (AUTH: authErrors)
  'ut afte', // timeout after CMD
  'roper c', // improper command pipelining after CMD
  'PREGRE', // postscreen PREGREET
  'DNSBL ', // postscreen DNSBL rank
  'HANGUP ', // postscreen HANGUP
  'PIPELIN', // postscreen COMMAND PIPELINING
  'NON-SMT', // postscreen NON-SMTP COMMAND
  'BARE NE', // postscreen BARE NEWLINE
  'LIMIT ', // postscreen COMMAND TIME|COUNT|LENGTH LIMIT
].map((pattern) => Buffer.from(pattern, 'latin1'));

const NL = 0x0a;
const CR = 0x0d;
/**
 * Past this share of a block's lines being events (a flood), the next block is read line by line:
 * the patterns, each searched through the whole block, would find nearly every line anyway.
 */
const DENSE = 0.3;
/**
 * The block each scanner reads into. 4 MiB blocks made the rotated set's run peak at 148-158 MiB,
 * 1 MiB blocks at 122-132 MiB (what a gzip log's thread held besides its block: the C allocator
 * kept more of it), as fast or faster (the pattern searches pass over a block 15 times).
 */
const BLOCK_BYTES = 1 << 20;
/** A line longer than this cannot be a Postfix line (syslog limits them to kilobytes); it is skipped. */
export const MAX_LINE_BYTES = 64 << 20;

export interface ScanCounters {
  bytes: number;
  lines: number;
  events: number;
  /** Lines skipped for being longer than MAX_LINE_BYTES. */
  oversizedLines: number;
}

/**
 * Feeds one log stream into a Tally (any EventSink). Use `push()` for chunks from a stream, or
 * `space()` + `commit()` to read straight into the scanner's buffer; then `end()`.
 */
export class LogScanner {
  readonly counters: ScanCounters = { bytes: 0, lines: 0, events: 0, oversizedLines: 0 };
  /** Events read, per kind (EVENT_KINDS order), counted as the tally counts them: for the metrics. */
  readonly kinds: number[] = new Array<number>(EVENT_KINDS.length).fill(0);
  private buffer: Buffer;
  /** Bytes held in `buffer`: an unfinished line carried over, then new data. */
  private held = 0;
  /** True while discarding the rest of an oversized line. */
  private skipping = false;
  /** The last block was mostly events: read every line (DENSE). */
  private dense = false;
  private readonly byteEvent = newByteEvent();
  private readonly stamps = new StampMemo();

  constructor(
    private readonly parser: LineParser,
    private readonly tally: EventSink,
    blockBytes = BLOCK_BYTES,
  ) {
    this.buffer = Buffer.allocUnsafe(blockBytes);
  }

  /** The free part of the buffer, to read into; call `commit(n)` after. */
  space(): Buffer {
    if (this.held === this.buffer.length) this.makeRoom();
    return this.buffer.subarray(this.held);
  }

  commit(bytes: number): void {
    this.held += bytes;
    this.counters.bytes += bytes;
    if (this.held === this.buffer.length) this.scanHeld(false);
  }

  push(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length) {
      const room = this.space();
      const n = chunk.copy(room, 0, offset);
      offset += n;
      this.commit(n);
    }
  }

  /** Scans what is left, including a last line without a newline. */
  end(): ScanCounters {
    this.scanHeld(true);
    return this.counters;
  }

  /**
   * Scans every complete line and returns the unterminated rest, uncounted: the end
   * of a live log may be a line still being written, which the next run reads whole.
   */
  endAtLastNewline(): Buffer {
    this.scanHeld(false);
    const rest = this.skipping ? Buffer.alloc(0) : Buffer.from(this.buffer.subarray(0, this.held));
    this.counters.bytes -= this.held;
    this.held = 0;
    return rest;
  }

  /** Scans every complete line held; keeps the unfinished last one at the front. */
  private scanHeld(final: boolean): void {
    const data = this.buffer.subarray(0, this.held);
    let start = 0;
    if (this.skipping) {
      const nl = data.indexOf(NL);
      if (nl === -1) {
        this.held = 0; // still inside the oversized line
        if (final) this.finishSkip();
        return;
      }
      this.finishSkip();
      start = nl + 1;
    }
    const lastNl = data.lastIndexOf(NL);
    const end = final ? data.length : lastNl + 1;
    if (end > start) this.scanLines(data, start, end, final && lastNl + 1 < data.length);
    const rest = data.length - Math.max(end, start);
    if (rest > 0) this.buffer.copyWithin(0, data.length - rest, data.length);
    this.held = rest;
  }

  private finishSkip(): void {
    this.skipping = false;
    this.counters.lines++;
    this.counters.oversizedLines++;
  }

  /** No newline in a full buffer: grow it, or give up on this line. */
  private makeRoom(): void {
    if (this.buffer.length * 2 <= MAX_LINE_BYTES) {
      const bigger = Buffer.allocUnsafe(this.buffer.length * 2);
      this.buffer.copy(bigger, 0, 0, this.held);
      this.buffer = bigger;
    } else {
      this.skipping = true;
      this.held = 0;
    }
  }

  /** [start, end) holds whole lines (the last one may lack its newline when `unterminated`). */
  private scanLines(data: Buffer, start: number, end: number, unterminated: boolean): void {
    const block = data.subarray(start, end);
    let lines = unterminated ? 1 : 0;
    for (let i = block.indexOf(NL); i !== -1; i = block.indexOf(NL, i + 1)) lines++;
    const before = this.counters.lines;
    this.counters.lines += lines;
    if (this.tally.line !== undefined) {
      this.scanNumbered(block, before);
      return;
    }

    const events = this.counters.events;
    if (this.dense) {
      let lineStart = 0;
      for (let i = block.indexOf(NL); lineStart < block.length; i = block.indexOf(NL, lineStart)) {
        const lineEnd = i === -1 ? block.length : i;
        this.readLine(block, lineStart, lineEnd, true);
        lineStart = lineEnd + 1;
      }
    } else {
      // ordinary text: the parser alone (the fast path cost ordinary logs 4% in time and 4.5 MiB at the peak)
      let previous = -1;
      for (const lineStart of findCandidateLines(block)) {
        if (lineStart === previous) continue;
        previous = lineStart;
        const lineEnd = block.indexOf(NL, lineStart);
        this.readLine(block, lineStart, lineEnd === -1 ? block.length : lineEnd, false);
      }
    }
    if (lines >= 1000) this.dense = this.counters.events - events > lines * DENSE;
  }

  /** The line block[start..end), without its newline: counted when it is an event; `fast`: try the fast path first (a flood). */
  private readLine(block: Buffer, start: number, end: number, fast: boolean): void {
    if (end > start && block[end - 1] === CR) end--;
    if (fast && this.tally.addBytes !== undefined && readLineBytes(block, start, end, this.byteEvent, this.stamps)) {
      this.counters.events++;
      this.tally.addBytes(this.byteEvent);
      this.kinds[this.byteEvent.kind]!++;
      return;
    }
    const event = this.parser.parse(block.toString('latin1', start, end));
    if (event !== null) this.count(event);
  }

  /** scanLines for a sink that wants each event's line and its number (`before`: lines ahead of this block). */
  private scanNumbered(block: Buffer, before: number): void {
    let line = before + 1;
    let at = 0;
    let previous = -1;
    for (const lineStart of findCandidateLines(block)) {
      if (lineStart === previous) continue;
      previous = lineStart;
      for (let i = block.indexOf(NL, at); i !== -1 && i < lineStart; i = block.indexOf(NL, i + 1)) line++;
      at = lineStart;
      let lineEnd = block.indexOf(NL, lineStart);
      if (lineEnd === -1) lineEnd = block.length;
      if (lineEnd > lineStart && block[lineEnd - 1] === CR) lineEnd--;
      const text = block.toString('latin1', lineStart, lineEnd);
      const event = this.parser.parse(text);
      if (event === null) continue;
      this.count(event);
      this.tally.line!(event, text, line);
    }
  }

  private count(event: MailEvent): void {
    this.counters.events++;
    this.tally.add(event);
    this.kinds[KIND_INDEX[event.kind]]! += event.count ?? 1;
  }
}

/** Start offsets of the lines holding a pattern, sorted (with repeats when several patterns hit one line). */
function findCandidateLines(block: Buffer): Float64Array | number[] {
  const starts: number[] = [];
  for (const pattern of PATTERNS) {
    let at = block.indexOf(pattern);
    while (at !== -1) {
      starts.push(block.lastIndexOf(NL, at) + 1);
      // go on after this line: a line full of patterns costs one hit, not one per pattern
      const lineEnd = block.indexOf(NL, at + pattern.length);
      at = lineEnd === -1 ? -1 : block.indexOf(pattern, lineEnd + 1);
    }
  }
  return starts.length < 2 ? starts : Float64Array.from(starts).sort();
}
