/**
 * Writes the bundled example logs: examples/logs/mail.log, mail.log.1 and
 * mail.log.2.gz (Debian 12 rsyslog, RFC 3339 stamps, rotated at midnight UTC, the
 * oldest data in .2.gz), about three days ending 2026-11-22, plus
 * examples/logs/truth.json: the events smtpguard must find in the three files together,
 * per client address and kind.
 *
 * What is in them:
 * - the real Postfix 3.7.11 lines of ../shared/samples/postfix-3.7-real.log (REAL_LINES),
 *   with hand-written expected events;
 * - ordinary traffic and background attacks from generate/ (fixed seed);
 * - a few clear offenders, written here: a /24 (203.0.113.0/24) whose hosts take turns
 *   at SASL LOGIN, an IPv6 /64 with two addresses doing SASL PLAIN, a user who
 *   mistypes the password three times and then logs in, and an address that appears
 *   only inside a SASL user name (it must never be counted).
 *
 * Run: npm run examples  (from the project root; --out DIR to write elsewhere).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { isEventKind } from '../src/read/kinds.js';
import {
  addEvent,
  addTruth,
  generateLines,
  mulberry32,
  sortTruth,
  StampFormatter,
  type GroundTruth,
} from './generate/index.js';

const START = new Date('2026-11-19T15:00:00Z');
const END = new Date('2026-11-22T15:00:00Z');
/** logrotate runs at midnight: lines before each of these went to the older file. */
const ROTATED_AT = ['2026-11-20T00:00:00', '2026-11-21T00:00:00'];
const BACKGROUND = { lines: 2700, seed: 20261122, attackShare: 0.06, host: 'mx' } as const;
/** Every line starts with a fixed-width stamp, so text order of these 32 characters is time order. */
const STAMP_LENGTH = '2026-11-22T11:37:32.010856+00:00'.length;

/**
 * Lines a real Postfix 3.7.11 wrote on Debian 12 (../shared/samples/postfix-3.7-real.rfc3339.log),
 * with the test rig's client addresses replaced by documentation ones, so the examples
 * never show loopback:
 *   127.0.0.N -> 192.0.2.N (localhost[127.0.0.1] -> unknown[192.0.2.1]), 127.0.1.5 -> 198.51.100.5,
 *   127.0.2.3 -> 203.0.113.3, 127.0.3.4 -> 203.0.113.34, 10.200.0.2 -> 198.51.100.2,
 *   10.200.3.7 -> 198.51.100.37, 10.200.9.5 -> 198.51.100.95, ::1 -> 2001:db8::1,
 *   ::2 -> 2001:db8::2, fd00:200::2 -> 2001:db8:200::2.
 * Dovecot's lines are shown as rsyslog writes them (`mx dovecot: auth: ...`), the
 * /tmp paths of the rig as /etc/postfix, and the rig's "stopping the Postfix mail
 * system" is left out. Each event line is preceded by "# => KIND ADDRESS", the event it
 * must give (hand-written, as in test/fixtures/events.log).
 */
