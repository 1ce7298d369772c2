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

export type RejectClass = 'client' | 'message';

/** `CLASS rejected: ` prefixes of client-level rejects (after the quoted part). */
const CLIENT_CLASSES: readonly string[] = ['Client host rejected: ', 'Unverified Client host rejected: ', 'Client certificate rejected: ', 'Helo command rejected: '];

/** Client-level texts with no quoted part first. */
const CLIENT_TEXTS: readonly string[] = [
  'Client host rejected: ', // cannot find your (reverse) hostname, [ADDR]
  'Service unavailable; Client host [',
  'Service unavailable; Unverified Client host [',
  'Service unavailable; Helo command [',
];

/** reject_unauth_pipelining, under whatever restriction list it sits in: the client did not wait. */
const PIPELINING = / rejected: Improper use of SMTP command pipelining(?:;|$)/y;

/** Whether the reason starting at `text[from]` is about the client (read from its first 120 characters). */
function reasonIsClient(text: string, from: number): boolean {
  for (const prefix of CLIENT_CLASSES) if (text.startsWith(prefix, from)) return true;
  const rejected = text.indexOf(' rejected: ', from) - from;
  if (rejected <= 0 || rejected > 40) return false;
  PIPELINING.lastIndex = from + rejected;
  return PIPELINING.test(text);
}

const isDigit = (c: number): boolean => c >= 48 && c <= 57;

/** The length of the enhanced status code `D.DDD.DDD ` that starts `text`, or 0. */
function dsnLength(text: string): number {
  if (!isDigit(text.charCodeAt(0)) || text.charCodeAt(1) !== 0x2e) return 0;
  const second = digitsThen(text, 2, 0x2e);
  return second === 0 ? 0 : digitsThen(text, second, 0x20);
}

/** Where the text after 1-3 digits at `from` and then `stop` begins, or 0. */
function digitsThen(text: string, from: number, stop: number): number {
  let i = from;
  while (i - from < 3 && isDigit(text.charCodeAt(i))) i++;
  return i > from && text.charCodeAt(i) === stop ? i + 1 : 0;
}

/**
 * The class of a reject's reply text: what follows `CODE ` (or, for milter-reject, the DSN),
 * e.g. `5.7.1 <x@example.org>: Relay access denied; from=<...> ...`.
 */
export function classifyReject(text: string): RejectClass {
  // the enhanced status code, when there is one
  const at = dsnLength(text);
  if (text.charCodeAt(at) !== 0x3c /* < */) {
    for (const prefix of CLIENT_TEXTS) if (text.startsWith(prefix, at)) return 'client';
    return 'message';
  }
  let found = false;
  for (let split = text.indexOf('>: ', at); split !== -1; split = text.indexOf('>: ', split + 1)) {
    if (!reasonIsClient(text, split + 3)) return 'message';
    found = true;
  }
  return found ? 'client' : 'message';
}
