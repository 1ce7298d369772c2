/**
 * What Postfix did to (or saw from) a client. Each kind is one log line shape;
 * see parse.ts for the exact shapes and README.md ("What it counts") for the list.
 */
export const EVENT_KINDS = [
  'saslFailure', // smtpd: warning: NAME[ADDR]: SASL MECH authentication failed: ...
  'reject', // smtpd or postscreen: NOQUEUE|QUEUEID: reject: STAGE from ...: 5xx ... about the client itself (reject-classes.ts)
  'tempReject', // the same shape with a 4xx code (greylisting, DNS trouble): legitimate servers get these
  'saslSuccess', // smtpd: QUEUEID: client=NAME[ADDR], sasl_method=..., sasl_username=...
  'authLost', // smtpd: lost connection after AUTH from NAME[ADDR]
  'rateLimit', // smtpd: warning: Connection rate limit exceeded: N from NAME[ADDR] for service S
  'pregreet', // postscreen: PREGREET N after T from [ADDR]:PORT: ...
  'dnsbl', // postscreen: DNSBL rank N for [ADDR]:PORT
  'hangup', // postscreen: HANGUP after T from [ADDR]:PORT in tests ...
  'pipelining', // postscreen: COMMAND PIPELINING from [ADDR]:PORT after CMD: ...
  'nonSmtp', // postscreen: NON-SMTP COMMAND from [ADDR]:PORT after CMD: ...; smtpd: warning: non-SMTP command from NAME[ADDR]: ...
  'bareNewline', // postscreen: BARE NEWLINE from [ADDR]:PORT after CMD
  'commandLimit', // postscreen: COMMAND TIME|COUNT|LENGTH LIMIT from [ADDR]:PORT after CMD
  'recipientReject', // smtpd: ... reject: RCPT from NAME[ADDR]: 550 5.1.1 <x@y>: Recipient address rejected: User unknown ...
  'accepted', // smtpd: QUEUEID: client=NAME[ADDR] (no sasl_method): mail was accepted from it
  'authErrors', // smtpd: [QUEUEID: ]too many errors after AUTH from NAME[ADDR]
  'authDisconnect', // smtpd: disconnect from NAME[ADDR] ... auth=0/3 ...: counts the failed AUTH commands (3)
  'messageReject', // smtpd: a 5xx reject about what the message asked for (relay, sender, content, size; reject-classes.ts), or milter-reject
  'improperPipelining', // smtpd: improper command pipelining after CMD from NAME[ADDR]: ...
  'tooManyErrors', // smtpd: [QUEUEID: ]too many errors after CMD from NAME[ADDR] (CMD not AUTH: that is authErrors)
  'lostConnection', // smtpd: lost connection after CMD from NAME[ADDR] (CMD not AUTH: that is authLost)
  'timeout', // smtpd: timeout after CMD from NAME[ADDR]
  'hostnameMismatch', // smtpd: warning: hostname NAME does not resolve to address ADDR[: reason]
] as const;

export type EventKind = (typeof EVENT_KINDS)[number];

/**
 * A tally keeps one count per kind and, after them, counts that qualify a kind: the
 * message-level rejects (recipientReject, messageReject) of clients that Postfix logged as
 * `unknown[ADDR]` (no forward-confirmed name), the only ones that count toward blocking (policy.ts);
 * and, in folded rows, the addresses a row adds up.
 */
export const UNNAMED_RECIPIENT_REJECT_SLOT: number = EVENT_KINDS.length;
export const UNNAMED_MESSAGE_REJECT_SLOT: number = EVENT_KINDS.length + 1;
/**
 * In a tally's folded rows only (count/tally.ts compact): how many addresses were added up into
 * the row, counted in the minute of each one's newest event.
 */
export const FOLDED_ADDRESSES_SLOT: number = EVENT_KINDS.length + 2;
export const SLOT_COUNT = FOLDED_ADDRESSES_SLOT + 1;

/** Rejects about what a message asked for, not about the client: they count only for bots, never toward a range. */
export const MESSAGE_LEVEL_KINDS = ['recipientReject', 'messageReject'] as const;

export const KIND_INDEX: Readonly<Record<EventKind, number>> = Object.fromEntries(
  EVENT_KINDS.map((kind, index) => [kind, index]),
) as Record<EventKind, number>;

/** Kinds that add up toward blocking unless the admin says otherwise (`--kinds`). */
export const DEFAULT_COUNTED_KINDS: readonly EventKind[] = ['saslFailure', 'reject', 'recipientReject', 'messageReject'];

export function isEventKind(value: string): value is EventKind {
  return (EVENT_KINDS as readonly string[]).includes(value);
}
