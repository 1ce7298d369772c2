/**
 * A deterministic, realistic Debian 12 mail.log generator, with ground truth.
 *
 * Writes what a Debian 12 mail server logs (Postfix 3.7 with postscreen, submission
 * and smtps, Dovecot, opendkim, amavis, postgrey): about 90% ordinary traffic and
 * 10% attacks, from a Zipf-like population of attackers (a few busy /24 networks,
 * many lone hosts, IPv6 /64s, IPv4-mapped clients), plus the traps a careless
 * parser falls for (addresses inside SASL usernames, helo= and from=, unknown[unknown],
 * reject_warning, other programs quoting Postfix text).
 *
 * The ground truth is counted here, line by line, as each line is handed out: every
 * event the parser must find, per normalised client address and kind. It never comes
 * from parsing the output.
 *
 * Library (this file): generateLines(), writeLog(), writeFlood(). CLI: cli.ts.
 * Timestamps are written in UTC (RFC 3339 with +00:00; the year-less forms are UTC
 * wall-clock time, so scan those with TZ=UTC).
 *
 * The parts, in the order a line is made:
 *   options.ts     what a log is asked to be (GenerateOptions, EVENT_HEAVY, the defaults)
 *   truth.ts       the ground truth (GroundTruth, addEvent, addTruth, sortTruth)
 *   random.ts      seeded streams (mulberry32 from test/random.ts) and weighted picks
 *   addresses.ts   RFC 5952 text; the client, attacker and user records
 *   vocabulary.ts  the server's names and addresses, domains, users, logins, alphabets, TLS lines
 *   line.ts        one line before its timestamp; process IDs
 *   population.ts  who talks to the server: attackers, other mail servers, our users
 *   world.ts       the simulated server: its processes and the pieces of a session's lines
 *   ordinary.ts    ordinary traffic (no events but SASL logins and greylisting)
 *   attacks.ts     the sessions of each attacker profile, and the traps
 *   timestamps.ts  `TIMESTAMP HOST ` in each format
 *   generator.ts   generateLines() and writeLog()
 *   flood.ts       writeFlood(): an address flood hiding a few attackers
 *   cli.ts         the command line
 */
export { formatIpv6 } from './addresses.js';
export { FLOOD_ATTACKERS, writeFlood, type FloodOptions } from './flood.js';
export { generateLines, writeLog } from './generator.js';
export { DEFAULT_ATTACK_SHARE, DEFAULT_START, EVENT_HEAVY, type GenerateOptions, type LogFormat } from './options.js';
export { mulberry32 } from './random.js';
export { StampFormatter } from './timestamps.js';
export { addEvent, addTruth, sortTruth, type GroundTruth } from './truth.js';
