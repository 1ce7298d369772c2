/**
 * The parser's fast path: the two line shapes a flood is made of (an smtpd reject, a SASL
 * failure), read straight from the log's bytes, with an RFC 3339 stamp (rsyslog on Debian 12).
 * No string for the line, no regex, no event object: a flood of a million addresses is a
 * million and a half such lines.
 *
 * It answers only when it is sure parse.ts would answer the same; any other line (another
 * shape, another stamp form, anything unusual in these) is left to parse.ts, which stays the
 * definition of what a line means. test/read/parse-bytes.test.ts holds the two to each other.
 * Only the bytes from `start` to `end` are read.
 */
import { addressWords, canonicalAddressWords, normaliseAddress } from '../address.js';
import { KIND_INDEX } from './kinds.js';
import { bytesAt, indexOfBytes, isDigit, latin1Bytes } from './bytes.js';
import { MAX_USERNAME, smtpdRejectKind } from './parse.js';

/** What the fast path read from a line: one object, filled again for each line. */
export interface ByteEvent {
  /** The event's kind (KIND_INDEX). */
  kind: number;
  /** The client address as four words (address.ts addressWords). */
  readonly words: Int32Array;
  /** Milliseconds since the epoch. */
  time: number;
  /** recipientReject, messageReject: Postfix logged the client as `unknown[ADDR]`. */
  unnamed: boolean;
  /** saslFailure: the `sasl_username=` it tried, if any. */
  user: string | undefined;
}

export function newByteEvent(): ByteEvent {
  return { kind: 0, words: new Int32Array(4), time: 0, unnamed: false, user: undefined };
}

/** The start of the last minute converted (its text: `YYYY-MM-DDTHH:MM` and zone, as numbers). */
export class StampMemo {
  minute = -1;
  zone = 0;
  base = 0;
}

const SASL_FAILURE = KIND_INDEX.saslFailure;

const SPACE = 0x20;
const COLON = 0x3a;
const SLASH = 0x2f;
const OPEN = 0x5b; // [
const CLOSE = 0x5d; // ]

const POSTFIX = latin1Bytes(' postfix');
const SMTPD = latin1Bytes('smtpd');
const WARNING = latin1Bytes('warning: ');
const SASL = latin1Bytes(': SASL ');
const AUTH_FAILED = latin1Bytes(' authentication failed:');
const AUTH_SERVER_LOST = latin1Bytes(' Connection lost to authentication server');
const REJECT_TEXT = latin1Bytes(': reject: ');
const FROM = latin1Bytes(' from ');
const UNKNOWN = latin1Bytes('unknown[');
const FAILED_USER = latin1Bytes(', sasl_username=');
/** The stages whose rejects may be about a recipient (parse.ts RECIPIENT_STAGES). */
const RECIPIENT_STAGES = ['RCPT', 'VRFY'].map(latin1Bytes);

/** `\s` of a regex, for a latin1 byte: tab to CR, space, and NBSP. */
const isSpace = (c: number): boolean => c === SPACE || (c >= 9 && c <= 13) || c === 0xa0;
const isAlnum = (c: number): boolean => isDigit(c) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
/** A byte of a tag part: `[^\s/[\]:]`. */
const isTagByte = (c: number): boolean => !isSpace(c) && c !== SLASH && c !== OPEN && c !== CLOSE && c !== COLON;
/** A byte of a client's name or address: `[^\s[\]]`. */
const isClientByte = (c: number): boolean => !isSpace(c) && c !== OPEN && c !== CLOSE;

const digits2 = (b: Buffer, at: number): number => (isDigit(b[at]!) && isDigit(b[at + 1]!) ? (b[at]! - 48) * 10 + b[at + 1]! - 48 : -1);

/** Node's own latin1 decoder (what Buffer#toString('latin1') calls, without its argument checks). */
interface Latin1 extends Buffer {
  latin1Slice(from: number, to: number): string;
}

const latin1 = (b: Buffer, from: number, to: number): string => (b as Latin1).latin1Slice(from, to);

/**
 * Reads line `b[start..end)` (no line terminator) into `out` and returns true when it is a
 * reject or a SASL failure as parse.ts reads it; false: ask parse.ts (it may still be an event).
 */