const REAL_LINES = `
2026-11-22T12:33:04.000000+00:00 mx postfix/smtpd[1737]: connect from unknown[192.0.2.5]
# => saslFailure 192.0.2.5
2026-11-22T12:33:05.000137+00:00 mx postfix/smtpd[1737]: warning: unknown[192.0.2.5]: SASL LOGIN authentication failed: (reason unavailable), sasl_username=testuser
# => authDisconnect 192.0.2.5
2026-11-22T12:33:05.000274+00:00 mx postfix/smtpd[1737]: disconnect from unknown[192.0.2.5] ehlo=1 auth=0/1 quit=1 commands=2/3
2026-11-22T12:33:05.000411+00:00 mx postfix/smtpd[1737]: connect from unknown[192.0.2.6]
# => saslFailure 192.0.2.6
2026-11-22T12:33:05.000548+00:00 mx postfix/smtpd[1737]: warning: unknown[192.0.2.6]: SASL PLAIN authentication failed: (reason unavailable), sasl_username=testuser
# => authDisconnect 192.0.2.6
2026-11-22T12:33:05.000685+00:00 mx postfix/smtpd[1737]: disconnect from unknown[192.0.2.6] ehlo=1 auth=0/1 quit=1 commands=2/3
2026-11-22T12:33:06.000822+00:00 mx postfix/smtpd[1737]: connect from unknown[2001:db8::1]
# => saslFailure 2001:db8::1
2026-11-22T12:33:06.000959+00:00 mx postfix/smtpd[1737]: warning: unknown[2001:db8::1]: SASL LOGIN authentication failed: (reason unavailable), sasl_username=nobody@stack.test
# => authDisconnect 2001:db8::1
2026-11-22T12:33:06.001096+00:00 mx postfix/smtpd[1737]: disconnect from unknown[2001:db8::1] ehlo=1 auth=0/1 quit=1 commands=2/3
2026-11-22T12:33:06.001233+00:00 mx postfix/smtpd[1737]: connect from unknown[198.51.100.2]
# => saslFailure 198.51.100.2
2026-11-22T12:33:06.001370+00:00 mx postfix/smtpd[1737]: warning: unknown[198.51.100.2]: SASL PLAIN authentication failed: (reason unavailable), sasl_username=testuser
# => authDisconnect 198.51.100.2
2026-11-22T12:33:06.001507+00:00 mx postfix/smtpd[1737]: disconnect from unknown[198.51.100.2] ehlo=1 auth=0/1 quit=1 commands=2/3
2026-11-22T12:33:07.001644+00:00 mx postfix/smtpd[1737]: connect from unknown[2001:db8:200::2]
# => saslFailure 2001:db8:200::2
2026-11-22T12:33:07.001781+00:00 mx postfix/smtpd[1737]: warning: unknown[2001:db8:200::2]: SASL LOGIN authentication failed: (reason unavailable), sasl_username=testuser
# => authDisconnect 2001:db8:200::2
2026-11-22T12:33:07.001918+00:00 mx postfix/smtpd[1737]: disconnect from unknown[2001:db8:200::2] ehlo=1 auth=0/1 quit=1 commands=2/3
2026-11-22T12:33:07.002055+00:00 mx postfix/submission/smtpd[1830]: connect from unknown[192.0.2.11]
# => saslFailure 192.0.2.11
2026-11-22T12:33:07.002192+00:00 mx postfix/submission/smtpd[1830]: warning: unknown[192.0.2.11]: SASL LOGIN authentication failed: authentication failure, sasl_username=testuser@stack.test
# => authDisconnect 192.0.2.11
2026-11-22T12:33:07.002329+00:00 mx postfix/submission/smtpd[1830]: disconnect from unknown[192.0.2.11] ehlo=1 auth=0/1 quit=1 commands=2/3
2026-11-22T12:33:08.002466+00:00 mx postfix/submission/smtpd[1830]: connect from unknown[192.0.2.12]
2026-11-22T12:33:08.002603+00:00 mx postfix/submission/smtpd[1830]: warning: SASL authentication failure: Password verification failed
# => saslFailure 192.0.2.12
2026-11-22T12:33:08.002740+00:00 mx postfix/submission/smtpd[1830]: warning: unknown[192.0.2.12]: SASL PLAIN authentication failed: authentication failure, sasl_username=testuser@stack.test
# => authDisconnect 192.0.2.12
2026-11-22T12:33:08.002877+00:00 mx postfix/submission/smtpd[1830]: disconnect from unknown[192.0.2.12] ehlo=1 auth=0/1 quit=1 commands=2/3
2026-11-22T12:33:08.003014+00:00 mx postfix/submission/smtpd[1830]: connect from unknown[192.0.2.13]
2026-11-22T12:33:08.003151+00:00 mx postfix/submission/smtpd[1830]: warning: SASL authentication failure: Password verification failed
# => saslFailure 192.0.2.13
2026-11-22T12:33:08.003288+00:00 mx postfix/submission/smtpd[1830]: warning: unknown[192.0.2.13]: SASL PLAIN authentication failed: authentication failure, sasl_username=ghost@stack.test
# => authDisconnect 192.0.2.13
2026-11-22T12:33:08.003425+00:00 mx postfix/submission/smtpd[1830]: disconnect from unknown[192.0.2.13] ehlo=1 auth=0/1 quit=1 commands=2/3
2026-11-22T12:33:08.003562+00:00 mx postfix/smtpd[1737]: connect from unknown[192.0.2.7]
# => messageReject 192.0.2.7
2026-11-22T12:33:08.003699+00:00 mx postfix/smtpd[1737]: NOQUEUE: reject: RCPT from unknown[192.0.2.7]: 554 5.7.1 <victim@example.org>: Relay access denied; from=<probe@client.stack.test> to=<victim@example.org> proto=ESMTP helo=<client.stack.test>
2026-11-22T12:33:08.003836+00:00 mx postfix/smtpd[1737]: disconnect from unknown[192.0.2.7] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4
2026-11-22T12:33:08.003973+00:00 mx postfix/smtpd[1737]: connect from unknown[198.51.100.37]
# => messageReject 198.51.100.37
2026-11-22T12:33:08.004110+00:00 mx postfix/smtpd[1737]: NOQUEUE: reject: RCPT from unknown[198.51.100.37]: 554 5.7.1 <victim@example.org>: Relay access denied; from=<probe@client.stack.test> to=<victim@example.org> proto=ESMTP helo=<client.stack.test>
2026-11-22T12:33:08.004247+00:00 mx postfix/smtpd[1737]: disconnect from unknown[198.51.100.37] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4
2026-11-22T12:33:09.004384+00:00 mx postfix/smtpd[1737]: connect from unknown[2001:db8::1]
# => messageReject 2001:db8::1
2026-11-22T12:33:09.004521+00:00 mx postfix/smtpd[1737]: NOQUEUE: reject: RCPT from unknown[2001:db8::1]: 554 5.7.1 <victim@example.org>: Relay access denied; from=<probe@client.stack.test> to=<victim@example.org> proto=ESMTP helo=<client.stack.test>
2026-11-22T12:33:09.004658+00:00 mx postfix/smtpd[1737]: disconnect from unknown[2001:db8::1] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4
2026-11-22T12:33:09.004795+00:00 mx postfix/smtpd[1737]: connect from unknown[192.0.2.8]
# => recipientReject 192.0.2.8
2026-11-22T12:33:09.004932+00:00 mx postfix/smtpd[1737]: NOQUEUE: reject: RCPT from unknown[192.0.2.8]: 550 5.1.1 <nosuchuser@mx.stack.test>: Recipient address rejected: User unknown in local recipient table; from=<probe@client.stack.test> to=<nosuchuser@mx.stack.test> proto=ESMTP helo=<client.stack.test>
2026-11-22T12:33:09.005069+00:00 mx postfix/smtpd[1737]: disconnect from unknown[192.0.2.8] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4
2026-11-22T12:33:09.005206+00:00 mx postfix/smtpd[1737]: connect from unknown[192.0.2.20]
# => saslSuccess 192.0.2.20
2026-11-22T12:33:09.005343+00:00 mx postfix/smtpd[1737]: B45EF20E361: client=unknown[192.0.2.20], sasl_method=PLAIN, sasl_username=testuser
2026-11-22T12:33:09.005480+00:00 mx postfix/cleanup[1951]: B45EF20E361: message-id=<20261122123309.001949@vm>
2026-11-22T12:33:09.005617+00:00 mx postfix/qmgr[1701]: B45EF20E361: from=<probe@client.stack.test>, size=450, nrcpt=1 (queue active)
2026-11-22T12:33:09.005754+00:00 mx postfix/smtpd[1737]: disconnect from unknown[192.0.2.20] ehlo=1 auth=1 mail=1 rcpt=1 data=1 quit=1 commands=6
2026-11-22T12:33:09.005891+00:00 mx postfix/discard[1952]: B45EF20E361: to=<someone@example.org>, relay=none, delay=0.02, delays=0.01/0.01/0/0, dsn=2.0.0, status=sent (test-no-delivery)
2026-11-22T12:33:09.006028+00:00 mx postfix/qmgr[1701]: B45EF20E361: removed
2026-11-22T12:33:10.006165+00:00 mx postfix/smtpd[1737]: connect from unknown[192.0.2.9]
# => reject 192.0.2.9
2026-11-22T12:33:10.006302+00:00 mx postfix/smtpd[1737]: NOQUEUE: reject: RCPT from unknown[192.0.2.9]: 554 5.7.1 <unknown[192.0.2.9]>: Client host rejected: test; from=<probe@client.stack.test> to=<root@mx.stack.test> proto=ESMTP helo=<client.stack.test>
2026-11-22T12:33:10.006439+00:00 mx postfix/smtpd[1737]: disconnect from unknown[192.0.2.9] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4
2026-11-22T12:33:10.006576+00:00 mx postfix/smtpd[1737]: connect from unknown[198.51.100.5]
# => reject 198.51.100.5
2026-11-22T12:33:10.006713+00:00 mx postfix/smtpd[1737]: NOQUEUE: reject: RCPT from unknown[198.51.100.5]: 554 5.7.1 <unknown[198.51.100.5]>: Client host rejected: net; from=<probe@client.stack.test> to=<root@mx.stack.test> proto=ESMTP helo=<client.stack.test>
2026-11-22T12:33:10.006850+00:00 mx postfix/smtpd[1737]: disconnect from unknown[198.51.100.5] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4
2026-11-22T12:33:10.006987+00:00 mx postfix/smtpd[1737]: connect from unknown[192.0.2.8]
# => accepted 192.0.2.8
2026-11-22T12:33:10.007124+00:00 mx postfix/smtpd[1737]: 9A81D20E363: client=unknown[192.0.2.8]
2026-11-22T12:33:10.007261+00:00 mx postfix/smtpd[1737]: disconnect from unknown[192.0.2.8] ehlo=1 mail=1 rcpt=1 quit=1 commands=4
2026-11-22T12:33:10.007398+00:00 mx postfix/smtpd[1737]: connect from unknown[203.0.113.3]
# => reject 203.0.113.3
2026-11-22T12:33:10.007535+00:00 mx postfix/smtpd[1737]: NOQUEUE: reject: RCPT from unknown[203.0.113.3]: 554 5.7.1 <unknown[203.0.113.3]>: Client host rejected: cidr-net; from=<probe@client.stack.test> to=<root@mx.stack.test> proto=ESMTP helo=<client.stack.test>
2026-11-22T12:33:10.007672+00:00 mx postfix/smtpd[1737]: disconnect from unknown[203.0.113.3] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4
2026-11-22T12:33:11.007809+00:00 mx postfix/smtpd[1737]: connect from unknown[198.51.100.95]
# => reject 198.51.100.95
2026-11-22T12:33:11.007946+00:00 mx postfix/smtpd[1737]: NOQUEUE: reject: RCPT from unknown[198.51.100.95]: 554 5.7.1 <unknown[198.51.100.95]>: Client host rejected: cidr-ns; from=<probe@client.stack.test> to=<root@mx.stack.test> proto=ESMTP helo=<client.stack.test>
2026-11-22T12:33:11.008083+00:00 mx postfix/smtpd[1737]: disconnect from unknown[198.51.100.95] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4
2026-11-22T12:33:11.008220+00:00 mx postfix/smtpd[1737]: connect from unknown[2001:db8::2]
# => reject 2001:db8::2
2026-11-22T12:33:11.008357+00:00 mx postfix/smtpd[1737]: NOQUEUE: reject: RCPT from unknown[2001:db8::2]: 554 5.7.1 <unknown[2001:db8::2]>: Client host rejected: cidr-v6; from=<probe@client.stack.test> to=<root@mx.stack.test> proto=ESMTP helo=<client.stack.test>
2026-11-22T12:33:11.008494+00:00 mx postfix/smtpd[1737]: disconnect from unknown[2001:db8::2] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4
2026-11-22T12:33:11.008631+00:00 mx postfix/nodelay/smtpd[2072]: connect from unknown[192.0.2.9]
# => reject 192.0.2.9
2026-11-22T12:33:11.008768+00:00 mx postfix/nodelay/smtpd[2072]: NOQUEUE: reject: CONNECT from unknown[192.0.2.9]: 554 5.7.1 <unknown[192.0.2.9]>: Client host rejected: test; proto=SMTP
2026-11-22T12:33:11.008905+00:00 mx postfix/nodelay/smtpd[2072]: disconnect from unknown[192.0.2.9] quit=1 commands=1
2026-11-22T12:33:12.009042+00:00 mx postfix/nodelay/smtpd[2072]: connect from unknown[198.51.100.5]
# => reject 198.51.100.5
2026-11-22T12:33:12.009179+00:00 mx postfix/nodelay/smtpd[2072]: NOQUEUE: reject: CONNECT from unknown[198.51.100.5]: 554 5.7.1 <unknown[198.51.100.5]>: Client host rejected: net; proto=SMTP
2026-11-22T12:33:12.009316+00:00 mx postfix/nodelay/smtpd[2072]: disconnect from unknown[198.51.100.5] quit=1 commands=1
2026-11-22T12:33:12.009453+00:00 mx postfix/smtpd[1737]: table hash:/etc/postfix/client_access(0,lock|fold_fix|utf8_request) has changed -- restarting
2026-11-22T12:33:12.009590+00:00 mx postfix/smtpd[2110]: connect from unknown[192.0.2.8]
# => reject 192.0.2.8
2026-11-22T12:33:12.009727+00:00 mx postfix/smtpd[2110]: NOQUEUE: reject: RCPT from unknown[192.0.2.8]: 554 5.7.1 <unknown[192.0.2.8]>: Client host rejected: added-later; from=<probe@client.stack.test> to=<root@mx.stack.test> proto=ESMTP helo=<client.stack.test>
2026-11-22T12:33:12.009864+00:00 mx postfix/smtpd[2110]: disconnect from unknown[192.0.2.8] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4
2026-11-22T12:33:12.010001+00:00 mx postfix/smtpd[2110]: connect from unknown[203.0.113.34]
# => accepted 203.0.113.34
2026-11-22T12:33:12.010138+00:00 mx postfix/smtpd[2110]: B152820E367: client=unknown[203.0.113.34]
2026-11-22T12:33:12.010275+00:00 mx postfix/smtpd[2110]: disconnect from unknown[203.0.113.34] ehlo=1 mail=1 rcpt=1 quit=1 commands=4
2026-11-22T12:33:13.010412+00:00 mx postfix/smtpd[2162]: connect from unknown[203.0.113.34]
# => reject 203.0.113.34
2026-11-22T12:33:13.010549+00:00 mx postfix/smtpd[2162]: NOQUEUE: reject: RCPT from unknown[203.0.113.34]: 554 5.7.1 <unknown[203.0.113.34]>: Client host rejected: cidr-added-later; from=<probe@client.stack.test> to=<root@mx.stack.test> proto=ESMTP helo=<client.stack.test>
2026-11-22T12:33:13.010686+00:00 mx postfix/smtpd[2162]: disconnect from unknown[203.0.113.34] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4
2026-11-22T12:33:04.010960+00:00 mx dovecot: auth: passwd-file(testuser,192.0.2.5): Password mismatch
2026-11-22T12:33:05.011097+00:00 mx dovecot: auth: passwd-file(testuser,192.0.2.6): Password mismatch
2026-11-22T12:33:06.011234+00:00 mx dovecot: auth: passwd-file(nobody@stack.test,2001:db8::1): unknown user
2026-11-22T12:33:06.011371+00:00 mx dovecot: auth: passwd-file(testuser,198.51.100.2): Password mismatch
2026-11-22T12:33:07.011508+00:00 mx dovecot: auth: passwd-file(testuser,2001:db8:200::2): Password mismatch
2026-11-22T12:33:39.011645+00:00 mx postfix/postfix-script[7037]: starting the Postfix mail system
2026-11-22T12:33:39.011782+00:00 mx postfix/master[7039]: daemon started -- version 3.7.11, configuration /etc/postfix
2026-11-22T12:33:39.011919+00:00 mx postfix/smtpd[7044]: connect from unknown[192.0.2.1]
2026-11-22T12:33:39.012056+00:00 mx postfix/smtpd[7044]: warning: SASL authentication failure: Password verification failed
# => saslFailure 192.0.2.1
2026-11-22T12:33:39.012193+00:00 mx postfix/smtpd[7044]: warning: unknown[192.0.2.1]: SASL PLAIN authentication failed: authentication failure, sasl_username=testuser@stack.test
# => authDisconnect 192.0.2.1
2026-11-22T12:33:39.012330+00:00 mx postfix/smtpd[7044]: disconnect from unknown[192.0.2.1] ehlo=1 auth=0/1 quit=1 commands=2/3
2026-11-22T12:33:39.012467+00:00 mx postfix/smtpd[7044]: connect from unknown[192.0.2.33]
# => messageReject 192.0.2.33
2026-11-22T12:33:39.012604+00:00 mx postfix/smtpd[7044]: NOQUEUE: reject: RCPT from unknown[192.0.2.33]: 554 5.7.1 <victim@example.org>: Relay access denied; from=<a@c.test> to=<victim@example.org> proto=ESMTP helo=<c.test>
2026-11-22T12:33:39.012741+00:00 mx postfix/smtpd[7044]: disconnect from unknown[192.0.2.33] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4
2026-11-22T12:33:39.012878+00:00 mx postfix/smtpd[7044]: connect from unknown[2001:db8::1]
# => accepted 2001:db8::1
2026-11-22T12:33:39.013015+00:00 mx postfix/smtpd[7044]: 4BA4620E3EF: client=unknown[2001:db8::1]
2026-11-22T12:33:39.013152+00:00 mx postfix/smtpd[7044]: disconnect from unknown[2001:db8::1] ehlo=1 mail=1 rcpt=1 quit=1 commands=4
2026-11-22T12:33:39.013289+00:00 mx postfix/smtpd[7044]: connect from unknown[192.0.2.9]
# => reject 192.0.2.9
2026-11-22T12:33:39.013426+00:00 mx postfix/smtpd[7044]: NOQUEUE: reject: RCPT from unknown[192.0.2.9]: 554 5.7.1 <unknown[192.0.2.9]>: Client host rejected: test; from=<a@c.test> to=<root@mx.stack.test> proto=ESMTP helo=<c.test>
2026-11-22T12:33:39.013563+00:00 mx postfix/smtpd[7044]: disconnect from unknown[192.0.2.9] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4
`;

