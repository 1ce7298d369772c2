/**
 * The parser's fast path (src/read/parse-bytes.ts) against parse.ts, the definition: whenever
 * the fast path answers, parse.ts must give the same event; and on the shapes it is for, it must
 * answer (else it is dead code and floods are slow again). Real lines from the fixtures, every
 * reject text Postfix writes, edge cases of each field, and 30,000 random edits of them.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { LineParser, type MailEvent } from '../../src/read/parse.js';
import { newByteEvent, readLineBytes, StampMemo } from '../../src/read/parse-bytes.js';
import { EVENT_KINDS } from '../../src/read/kinds.js';
import { LogScanner } from '../../src/read/scan.js';
import { addressWords, wordsText } from '../../src/address.js';
import { Tally } from '../../src/count/tally.js';
import { tallyEvents } from '../helpers.js';
import { mulberry32 } from '../random.js';

const NOW = new Date('2026-11-23T12:00:00Z');

/** The fast path's answer as parse.ts would write it, or null when it leaves the line to parse.ts. */
function fast(line: string, memo = new StampMemo()): MailEvent | null {
  const bytes = Buffer.from(line, 'latin1');
  const out = newByteEvent();
  if (!readLineBytes(bytes, 0, bytes.length, out, memo)) return null;
  const kind = EVENT_KINDS[out.kind]!;
  const event: MailEvent = { kind, address: wordsText(out.words, 0), time: out.time };
  if (out.user !== undefined) event.user = out.user;
  if (kind === 'recipientReject' || kind === 'messageReject') event.unnamed = out.unnamed;
  return event;
}

/** What parse.ts gives, in the same form (its address as words and back, as the tally keeps it). */
function slow(line: string): MailEvent | null {
  const event = new LineParser(NOW).parse(line);
  if (event === null) return null;
  const words = new Int32Array(4);
  expect(addressWords(event.address, words, 0)).toBe(true);
  return { ...event, address: wordsText(words, 0) };
}

/** Holds the fast path to parse.ts on `line`; true when the fast path answered. */
function agrees(line: string): boolean {
  const answer = fast(line);
  if (answer !== null) expect({ line, event: answer }).toEqual({ line, event: slow(line) });
  return answer !== null;
}

const stamp = '2026-11-22T11:37:32.010856+00:00';
const reject = (client = 'unknown[192.0.2.9]', text = '554 5.7.1 <unknown[192.0.2.9]>: Client host rejected: Access denied', stage = 'RCPT', queue = 'NOQUEUE') =>
  `${stamp} mx postfix/smtpd[2072]: ${queue}: reject: ${stage} from ${client}: ${text}; from=<a@example.com> to=<b@example.org> proto=ESMTP helo=<x>`;
const sasl = (client = 'unknown[192.0.2.9]', tail = ', sasl_username=admin') =>
  `${stamp} mx postfix/smtpd[1234]: warning: ${client}: SASL LOGIN authentication failed: UGFzc3dvcmQ6${tail}`;

const fixtureLines = readFileSync(new URL('../fixtures/events.log', import.meta.url), 'latin1')
  .split('\n')
  .filter((l) => l !== '' && !l.startsWith('#'));

const rejectTexts = readFileSync(new URL('../fixtures/reject-texts.tsv', import.meta.url), 'utf8')
  .split('\n')
  .filter((l) => l !== '' && !l.startsWith('#'))
  .map((l) => l.split('\t') as [string, string, string, string, string]);

