/**
 * What a 5xx reject is evidence of: the client itself, or what its message asked for. Pure.
 *
 * Postfix's reply (smtpd_check.c, every text in test/fixtures/reject-texts.tsv) is either
 * `<QUOTED>: CLASS rejected: REASON` or a text of its own (`Service unavailable; Client host
 * [ADDR] blocked using LIST`, `Client host rejected: cannot find your hostname, [ADDR]`).
 * QUOTED is the client's text (a recipient, a sender, a HELO name) and may itself hold `>: `,
 * so every `>: ` is a place the reason may start: the reject is client-level only when the
 * text after each of them says so. A client can push its own reject toward message-level
 * (where it still counts for a bot), never a bystander's toward client-level.
 *
 * - client: the client's hostname, HELO, a DNSBL listing of its address or name, a client
 *   access REJECT, pipelining (under any class).
 * - message: recipient unknown, relay to a domain that is not ours, sender address problems
 *   (domain, login mismatch, RHSBL), multi-recipient bounce, size, content (milters), and
 *   every reason text not known here (the safe side for bystanders).
 */

import { bytesAt, indexOfBytes, isDigit, latin1Bytes } from './bytes.js';

export type RejectClass = 'client' | 'message';

/** `CLASS rejected: ` prefixes of client-level rejects (after the quoted part). */
const CLIENT_CLASSES: readonly Uint8Array[] = ['Client host rejected: ', 'Unverified Client host rejected: ', 'Client certificate rejected: ', 'Helo command rejected: '].map(latin1Bytes);
/** How many bytes of each prefix hold no `>` (all of them): a `>: ` can start only after those. */
const CLIENT_CLASS_PLAIN = CLIENT_CLASSES.map((prefix) => (prefix.includes(0x3e) ? prefix.indexOf(0x3e) : prefix.length));

/** Client-level texts with no quoted part first. */
const CLIENT_TEXTS: readonly Uint8Array[] = [
  'Client host rejected: ', // cannot find your (reverse) hostname, [ADDR]
  'Service unavailable; Client host [',
  'Service unavailable; Unverified Client host [',
  'Service unavailable; Helo command [',
].map(latin1Bytes);

const REJECTED = latin1Bytes(' rejected: ');
/** reject_unauth_pipelining, under whatever restriction list it sits in: the client did not wait (then `;` or the end). */
const PIPELINING = latin1Bytes(' rejected: Improper use of SMTP command pipelining');
const SPLIT = latin1Bytes('>: ');

/**
 * Whether the reason starting at `b[from]` is about the client (read from its first 120
 * characters): -1 when it is not, else how many of its first bytes are known to hold no `>`.
 */
function clientReason(b: Uint8Array, from: number, end: number): number {
  for (let k = 0; k < CLIENT_CLASSES.length; k++) if (bytesAt(b, from, end, CLIENT_CLASSES[k]!)) return CLIENT_CLASS_PLAIN[k]!;
  const rejected = indexOfBytes(b, from, Math.min(end, from + 120), REJECTED) - from;
  if (rejected <= 0 || rejected > 40 || !bytesAt(b, from + rejected, end, PIPELINING)) return -1;
  const after = from + rejected + PIPELINING.length;
  return after === end || b[after] === 0x3b /* ; */ ? 0 : -1;
}

/** The length of the enhanced status code `D.DDD.DDD ` that starts `b[from..end)`, or 0. */
function dsnLength(b: Uint8Array, from: number, end: number): number {
  if (from + 1 >= end || !isDigit(b[from]) || b[from + 1] !== 0x2e) return 0;
  const second = digitsThen(b, from + 2, end, 0x2e);
  const third = second === 0 ? 0 : digitsThen(b, second, end, 0x20);
  return third === 0 ? 0 : third - from;
}

/** Where the text after 1-3 digits at `from` and then `stop` begins, or 0. */
function digitsThen(b: Uint8Array, from: number, end: number, stop: number): number {
  let i = from;
  while (i - from < 3 && i < end && isDigit(b[i])) i++;
  return i > from && i < end && b[i] === stop ? i + 1 : 0;
}

/**
 * The class of a reject's reply text `b[from..end)` (latin1, as the scanner reads the log): what
 * follows `CODE ` (or, for milter-reject, the DSN), e.g. `5.7.1 <x@example.org>: Relay access denied; from=<...> ...`.
 */
export function classifyRejectBytes(b: Uint8Array, from: number, end: number): RejectClass {
  // the enhanced status code, when there is one
  const at = from + dsnLength(b, from, end);
  if (b[at] !== 0x3c /* < */ || at >= end) {
    for (const prefix of CLIENT_TEXTS) if (bytesAt(b, at, end, prefix)) return 'client';
    return 'message';
  }
  let found = false;
  for (let split = indexOfBytes(b, at, end, SPLIT); split !== -1; ) {
    const known = clientReason(b, split + SPLIT.length, end);
    if (known === -1) return 'message';
    found = true;
    // the next `>: ` starts after this one and after the prefix just read
    split = indexOfBytes(b, split + SPLIT.length + known, end, SPLIT);
  }
  return found ? 'client' : 'message';
}

/** classifyReject for text (each character one latin1 byte, as the parser's lines are). */
export function classifyReject(text: string): RejectClass {
  return classifyRejectBytes(latin1Bytes(text), 0, text.length);
}