/** The real lines, with their expected events counted into `truth`. */
function realLines(truth: GroundTruth): string[] {
  const out: string[] = [];
  let expected: { kind: string; address: string } | null = null;
  for (const line of REAL_LINES.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('# => ')) {
      const [kind = '', address = ''] = line.slice(5).split(' ');
      expected = { kind, address };
      continue;
    }
    if (expected !== null) {
      if (!isEventKind(expected.kind)) throw new Error(`REAL_LINES: unknown kind ${expected.kind}`);
      addEvent(truth, expected.address, expected.kind);
      expected = null;
    }
    out.push(line);
  }
  return out;
}

/** Scripted sessions: lines a few hundred milliseconds apart from a start time. */
class Script {
  readonly lines: string[] = [];
  private readonly stamps = new StampFormatter('rfc3339', 'mx');
  private readonly random: () => number;
  constructor(
    seed: number,
    readonly truth: GroundTruth,
  ) {
    this.random = mulberry32(seed);
  }
  /** A time (µs) inside the span, away from its ends. */
  anyTime(): number {
    const from = START.getTime() + 600_000;
    const to = END.getTime() - 600_000;
    return Math.floor((from + this.random() * (to - from)) * 1000);
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.random() * (hi - lo + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.random() * items.length)]!;
  }
  /** Writes `texts` (after "TIMESTAMP mx ") from time `t` on; returns the time after the last. */
  session(t: number, texts: ReadonlyArray<string | readonly [text: string, address: string, kind: Parameters<typeof addEvent>[2]]>): number {
    for (const item of texts) {
      t += this.int(20_000, 400_000);
      const text = typeof item === 'string' ? item : item[0];
      if (typeof item !== 'string') addEvent(this.truth, item[1], item[2]);
      this.lines.push(this.stamps.format(t) + text);
    }
    return t;
  }
}