export function readLineBytes(b: Buffer, start: number, end: number, out: ByteEvent, memo: StampMemo): boolean {
  // YYYY-MM-DDTHH:MM:SS
  if (end - start < 40) return false;
  const century = digits2(b, start);
  const years = digits2(b, start + 2);
  const month = digits2(b, start + 5);
  const day = digits2(b, start + 8);
  const hour = digits2(b, start + 11);
  const minute = digits2(b, start + 14);
  const second = digits2(b, start + 17);
  // a minute parse.ts would not take from its memo (hour 24, second 60) is its own to judge
  if (century < 0 || years < 0 || month < 0 || day < 0 || hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59) return false;
  if (b[start + 4] !== 0x2d || b[start + 7] !== 0x2d || b[start + 10] !== 0x54 || b[start + 13] !== COLON || b[start + 16] !== COLON) return false;
  let p = start + 19;
  // .FRACTION: 1-9 digits, the first three are the milliseconds
  let ms = 0;
  if (p < end && b[p] === 0x2e) {
    let n = 0;
    while (p + 1 + n < end && isDigit(b[p + 1 + n]!)) {
      if (n < 3) ms = ms * 10 + b[p + 1 + n]! - 48;
      n++;
    }
    if (n === 0 || n > 9) return false;
    for (let k = n; k < 3; k++) ms *= 10;
    p += 1 + n;
  }
  // Z, or +HH:MM / +HHMM
  let zone: number;
  const zoneAt = p;
  if (p + 6 >= end) return false;
  if (b[p] === 0x5a) {
    zone = 0;
    p++;
  } else if (b[p] === 0x2b || b[p] === 0x2d) {
    const hh = digits2(b, p + 1);
    const colon = b[p + 3] === COLON ? 1 : 0;
    const mm = digits2(b, p + 3 + colon);
    if (hh < 0 || mm < 0) return false;
    zone = (b[p] === 0x2b ? 1 : -1) * (hh * 100 + mm) + (b[p] === 0x2b ? 10_000 : -10_000); // +00:00 and -00:00 differ as text only
    p += 5 + colon;
  } else return false;
  if (b[p] !== SPACE) return false;
  // HOST postfix[-INSTANCE][/PART...]/smtpd[[PID]]: 
  let q = p + 1;
  while (q < end && !isSpace(b[q]!)) q++;
  if (q === p + 1 || !bytesAt(b, q, end, POSTFIX)) return false;
  q += POSTFIX.length;
  while (q < end && isTagByte(b[q]!)) q++;
  let at = -1;
  while (at === -1) {
    if (q >= end || b[q] !== SLASH) return false;
    const part = ++q;
    while (q < end && isTagByte(b[q]!)) q++;
    if (q === part) return false;
    if (q - part !== SMTPD.length || !bytesAt(b, part, end, SMTPD)) continue; // postscreen and the rest: parse.ts
    let r = q;
    if (r < end && b[r] === OPEN) {
      r++;
      const digits = r;
      while (r < end && isDigit(b[r]!)) r++;
      if (r === digits || r >= end || b[r] !== CLOSE) return false;
      r++;
    }
    if (r + 1 >= end || b[r] !== COLON || b[r + 1] !== SPACE) continue;
    at = r + 2;
  }
  const time = readMinute(b, start, zoneAt, p, century * 100 + years, month, day, hour, minute, zone, memo);
  if (time === null) return false;
  out.time = time + second * 1000 + ms;
  return bytesAt(b, at, end, WARNING) ? readSaslFailure(b, at, end, out) : readReject(b, at, end, out);
}

/** The start of the stamp's minute, as parse.ts's Date.parse gives it; null: ask parse.ts. */
function readMinute(b: Buffer, start: number, zoneAt: number, zoneEnd: number, year: number, month: number, day: number, hour: number, minute: number, zone: number, memo: StampMemo): number | null {
  const key = (((year * 100 + month) * 100 + day) * 100 + hour) * 100 + minute;
  if (key === memo.minute && zone === memo.zone) return memo.base;
  const zoneText = latin1(b, zoneAt, zoneEnd);
  const base = Date.parse(`${latin1(b, start, start + 17)}00${zoneText === 'Z' ? 'Z' : `${zoneText.slice(0, 3)}:${zoneText.slice(-2)}`}`);
  if (Number.isNaN(base)) return null;
  memo.minute = key;
  memo.zone = zone;
  memo.base = base;
  return base;
}

