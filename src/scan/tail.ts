/**
 * Tails (edge): a follower reads each live log as it grows, from where the last full read
 * (collectEvents) stopped. Only complete lines are counted; the unterminated end waits in the
 * file until its newline comes. A tail does not try to be right about rotation: it notices it
 * (the name now points at another inode, or the file got shorter: copytruncate), reads what the
 * old inode still had, and says so; the follower then reads everything again from the saved
 * scan state, which knows each log by its content and counts nothing twice.
 */
import { closeSync, fstatSync, openSync, readSync, statSync, constants } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { LineParser } from '../read/parse.js';
import { LogScanner, type EventSink } from '../read/scan.js';
import type { LiveLog } from './collect.js';

/** What one read of a tail found. */
export interface TailRead {
  bytes: number;
  events: number;
  /** The log was rotated, truncated or vanished: read everything again from the state. */
  moved: boolean;
  /** What went wrong, when its source failed (journalctl died), to say. */
  problem?: string;
}

/** Bytes of the file's start a tail compares on each read. */
const HEAD_SAMPLE = 256;

/** A tail that feeds counted lines into a sink and says when its log moved. */
export interface Tail {
  readonly name: string;
  read(): TailRead;
  /** How far behind the end of its log it is (bytes). */
  behind(): { bytes: number };
  /** Events counted so far, per kind (EVENT_KINDS order). */
  readonly kinds: readonly number[];
  close(): void;
}

export class FileTail implements Tail {
  private fd: number | null = null;
  private offset: number;
  private readonly scanner: LogScanner;
  private gone = false;
  /** The file's first bytes as they were: a copytruncate that wrote as much again since is told by them. */
  private head: Buffer = Buffer.alloc(0);

  constructor(
    readonly live: LiveLog,
    parser: LineParser,
    sink: EventSink,
  ) {
    this.offset = live.offset;
    this.scanner = new LogScanner(parser, sink, 64 << 10);
    try {
      const fd = openSync(live.path, constants.O_RDONLY | constants.O_NONBLOCK);
      const s = fstatSync(fd);
      if (s.ino === live.ino && s.dev === live.dev) {
        this.fd = fd;
        this.head = this.readHead(Math.min(HEAD_SAMPLE, this.offset));
      } else {
        closeSync(fd); // rotated between the full read and now
        this.gone = true;
      }
    } catch {
      this.gone = true;
    }
  }

  get name(): string {
    return this.live.path;
  }

  get kinds(): readonly number[] {
    return this.scanner.kinds;
  }

  read(): TailRead {
    if (this.fd === null) return { bytes: 0, events: 0, moved: this.gone };
    const events = this.scanner.counters.events;
    let size: number;
    try {
      size = fstatSync(this.fd).size;
    } catch {
      return { bytes: 0, events: 0, moved: true };
    }
    // copytruncate: shorter than what was read, or as long again but with other first bytes
    if (size < this.offset || !this.readHead(this.head.length).equals(this.head)) return { bytes: 0, events: 0, moved: true };
    let bytes = 0;
    if (size > this.offset) bytes = this.readTo(size);
    if (this.head.length < HEAD_SAMPLE && this.offset > this.head.length) this.head = this.readHead(Math.min(HEAD_SAMPLE, this.offset));
    // renamed away (logrotate's create): the old inode was read to its end just above
    let moved = false;
    try {
      const now = statSync(this.live.path);
      moved = now.ino !== this.live.ino || now.dev !== this.live.dev;
    } catch {
      moved = true;
    }
    return { bytes, events: this.scanner.counters.events - events, moved };
  }

  /** Reads whole lines up to `size`; the unterminated end is read again next time. */
  private readTo(size: number): number {
    const start = this.offset;
    let position = start;
    while (position < size) {
      const space = this.scanner.space();
      const n = readSync(this.fd!, space, 0, Math.min(space.length, size - position), position);
      if (n === 0) break;
      position += n;
      this.scanner.commit(n);
    }
    const rest = this.scanner.endAtLastNewline();
    this.offset = position - rest.length;
    return this.offset - start;
  }

  private readHead(length: number): Buffer {
    const head = Buffer.alloc(length);
    const n = length === 0 ? 0 : readSync(this.fd!, head, 0, length, 0);
    return head.subarray(0, n);
  }

  behind(): { bytes: number } {
    try {
      return { bytes: Math.max(0, statSync(this.live.path).size - this.offset) };
    } catch {
      return { bytes: 0 };
    }
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

/**
 * The journal, as `journalctl --follow` prints it (read/journal.ts followJournal): whole
 * lines into the sink; when journalctl ends, the tail says its source moved.
 */
export class JournalTail implements Tail {
  private readonly scanner: LogScanner;
  private carry: Buffer = Buffer.alloc(0);
  private bytes = 0;
  private events = 0;
  private ended = false;

  constructor(
    readonly name: string,
    private readonly child: ChildProcess,
    parser: LineParser,
    sink: EventSink,
    onData: () => void,
  ) {
    this.scanner = new LogScanner(parser, sink, 64 << 10);
    child.stdout!.on('data', (chunk: Buffer) => {
      const before = this.scanner.counters.events;
      if (this.carry.length > 0) this.scanner.push(this.carry);
      this.scanner.push(chunk);
      this.carry = this.scanner.endAtLastNewline();
      this.bytes += chunk.length;
      this.events += this.scanner.counters.events - before;
      onData();
    });
    let said = '';
    child.stderr?.on('data', (chunk: Buffer) => (said = (said + chunk.toString('utf8')).slice(-500)));
    child.once('exit', (code) => {
      this.ended = true;
      this.problem = `journalctl --follow ended (exit ${code ?? 'by a signal'})${said.trim() === '' ? '' : `: ${said.trim()}`}`;
      onData();
    });
  }

  get kinds(): readonly number[] {
    return this.scanner.kinds;
  }

  /** Why it ended, when it did. */
  problem: string | null = null;

  read(): TailRead {
    const read = { bytes: this.bytes, events: this.events, moved: this.ended, ...(this.problem === null ? {} : { problem: this.problem }) };
    this.bytes = 0;
    this.events = 0;
    return read;
  }

  behind(): { bytes: number } {
    return { bytes: this.carry.length };
  }

  close(): void {
    this.child.stdout?.removeAllListeners('data');
    this.child.stderr?.removeAllListeners('data');
    this.child.removeAllListeners('exit');
    this.child.kill();
  }
}
