/**
 * Parse: one mail-log line -> at most one MailEvent. Pure: no I/O, no clock
 * (the year of year-less timestamps comes from `now`, local time from the TZ the
 * process runs in, as syslog wrote it).
 *
 * Safety rule (../shared/FIELD-NOTES.md §2): the client address is taken only from
 * the fixed client field of a known line shape, right after the syslog tag. Text
 * the client chooses (SASL username, helo=, from=, to=, command text) comes after
 * that field and is never searched for an address.
 */
import { normaliseAddress } from '../address.js';
import type { EventKind } from './kinds.js';
import { classifyRejectBytes } from './reject-classes.js';
import { bytesAt, isDigit, latin1Bytes } from './bytes.js';

export interface MailEvent {
  kind: EventKind;
  /** Normalised client address: IPv4 dotted quad, or IPv6 in RFC 5952 form. */
  address: string;
  /** Milliseconds since the epoch. */
  time: number;
  /**
   * saslFailure: the `sasl_username=` the client tried (Postfix >= 3.7.8), saslSuccess: the
   * user it logged in as. Client-chosen text: only ever compared as a string, at most
   * MAX_USERNAME characters.
   */
  user?: string;
  /** recipientReject, messageReject: Postfix logged the client as `unknown[ADDR]` (no forward-confirmed name). */
  unnamed?: boolean;
  /** How many events the line stands for (authDisconnect: the failed AUTH commands); 1 when absent. */
  count?: number;
}

/** Longer usernames are cut to this many characters (a username is only compared, never shown whole). */
export const MAX_USERNAME = 128;