const BOTNET = [14, 23, 38, 41, 57, 86, 102, 139].map((h) => `203.0.113.${h}`);
const V6_PAIR = ['2001:db8:bad:1::25', '2001:db8:bad:1:5054:ff:fe3a:91c'];
const TYPO_USER = { login: 'dave@example.org', address: '192.0.2.200' };
/** Appears only inside a SASL user name: never a client, never counted. */
const NAMED_ONLY = '198.51.100.250';
const TLS13 =
  'TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256';
const BOT_USERS = ['info', 'admin', 'test', 'sales', 'office', 'info@example.org', 'admin@example.org', 'support', 'postmaster'];

function scriptedOffenders(truth: GroundTruth): string[] {
  const s = new Script(4242, truth);
  // 1. a /24 whose hosts take turns at SASL LOGIN (Dovecot: "UGFzc3dvcmQ6")
  for (const address of BOTNET) {
    const sessions = s.int(11, 18); // over the default threshold of 10: the /24 gets blocked
    for (let i = 0; i < sessions; i++) {
      const tag = `postfix/submission/smtpd[${s.int(20000, 60000)}]`;
      const who = `unknown[${address}]`;
      const user = i === 2 && address === BOTNET[3] ? `unknown[${NAMED_ONLY}]` : s.pick(BOT_USERS);
      s.session(s.anyTime(), [
        `${tag}: connect from ${who}`,
        `${tag}: Anonymous TLS connection established from ${who}: ${TLS13}`,
        [`${tag}: warning: ${who}: SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username=${user}`, address, 'saslFailure'],
        [`${tag}: disconnect from ${who} ehlo=2 starttls=1 auth=0/1 quit=1 commands=4/5`, address, 'authDisconnect'],
      ]);
    }
  }
  // 2. an IPv6 /64 with two addresses, SASL PLAIN, port logging on
  for (const address of V6_PAIR) {
    const sessions = s.int(6, 9);
    for (let i = 0; i < sessions; i++) {
      const tag = `postfix/smtps/smtpd[${s.int(20000, 60000)}]`;
      const who = `unknown[${address}]:${s.int(30000, 60999)}`;
      const user = i === 1 ? `admin@[${NAMED_ONLY}]` : s.pick(BOT_USERS);
      s.session(s.anyTime(), [
        `${tag}: connect from ${who}`,
        `${tag}: Anonymous TLS connection established from ${who}: ${TLS13}`,
        [`${tag}: warning: ${who}: SASL PLAIN authentication failed: authentication failure, sasl_username=${user}`, address, 'saslFailure'],
        [`${tag}: disconnect from ${who} ehlo=1 auth=0/1 quit=1 commands=2/3`, address, 'authDisconnect'],
      ]);
    }
  }
  // 3. a user who mistypes the password three times, then logs in and sends a message
  {
    const { login, address } = TYPO_USER;
    const who = `unknown[${address}]`;
    const tag = 'postfix/submission/smtpd[31337]';
    let t = Date.parse('2026-11-21T08:12:03Z') * 1000;
    for (let i = 0; i < 3; i++) {
      t = s.session(t + 20_000_000, [
        `${tag}: connect from ${who}`,
        `${tag}: Anonymous TLS connection established from ${who}: ${TLS13}`,
        [`${tag}: warning: ${who}: SASL PLAIN authentication failed: (reason unavailable), sasl_username=${login}`, address, 'saslFailure'],
        [`${tag}: disconnect from ${who} ehlo=2 starttls=1 auth=0/1 quit=1 commands=4/5`, address, 'authDisconnect'],
      ]);
    }
    s.session(t + 30_000_000, [
      `${tag}: connect from ${who}`,
      `${tag}: Anonymous TLS connection established from ${who}: ${TLS13}`,
      [`${tag}: 9F2C420E3A1: client=${who}, sasl_method=PLAIN, sasl_username=${login}`, address, 'saslSuccess'],
      'postfix/cleanup[31340]: 9F2C420E3A1: message-id=<5b1f0c7e-3d2a-4c55-9e1b-2f6d8a4c7e01@example.org>',
      'opendkim[812]: 9F2C420E3A1: DKIM-Signature field added (s=mail, d=example.org)',
      'postfix/qmgr[1701]: 9F2C420E3A1: from=<dave@example.org>, size=2231, nrcpt=1 (queue active)',
      `${tag}: disconnect from ${who} ehlo=2 starttls=1 auth=1 mail=1 rcpt=1 data=1 quit=1 commands=8`,
      'postfix/smtp[31342]: 9F2C420E3A1: to=<erin@example.net>, relay=mx1.example.net[100.101.7.20]:25, delay=0.62, delays=0.09/0.01/0.21/0.31, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 4D1E2C0A77)',
      'postfix/qmgr[1701]: 9F2C420E3A1: removed',
    ]);
  }
  return s.lines;
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { out: { type: 'string', default: path.join('examples', 'logs') } } });
  const dir = values.out;

  const background: GroundTruth = {};
  const lines = [
    ...generateLines({ ...BACKGROUND, start: START, end: END, format: 'rfc3339' }, background),
  ];
  const scripted: GroundTruth = {};
  lines.push(...realLines(scripted), ...scriptedOffenders(scripted));
  // The scripted offenders must stand alone: the background may not use their addresses.
  for (const address of [...BOTNET, ...V6_PAIR, TYPO_USER.address, NAMED_ONLY]) {
    if (background[address] !== undefined) throw new Error(`background traffic also uses ${address}: pick another seed or address`);
  }
  const truth: GroundTruth = {};
  addTruth(truth, background);
  addTruth(truth, scripted);
  if (truth[NAMED_ONLY] !== undefined) throw new Error(`${NAMED_ONLY} must never be counted`);
  for (const line of lines) {
    if (/(?:^|[^\d.])127\.\d+\.\d+\.\d+|\[::1\]/.test(line)) throw new Error(`loopback address in an example line: ${line}`);
  }

  const stamp = (line: string) => line.slice(0, STAMP_LENGTH);
  lines.sort((a, b) => (stamp(a) < stamp(b) ? -1 : stamp(a) > stamp(b) ? 1 : 0)); // stable: sessions keep their order
  const files: Array<{ name: string; lines: string[] }> = [
    { name: 'mail.log.2.gz', lines: lines.filter((l) => stamp(l) < ROTATED_AT[0]!) },
    { name: 'mail.log.1', lines: lines.filter((l) => stamp(l) >= ROTATED_AT[0]! && stamp(l) < ROTATED_AT[1]!) },
    { name: 'mail.log', lines: lines.filter((l) => stamp(l) >= ROTATED_AT[1]!) },
  ];

  await mkdir(dir, { recursive: true });
  for (const file of files) {
    const text = Buffer.from(`${file.lines.join('\n')}\n`, 'latin1');
    await writeFile(path.join(dir, file.name), file.name.endsWith('.gz') ? gzipSync(text, { level: 9 }) : text);
    process.stdout.write(`${path.join(dir, file.name)}: ${file.lines.length} lines, ${stamp(file.lines[0]!)} .. ${stamp(file.lines.at(-1)!)}\n`);
  }
  await writeFile(path.join(dir, 'truth.json'), `${JSON.stringify(sortTruth(truth), null, 2)}\n`);
  const offenders = Object.entries(truth)
    .map(([address, c]) => [address, (c.saslFailure ?? 0) + (c.reject ?? 0)] as const)
    .filter(([, n]) => n > 0);
  process.stdout.write(`${path.join(dir, 'truth.json')}: ${Object.keys(truth).length} addresses, ${offenders.length} with saslFailure + reject > 0\n`);
}

main(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(`make-examples: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
