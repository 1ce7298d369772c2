/**
 * What Postfix did to (or saw from) a client. Each kind is one log line shape;
 * see parse.ts for the exact shapes and README.md ("What it counts") for the list.
 */
export const EVENT_KINDS = [
  'saslFailure', // smtpd: warning: NAME[ADDR]: SASL MECH authentication failed: ...
  'reject', // smtpd or postscreen: NOQUEUE|QUEUEID: reject|milter-reject: STAGE from ...: 5xx ...
  'tempReject', // the same shape with a 4xx code (greylisting, DNS trouble): legitimate servers get these
  'saslSuccess', // smtpd: QUEUEID: client=NAME[ADDR], sasl_method=..., sasl_username=...
  'authLost', // smtpd: lost connection after AUTH from NAME[ADDR]
  'rateLimit', // smtpd: warning: Connection rate limit exceeded: N from NAME[ADDR] for service S
  'pregreet', // postscreen: PREGREET N after T from [ADDR]:PORT: ...
  'dnsbl', // postscreen: DNSBL rank N for [ADDR]:PORT
  'hangup', // postscreen: HANGUP after T from [ADDR]:PORT in tests ...
  'pipelining', // postscreen: COMMAND PIPELINING from [ADDR]:PORT after CMD: ...
  'nonSmtp', // postscreen: NON-SMTP COMMAND from [ADDR]:PORT after CMD: ...
  'bareNewline', // postscreen: BARE NEWLINE from [ADDR]:PORT after CMD
  'commandLimit', // postscreen: COMMAND TIME|COUNT|LENGTH LIMIT from [ADDR]:PORT after CMD
] as const;

export type EventKind = (typeof EVENT_KINDS)[number];

export const KIND_INDEX: Readonly<Record<EventKind, number>> = Object.fromEntries(
  EVENT_KINDS.map((kind, index) => [kind, index]),
) as Record<EventKind, number>;

/** Kinds that add up toward blocking unless the admin says otherwise (`--kinds`). */
export const DEFAULT_COUNTED_KINDS: readonly EventKind[] = ['saslFailure', 'reject'];

export function isEventKind(value: string): value is EventKind {
  return (EVENT_KINDS as readonly string[]).includes(value);
}