// ---------------------------------------------------------------------------
// Line header: TIMESTAMP HOST postfix[-inst][/service...]/(smtpd|postscreen)[PID]: MESSAGE
// Three timestamp forms: RFC 3339 (rsyslog on Debian 12, journalctl short-iso),
// "Nov  2 09:05:07" (traditional syslog) and "Nov 02 09:05:07" (Postfix maillog_file);
// some syslog daemons and relays write "Nov 2 09:05:07" (one space, one digit).
const HEADER =
  /^(?:(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:?\d\d)|((?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (?:[ 0-3]\d|[1-9]) \d\d:\d\d:\d\d)) [^\s]+ postfix[^\s/[\]:]*(?:\/[^\s/[\]:]+)*?\/(smtpd|postscreen)(?:\[\d+\])?: /;

// Client fields. NAME never contains '[' or ']' or spaces; ADDR never contains ']' or spaces.
const CLIENT = String.raw`([^\s[\]]+)\[([^\s[\]]+)\](?::\d+)?`; // smtpd: NAME[ADDR] or NAME[ADDR]:PORT
const PS_CLIENT = String.raw`\[([^\s[\]]+)\]:\d+`; // postscreen: [ADDR]:PORT

const sticky = (source: string) => new RegExp(source, 'y');

// smtpd (Postfix 3.7 formats; see README "What it counts"). Lines logged by smtpd
// at the end of a session may carry a queue ID (or NOQUEUE) first in newer versions.
const QUEUE_ID = String.raw`(?:NOQUEUE|[0-9A-Za-z]+)`;
const SASL_FAILURE = sticky(String.raw`warning: ${CLIENT}: SASL [A-Za-z0-9_.-]+ authentication failed:`);
const RATE_LIMIT = sticky(
  String.raw`warning: [A-Za-z][A-Za-z ]* (?:rate|concurrency) limit exceeded: \d+ from ${CLIENT} for service `,
);
const SMTPD_REJECT = sticky(String.raw`${QUEUE_ID}: (milter-)?reject: ([A-Z][A-Z-]*) from ${CLIENT}: ([45])`);
const SASL_SUCCESS = sticky(String.raw`${QUEUE_ID}: client=${CLIENT}, sasl_method=`);
// a queue file was created for the client's mail (no login): `QUEUEID: client=NAME[ADDR]`,
// maybe followed by `, orig_queue_id=..., orig_client=...` (XCLIENT/proxy)
const ACCEPTED = sticky(String.raw`[0-9A-Za-z]+: client=${CLIENT}(?:$|, (?!sasl_method=))`);
const RECIPIENT_STAGES = new Set(['RCPT', 'VRFY']);
// the end of a session Postfix did not expect (smtpd.c, "%s after %s from %s"): the client went away,
// timed out, or reached smtpd_hard_error_limit; after DATA/BDAT with the bytes read. AUTH has kinds of its own.
const SESSION_END = sticky(String.raw`(?:${QUEUE_ID}: )?(lost connection|timeout|too many errors) after ([A-Z][A-Z-]*)(?: \(\d+ bytes\))? from ${CLIENT}(?:$|\s)`);
const SESSION_END_KINDS: Readonly<Record<string, readonly [EventKind, EventKind]>> = {
  'lost connection': ['authLost', 'lostConnection'],
  timeout: ['timeout', 'timeout'],
  'too many errors': ['authErrors', 'tooManyErrors'],
};
// smtpd.c: the client sent commands before the reply to the last one (logged once a session)
const ILL_PIPELINING = sticky(String.raw`improper command pipelining after [A-Z][A-Z-]* from ${CLIENT}: `);
// smtpd_peer.c: the client's reverse name does not resolve back to it; Postfix's own text, with the bare address
const HOSTNAME_MISMATCH = sticky(String.raw`warning: hostname [^\s[\]]+ does not resolve to address ([0-9A-Fa-f:.]+)(?:$|: )`);
// junk on an smtpd port (port scanners speaking HTTP): `warning: non-SMTP command from NAME[ADDR]: GET / HTTP/1.1`
const NON_SMTP = sticky(String.raw`warning: non-SMTP command from ${CLIENT}: `);
// the session summary (Postfix >= 3.0): `disconnect from NAME[ADDR] ehlo=1 auth=0/3 quit=1 commands=2/5`;
// after the client field only Postfix's own "command=ok[/total]" counters follow
const DISCONNECT = sticky(String.raw`disconnect from ${CLIENT}((?: [a-z]+=\d+(?:/\d+)?)*)$`);
const AUTH_COUNTS = / auth=(\d{1,6})\/(\d{1,6})(?: |$)/; // Postfix's counters; a forged huge one gives nothing

// postscreen: the client is [ADDR]:PORT, no name.
const PS_REJECT = sticky(String.raw`NOQUEUE: reject: [A-Z][A-Z-]* from ${PS_CLIENT}: ([45])`);
const PS_SHAPES: ReadonlyArray<readonly [RegExp, EventKind]> = [
  [sticky(String.raw`PREGREET \d+ after [\d.]+ from ${PS_CLIENT}: `), 'pregreet'],
  [sticky(String.raw`DNSBL rank -?\d+ for ${PS_CLIENT}$`), 'dnsbl'],
  [sticky(String.raw`HANGUP after [\d.]+ from ${PS_CLIENT} in `), 'hangup'],
  [sticky(String.raw`COMMAND PIPELINING from ${PS_CLIENT} after `), 'pipelining'],
  [sticky(String.raw`NON-SMTP COMMAND from ${PS_CLIENT}(?:$| )`), 'nonSmtp'],
  [sticky(String.raw`BARE NEWLINE from ${PS_CLIENT}(?:$| )`), 'bareNewline'],
  [sticky(String.raw`COMMAND (?:TIME|COUNT|LENGTH) LIMIT from ${PS_CLIENT}(?:$| )`), 'commandLimit'],
  // the client's own connection count (postscreen_client_connection_count_limit)
  [sticky(String.raw`NOQUEUE: reject: CONNECT from ${PS_CLIENT}: too many connections$`), 'rateLimit'],
];

/** A SASL failure with this reason is the server's own auth backend failing, not a client. */
const AUTH_SERVER_LOST = ' Connection lost to authentication server';

const MONTHS: Readonly<Record<string, number>> = {
  Jan: 0, Feb: 1, Mar: 2, Apr: 3, May: 4, Jun: 5, Jul: 6, Aug: 7, Sep: 8, Oct: 9, Nov: 10, Dec: 11,
};

/**
 * A parser for one scan: holds `now` (for year-less timestamps) and a cache of the
 * timestamps already converted, which keeps the hot path short.
 */
export class LineParser {
  private now: number;
  private nowYear: number;
  /** Year-less stamps already converted (they repeat: many lines a second). */
  private readonly stampCache = new Map<string, number>();
  /** The last RFC 3339 second converted. */
  private lastSeconds = '';
  private lastZone = '';
  private lastBase = 0;
  /** The minute of the last RFC 3339 stamp Date.parse converted, and its start. */
  private lastMinute = '';
  private lastMinuteBase = 0;

  constructor(now: Date) {
    this.now = now.getTime();
    this.nowYear = now.getFullYear();
  }

  /** A follower's parser reads lines written after it was made: `now` moves on (a stamp after it is last year's). */
  moveTo(now: Date): void {
    if (now.getTime() <= this.now) return;
    this.now = now.getTime();
    this.nowYear = now.getFullYear();
    this.stampCache.clear();
  }

  /** The event a log line records, or null. `line` has no line terminator (a trailing CR is ignored). */
  parse(line: string): MailEvent | null {
    const header = HEADER.exec(line);
    if (header === null) return null;
    const at = header[0].length;
    const found = header[5] === 'smtpd' ? matchSmtpd(line, at) : matchPostscreen(line, at);
    if (found === null) return null;
    const address = normaliseAddress(found.rawAddress);
    if (address === null) return null;
    const time = this.parseStamp(header);
    if (time === null) return null;
    const event: MailEvent = { kind: found.kind, address, time };
    if (found.user !== undefined) event.user = found.user;
    if (found.unnamed !== undefined) event.unnamed = found.unnamed;
    if (found.count !== undefined) event.count = found.count;
    return event;
  }

  private parseStamp(header: RegExpExecArray): number | null {
    const traditional = header[4];
    if (traditional !== undefined) return this.yearlessStamp(traditional);
    const seconds = header[1]!;
    const zone = header[3]!;
    let base: number;
    const ss = (seconds.charCodeAt(17) - 48) * 10 + seconds.charCodeAt(18) - 48;
    if (seconds === this.lastSeconds && zone === this.lastZone) {
      base = this.lastBase;
    } else if (ss <= 59 && zone === this.lastZone && seconds.startsWith(this.lastMinute) && this.lastMinute !== '') {
      // the same minute as the last stamp converted: only the seconds differ
      base = this.lastMinuteBase + ss * 1000;
    } else {
      base = Date.parse(`${seconds}${zone === 'Z' ? 'Z' : `${zone.slice(0, 3)}:${zone.slice(-2)}`}`);
      if (Number.isNaN(base)) return null;
      this.lastSeconds = seconds;
      this.lastZone = zone;
      this.lastBase = base;
      // the minute's other seconds follow from it, except in hour 24 (Date.parse takes T24:00:00 alone)
      const hour = (seconds.charCodeAt(11) - 48) * 10 + seconds.charCodeAt(12) - 48;
      this.lastMinute = hour <= 23 ? seconds.slice(0, 17) : ''; // YYYY-MM-DDTHH:MM:
      this.lastMinuteBase = base - ss * 1000;
    }
    const fraction = header[2];
    if (fraction === undefined) return base;
    // its milliseconds: the first three digits (1-9 were matched), read without making strings
    let ms = 0;
    for (let k = 0; k < 3; k++) ms = ms * 10 + (k < fraction.length ? fraction.charCodeAt(k) - 48 : 0);
    return base + ms;
  }

  /** "Nov  2 09:05:07" / "Nov 02 09:05:07": local time, year from `now` (a date after now is last year). */
  private yearlessStamp(stamp: string): number | null {
    const cached = this.stampCache.get(stamp);
    if (cached !== undefined) return cached;
    const month = MONTHS[stamp.slice(0, 3)]!;
    const short = stamp.length === 14; // "Mar 7 02:09:33"
    const day = Number(short ? stamp.slice(4, 5) : stamp.slice(4, 6).trim());
    const [hours, minutes, seconds] = stamp.slice(short ? 6 : 7).split(':').map(Number) as [number, number, number];
    if (day < 1 || day > 31 || hours > 23 || minutes > 59 || seconds > 60) return null;
    let date = new Date(this.nowYear, month, day, hours, minutes, seconds);
    if (date.getTime() > this.now) date = new Date(this.nowYear - 1, month, day, hours, minutes, seconds);
    if (date.getMonth() !== month) return null; // "Feb 30"
    const time = date.getTime();
    this.remember(stamp, time);
    return time;
  }

  private remember(key: string, time: number): void {
    if (this.stampCache.size > 4096) this.stampCache.clear();
    this.stampCache.set(key, time);
  }
}

interface Found {
  kind: EventKind;
  rawAddress: string;
  user?: string;
  unnamed?: boolean;
  count?: number;
}

const FAILED_USER = ', sasl_username=';
const LOGIN_USER = ' sasl_username=';
/** What Postfix logs after the username of a login (smtpd.c), when it has it. */
const AFTER_LOGIN_USER = /, (?:sasl_sender|orig_queue_id|orig_client)=/;

/** The failure's username: everything after the first `, sasl_username=` (the reason before it is the server's text). */
function failedUser(line: string, from: number): string | undefined {
  const at = line.indexOf(FAILED_USER, from);
  const user = at === -1 ? '' : line.slice(at + FAILED_USER.length, at + FAILED_USER.length + MAX_USERNAME);
  return user === '' ? undefined : user;
}

function loginUser(line: string, from: number): string | undefined {
  const at = line.indexOf(LOGIN_USER, from);
  if (at === -1) return undefined;
  const rest = line.slice(at + LOGIN_USER.length);
  const end = rest.search(AFTER_LOGIN_USER);
  const user = (end === -1 ? rest : rest.slice(0, end)).slice(0, MAX_USERNAME);
  return user === '' ? undefined : user;
}

function matchAt(re: RegExp, line: string, at: number): RegExpExecArray | null {
  re.lastIndex = at;
  return re.exec(line);
}

/**
 * The kind of an smtpd reject (parse-bytes.ts reads the same shape from bytes): `permanent` for
 * a 5xx code, `recipientStage` for RCPT and VRFY, the reply `b[from..end)` the text after the
 * code's first digit (`50 5.1.1 <x@example.org>: Recipient address rejected: ...`).
 */
export function smtpdRejectKind(milter: boolean, permanent: boolean, recipientStage: boolean, b: Uint8Array, from: number, end: number): 'reject' | 'tempReject' | 'recipientReject' | 'messageReject' {
  if (!permanent) return 'tempReject';
  // a milter-reject judged the content: message-level. Else the reply text after the code says what
  // the reject is about (reject-classes.ts); all of it is read, the client's quoted text may be long.
  if (!milter && classifyRejectBytes(b, from + 3, end) === 'client') return 'reject';
  return recipientStage && recipientStatus(b, from, end) ? 'recipientReject' : 'messageReject';
}

/**
 * RFC 3463 X.1.x (addressing) and X.2.x (mailbox) are about a recipient, except X.1.7 and X.1.8
 * (the sender's address). The code is Postfix's, not client text, so a client cannot choose the
 * class. `b[from..end)`: the rest of the reply code, then the status (`50 5.1.1 `).
 */
function recipientStatus(b: Uint8Array, from: number, end: number): boolean {
  if (from + 8 > end || !isDigit(b[from]) || !isDigit(b[from + 1]) || !bytesAt(b, from + 2, end, STATUS_5)) return false;
  let i = from + 5; // after `DD 5.`
  const subject = b[i];
  if ((subject !== 0x31 && subject !== 0x32) || b[i + 1] !== 0x2e) return false;
  i += 2;
  const digits = i;
  while (i < end && isDigit(b[i])) i++;
  if (i === digits || i >= end || b[i] !== 0x20) return false;
  // X.2.any, X.1.N for N in 0-6 and 9, and X.1.NN...
  return subject === 0x32 || i - digits > 1 || (b[digits] !== 0x37 && b[digits] !== 0x38);
}

const STATUS_5 = latin1Bytes(' 5.');

function matchSmtpd(line: string, at: number): Found | null {
  let m: RegExpExecArray | null;
  // Postfix's own warnings and session summaries; other lines may start with these letters too
  // (a long queue ID: `dT3Lk2...: reject: ...`)
  if (line.startsWith('warning: ', at)) {
    if ((m = matchAt(SASL_FAILURE, line, at)) !== null) {
      const end = at + m[0].length;
      if (line.startsWith(AUTH_SERVER_LOST, end)) return null;
      const user = failedUser(line, end);
      return user === undefined ? { kind: 'saslFailure', rawAddress: m[2]! } : { kind: 'saslFailure', rawAddress: m[2]!, user };
    }
    if ((m = matchAt(RATE_LIMIT, line, at)) !== null) return { kind: 'rateLimit', rawAddress: m[2]! };
    if ((m = matchAt(NON_SMTP, line, at)) !== null) return { kind: 'nonSmtp', rawAddress: m[2]! };
    m = matchAt(HOSTNAME_MISMATCH, line, at);
    return m === null ? null : { kind: 'hostnameMismatch', rawAddress: m[1]! };
  }
  if (line.startsWith('disconnect from ', at)) {
    if ((m = matchAt(DISCONNECT, line, at)) === null) return null;
    const auth = AUTH_COUNTS.exec(m[3]!);
    const failed = auth === null ? 0 : Number(auth[2]) - Number(auth[1]);
    return failed > 0 ? { kind: 'authDisconnect', rawAddress: m[2]!, count: failed } : null;
  }
  if ((m = matchAt(SMTPD_REJECT, line, at)) !== null) {
    const rawAddress = m[4]!;
    const reply = latin1Bytes(line.slice(at + m[0].length));
    const kind = smtpdRejectKind(m[1] !== undefined, m[5] === '5', RECIPIENT_STAGES.has(m[2]!), reply, 0, reply.length);
    return kind === 'recipientReject' || kind === 'messageReject' ? { kind, rawAddress, unnamed: m[3] === 'unknown' } : { kind, rawAddress };
  }
  if ((m = matchAt(SASL_SUCCESS, line, at)) !== null) {
    const user = loginUser(line, at + m[0].length);
    return user === undefined ? { kind: 'saslSuccess', rawAddress: m[2]! } : { kind: 'saslSuccess', rawAddress: m[2]!, user };
  }
  if ((m = matchAt(ACCEPTED, line, at)) !== null) return { kind: 'accepted', rawAddress: m[2]! };
  if ((m = matchAt(SESSION_END, line, at)) !== null) return { kind: SESSION_END_KINDS[m[1]!]![m[2] === 'AUTH' ? 0 : 1], rawAddress: m[4]! };
  if ((m = matchAt(ILL_PIPELINING, line, at)) !== null) return { kind: 'improperPipelining', rawAddress: m[2]! };
  return null;
}

function matchPostscreen(line: string, at: number): Found | null {
  let m = matchAt(PS_REJECT, line, at);
  if (m !== null) return { kind: m[2] === '5' ? 'reject' : 'tempReject', rawAddress: m[1]! };
  for (const [re, kind] of PS_SHAPES) {
    if ((m = matchAt(re, line, at)) !== null) return { kind, rawAddress: m[1]! };
  }
  return null;
}