describe('the fast path of the parser', () => {
  it('gives what parse.ts gives on every fixture line, and answers for the RFC 3339 rejects and SASL failures among them', () => {
    let answered = 0;
    for (const line of fixtureLines) if (agrees(line)) answered++;
    expect(answered).toBeGreaterThanOrEqual(4); // the fixture's RFC 3339 rejects and SASL failures
  });

  it('classifies every reject text Postfix writes as parse.ts does, at every stage, 5xx and 4xx', () => {
    for (const [, stages, code, dsn, text] of rejectTexts) {
      for (const stage of stages.split(',')) {
        for (const reply of [`${code} ${dsn} ${text}`, `4${code.slice(1)} 4${dsn.slice(1)} ${text}`]) {
          expect(agrees(reject('unknown[192.0.2.9]', reply, stage))).toBe(true);
          expect(agrees(reject('mail.example.com[192.0.2.9]:25', reply, stage))).toBe(true);
        }
      }
    }
  });

  it('answers for the flood shapes, with the event parse.ts gives', () => {
    const answered = [
      reject(),
      reject('unknown[2001:db8::7]'),
      reject('host.example[2001:DB8:0:0:0:0:0:7]'), // not canonical: made canonical
      reject('unknown[::ffff:192.0.2.7]'), // IPv4-mapped: IPv4
      reject('unknown[fe80::1%eth0]'), // a link-local zone is dropped
      reject(undefined, '550 5.1.1 <x@example.org>: Recipient address rejected: User unknown in local recipient table'),
      reject(undefined, '550 5.1.1 <x@example.org>: Recipient address rejected: User unknown', 'VRFY'),
      reject(undefined, '554 5.7.1 <x@example.org>: Relay access denied', 'MAIL'),
      reject(undefined, '450 4.7.1 <x>: Helo command rejected: Host not found'),
      reject(undefined, undefined, 'END-OF-MESSAGE', 'dT3LkQ0x2zBQdW'), // a long queue ID starting with d
      reject(undefined, undefined, 'DATA', 'wT3LkQ0x2zBQdW'), // and with w
      reject(undefined, undefined, 'DATA', '4ABCDEF12'),
      sasl(),
      sasl('unknown[2001:db8::9]', ''),
      sasl('mail.example.com[192.0.2.9]:587', ', sasl_username='), // an empty username: none
      sasl(undefined, `, sasl_username=${'u'.repeat(300)}`), // cut at MAX_USERNAME
      sasl(undefined, ', sasl_username=b\xe4d\xff user, sasl_username=again'),
      `2026-11-22T11:37:32Z mx postfix/smtpd[1]: ${reject().split(': ').slice(1).join(': ')}`,
      `2026-11-22T11:37:32-0530 mx postfix-in/submission/smtpd: warning: a[192.0.2.1]: SASL PLAIN authentication failed: `,
      `2026-11-22T11:37:32.5+01:00 mx postfix/smtpd/smtpd[9]: warning: a[192.0.2.1]: SASL X_Y.Z-1 authentication failed:`,
      `2026-11-22T11:37:32.123456789+14:00 host.example.com postfix/smtps/smtpd[77]: NOQUEUE: reject: RCPT from a[192.0.2.1]:4711: 554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org`,
    ];
    for (const line of answered) expect({ line, answered: agrees(line) }).toEqual({ line, answered: true });
    expect(slow(reject())).toMatchObject({ kind: 'reject', address: '192.0.2.9', time: Date.parse('2026-11-22T11:37:32.010Z') });
    expect(slow(reject(undefined, undefined, 'END-OF-MESSAGE', 'dT3LkQ0x2zBQdW'))).toMatchObject({ kind: 'reject' });
  });

  it('leaves to parse.ts what is not its own, and never answers differently', () => {
    const left = [
      reject(undefined, undefined, 'RCPT', 'NOQUEUE').replace(': reject:', ': milter-reject:'),
      reject().replace('postfix/smtpd[2072]', 'postfix/postscreen[2072]'),
      reject().replace('2026-11-22T11:37:32.010856+00:00', 'Nov 22 11:37:32'),
      reject().replace('T11:37:32', 'T24:00:00'),
      reject().replace('T11:37:32', 'T11:37:60'),
      reject().replace('.010856', '.0108561234'), // ten digits of fraction: no stamp
      reject().replace('.010856', '.'),
      reject().replace(' mx ', '\tmx '),
      reject().replace(' mx ', ' m\xa0x '),
      reject('unknown[192.0.2.300]'),
      reject('unknown[192.0.2.09]'),
      reject('unknown[unknown]'),
      reject('unknown[192.0.2.9]x'),
      reject('[192.0.2.9]'),
      sasl().replace('UGFzc3dvcmQ6, sasl_username=admin', 'Connection lost to authentication server'),
      sasl().replace('warning: ', 'warning:  '),
      `${stamp} mx postfix/smtpd[1]: warning: Connection rate limit exceeded: 31 from a[192.0.2.1] for service smtp`,
      `${stamp} mx postfix/smtpd[1]: disconnect from a[192.0.2.1] ehlo=1 auth=0/3 quit=1 commands=2/5`,
      `${stamp} mx postfix/smtpd[1]: lost connection after AUTH from a[192.0.2.1]`,
      `${stamp} mx postfix/smtpd[1]: 4ABCDEF12: client=a[192.0.2.1], sasl_method=PLAIN, sasl_username=u`,
    ];
    for (const line of left) {
      expect({ line, answered: fast(line) }).toEqual({ line, answered: null });
    }
    // both say the same where parse.ts finds an event in them
    expect(slow(left[0]!)).toMatchObject({ kind: 'messageReject' });
    expect(slow(left[4]!)).toBeNull();
  });

  it('agrees with parse.ts on 30,000 random edits of the flood shapes', () => {
    const random = mulberry32(23);
    const alphabet = [' ', '\t', '[', ']', ':', '/', '.', '-', '+', 'Z', 'T', '0', '5', '9', 'a', 'f', 'A', 'd', 'w', '<', '>', ',', '\xa0', '\x85', '\x00'];
    const seeds = [reject(), reject('unknown[2001:db8::7]'), reject(undefined, '550 5.1.1 <x@example.org>: Recipient address rejected: User unknown'), sasl(), sasl('h[2001:db8::1]:25', '')];
    let answered = 0;
    for (let n = 0; n < 30_000; n++) {
      let line = seeds[n % seeds.length]!;
      for (let edits = 1 + Math.floor(random() * 3); edits > 0; edits--) {
        const at = Math.floor(random() * (random() < 0.7 ? 110 : line.length)); // most edits in the header and client field
        const c = alphabet[Math.floor(random() * alphabet.length)]!;
        const op = random();
        line = op < 0.4 ? line.slice(0, at) + c + line.slice(at + 1) : op < 0.7 ? line.slice(0, at) + c + line.slice(at) : line.slice(0, at) + line.slice(at + 1);
      }
      if (agrees(line)) answered++;
    }
    expect(answered).toBeGreaterThan(4_000);
  });

  it('reads nothing past the end it is given', () => {
    const whole = reject();
    const out = newByteEvent();
    // the line cut anywhere, with the rest still in the buffer behind it: an answer only for the whole line
    const bytes = Buffer.from(whole, 'latin1');
    for (let end = 0; end < bytes.length; end++) {
      const answered = readLineBytes(bytes, 0, end, out, new StampMemo());
      expect({ end, answered }).toEqual({ end, answered: fast(whole.slice(0, end)) !== null });
      if (answered) expect({ end, event: fast(whole.slice(0, end)) }).toEqual({ end, event: slow(whole.slice(0, end)) });
    }
  });

  it('keeps the minute of the last stamp without mixing zones or minutes', () => {
    const memo = new StampMemo();
    const lines = [
      reject(),
      reject().replace('T11:37:32.010856+00:00', 'T11:37:59.999+00:00'),
      reject().replace('T11:37:32.010856+00:00', 'T11:37:59.999+01:00'),
      reject().replace('T11:37:32.010856+00:00', 'T11:37:59.999+0100'),
      reject().replace('T11:37:32.010856+00:00', 'T11:38:00Z'),
      reject().replace('2026-11-22T11:37:32.010856+00:00', '2025-11-22T11:38:00Z'),
      reject().replace('T11:37:32.010856+00:00', 'T11:37:01-00:00'),
    ];
    for (const line of lines) expect({ line, time: fast(line, memo)?.time }).toEqual({ line, time: slow(line)?.time });
  });
});