/** NAME[ADDR] or NAME[ADDR]:PORT at `at`: where it ends, with the address in `out.words`; -1: not one (or not an address). */
function readClient(b: Buffer, at: number, end: number, out: ByteEvent): number {
  let q = at;
  while (q < end && isClientByte(b[q]!)) q++;
  if (q === at || q >= end || b[q] !== OPEN) return -1;
  const from = ++q;
  while (q < end && isClientByte(b[q]!)) q++;
  if (q === from || q >= end || b[q] !== CLOSE) return -1;
  if (!canonicalAddressWords(b, from, q, out.words) && !textAddress(b, from, q, out.words)) return -1;
  q++;
  if (q + 1 < end && b[q] === COLON && isDigit(b[q + 1]!)) {
    q++;
    while (q < end && isDigit(b[q]!)) q++;
  }
  return q;
}

/** The client address `b[from..to)` in a form other than canonical, into `words` as parse.ts normalises it; false: not an address. */
function textAddress(b: Buffer, from: number, to: number, words: Int32Array): boolean {
  const address = normaliseAddress(latin1(b, from, to));
  return address !== null && addressWords(address, words, 0);
}

/** `warning: NAME[ADDR]: SASL MECH authentication failed: ...` */
function readSaslFailure(b: Buffer, at: number, end: number, out: ByteEvent): boolean {
  let q = readClient(b, at + WARNING.length, end, out);
  if (q === -1 || !bytesAt(b, q, end, SASL)) return false;
  q += SASL.length;
  const mechanism = q;
  while (q < end && (isAlnum(b[q]!) || b[q] === 0x5f || b[q] === 0x2e || b[q] === 0x2d)) q++;
  if (q === mechanism || !bytesAt(b, q, end, AUTH_FAILED)) return false;
  q += AUTH_FAILED.length;
  if (bytesAt(b, q, end, AUTH_SERVER_LOST)) return false;
  const user = indexOfBytes(b, q, end, FAILED_USER);
  out.kind = SASL_FAILURE;
  out.unnamed = false;
  const name = user === -1 ? '' : latin1(b, user + FAILED_USER.length, Math.min(end, user + FAILED_USER.length + MAX_USERNAME));
  out.user = name === '' ? undefined : name;
  return true;
}

/** Whether the STAGE `b[from..to)` is one whose rejects may be about a recipient. */
function isRecipientStage(b: Buffer, from: number, to: number): boolean {
  for (const name of RECIPIENT_STAGES) if (to - from === name.length && bytesAt(b, from, to, name)) return true;
  return false;
}

/** `QUEUEID: reject: STAGE from NAME[ADDR]: CODE ...` (NOQUEUE too; milter-reject is parse.ts's) */
function readReject(b: Buffer, at: number, end: number, out: ByteEvent): boolean {
  let q = at;
  while (q < end && isAlnum(b[q]!)) q++;
  if (q === at || !bytesAt(b, q, end, REJECT_TEXT)) return false;
  q += REJECT_TEXT.length;
  const stage = q;
  if (q >= end || !(b[q]! >= 65 && b[q]! <= 90)) return false;
  while (q < end && ((b[q]! >= 65 && b[q]! <= 90) || b[q] === 0x2d)) q++;
  const stageEnd = q;
  if (!bytesAt(b, q, end, FROM)) return false;
  const name = q + FROM.length;
  q = readClient(b, name, end, out);
  if (q === -1 || q + 2 >= end || b[q] !== COLON || b[q + 1] !== SPACE || (b[q + 2] !== 0x34 && b[q + 2] !== 0x35)) return false;
  const kind = smtpdRejectKind(false, b[q + 2] === 0x35, isRecipientStage(b, stage, stageEnd), b, q + 3, end);
  out.kind = KIND_INDEX[kind];
  out.unnamed = (kind === 'recipientReject' || kind === 'messageReject') && bytesAt(b, name, end, UNKNOWN);
  out.user = undefined;
  return true;
}
