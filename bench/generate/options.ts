/** What a generated log is asked to be: its options, the event-heavy shape, the defaults. */

export type LogFormat = 'rfc3339' | 'traditional' | 'maillog';

export interface GenerateOptions {
  /** Lines to write. */
  lines: number;
  /** Same seed, same options: same lines, byte for byte. */
  seed: number;
  /** Time of the first line. */
  start: Date;
  /** Time the lines are spread up to (default: start + 7 days). */
  end?: Date;
  /** Share of the lines that come from attack sessions (default 0.1). */
  attackShare?: number;
  /**
   * rfc3339 (default, Debian 12 rsyslog): `2026-11-22T11:37:32.010856+00:00 mx postfix/smtpd[1234]: ...`;
   * traditional (syslog): `Nov  2 09:05:07 mx ...`; maillog (Postfix maillog_file): `Nov 02 09:05:07 mx ...`,
   * which holds Postfix's own lines only.
   */
  format?: LogFormat;
  /** Host name field (default `mx`). */
  host?: string;
  /** IPv4 attackers (default: lines / 250, at most 20,000, with a few IPv6 /64s). */
  attackers?: number;
  /** Lone IPv6 attackers on top of those (each in its own /64; default none). */
  ipv6Attackers?: number;
}

/**
 * The event-heavy shape of issue 11: 10% of the lines are counted events (SASL failures,
 * client rejects, recipient rejects), from a Zipf population of ~4,000 IPv4 and 300 IPv6
 * attackers, PTR names on a share, SASL usernames; spread over the days asked for.
 */
export const EVENT_HEAVY: Pick<GenerateOptions, 'attackShare' | 'attackers' | 'ipv6Attackers'> = { attackShare: 0.5, attackers: 4000, ipv6Attackers: 300 };

export const DAY_MS = 86_400_000;
export const DEFAULT_ATTACK_SHARE = 0.1;

/** Default --start: a fixed instant (output must not depend on the clock); with the default 7 days it ends 2026-11-23. */
export const DEFAULT_START = '2026-11-16T00:00:00Z';