describe('the scanner on a flood', () => {
  it('counts the same events line by line (a flood) as by its patterns (ordinary text), in blocks of any size', () => {
    const random = mulberry32(7);
    const ordinary = (i: number) => `${stamp} mx postfix/qmgr[1701]: 4ABCDEF${i}: from=<someone${i}@example.com>, size=4500, nrcpt=1 (queue active)`;
    const lines: string[] = [];
    // an ordinary stretch, a flood, and ordinary again: the scanner switches into line-by-line reading and out
    for (let i = 0; i < 30_000; i++) {
      const flood = i >= 8_000 && i < 20_000;
      const pick = random();
      if (flood ? pick < 0.9 : pick < 0.05) lines.push(pick < 0.03 ? sasl(`unknown[192.0.2.${i % 250}]`) : reject(`unknown[198.51.${i % 200}.${i % 250}]`));
      else if (pick < 0.97) lines.push(ordinary(i));
      else lines.push(`${stamp} mx postfix/smtpd[1]: disconnect from a[203.0.113.${i % 250}] ehlo=1 auth=0/${1 + (i % 3)} quit=1 commands=2/5`);
    }
    const text = lines.join('\n') + '\n';
    // the reference: every line through parse.ts alone
    const parser = new LineParser(NOW);
    const reference = new Tally();
    for (const line of lines) {
      const event = parser.parse(line);
      if (event !== null) reference.add(event);
    }
    const expected = tallyEvents(reference);
    expect(expected.length).toBeGreaterThan(11_000);
    for (const block of [64 << 10, 1 << 20, 4 << 20]) {
      const tally = new Tally();
      const scanner = new LogScanner(new LineParser(NOW), tally, block);
      scanner.push(Buffer.from(text, 'latin1'));
      expect(scanner.end().events).toBe(lines.filter((l) => parser.parse(l) !== null).length);
      expect(tallyEvents(tally)).toEqual(expected);
    }
  });
});
