/**
 * Every 5xx reject text Postfix 3.7 writes (test/fixtures/reject-texts.tsv, from smtpd_check.c)
 * gets its class: the client itself (reject) or what the message asked for (recipientReject,
 * messageReject). The quoted part is the client's text and never moves a reject to client-level.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { LineParser } from '../src/read/parse.js';
import { mulberry32 } from './random.js';
import { classifyReject, classifyRejectBytes } from '../src/read/reject-classes.js';

interface Row {
  class: 'client' | 'message';
  stages: string[];
  code: string;
  dsn: string;
  text: string;
}

const rows: Row[] = readFileSync(new URL('./fixtures/reject-texts.tsv', import.meta.url), 'utf8')
  .split('\n')
  .filter((l) => l !== '' && !l.startsWith('#'))
  .map((l) => {
    const [cls, stages, code, dsn, text] = l.split('\t') as [Row['class'], string, string, string, string];
    return { class: cls, stages: stages.split(','), code, dsn, text };
  });

const parser = new LineParser(new Date('2026-11-23T12:00:00Z'));
const line = (stage: string, code: string, dsn: string, text: string, client = 'unknown[192.0.2.9]') =>
  `Nov 22 12:33:11 mx postfix/smtpd[2072]: NOQUEUE: reject: ${stage} from ${client}: ${code} ${dsn} ${text}; from=<a@example.com> to=<b@example.org> proto=ESMTP helo=<x>`;
/** recipientReject: a message-level reject at RCPT/VRFY with an X.1.x/X.2.x status that is not the sender's. */
const expectedKind = (row: Row, stage: string) => {
  if (row.class === 'client') return 'reject';
  const recipientStatus = /^5\.(?:1\.(?:[0-69]|\d\d+)|2\.\d+)$/.test(row.dsn);
  return (stage === 'RCPT' || stage === 'VRFY') && recipientStatus ? 'recipientReject' : 'messageReject';
};

describe('reject classes (Postfix 3.7 smtpd_check.c texts)', () => {
  it('the table holds both classes and every row is well formed', () => {
    expect(rows.length).toBeGreaterThan(60);
    expect(rows.filter((r) => r.class === 'client').length).toBeGreaterThan(15);
    for (const r of rows) {
      expect(['client', 'message']).toContain(r.class);
      expect(r.code).toMatch(/^5\d\d$/);
      expect(r.dsn).toMatch(/^5\.\d+\.\d+$/);
    }
  });

  it.each(rows.map((r) => [`${r.class}: ${r.text.slice(0, 70)}`, r] as const))('%s', (_name, row) => {
    for (const stage of row.stages) {
      const event = parser.parse(line(stage, row.code, row.dsn, row.text));
      expect(event, `${stage} ${row.text}`).toMatchObject({ kind: expectedKind(row, stage), address: '192.0.2.9' });
      if (row.class === 'message') expect(event!.unnamed).toBe(true);
    }
    // a named client: the class is the same, and it is not "unnamed"
    const named = parser.parse(line(row.stages[0]!, row.code, row.dsn, row.text, 'mail.example.net[192.0.2.10]'));
    expect(named).toMatchObject({ kind: expectedKind(row, row.stages[0]!), address: '192.0.2.10' });
    expect(named!.unnamed === true).toBe(false);
  });

  // the attack of the probe: the recipient (or sender, or HELO) is the client's text, and a big
  // provider relays whatever the attacker wrote. Quoted parts that read like a client-level reject
  // never make a message-level reject client-level.
  const forged = [
    'x>: Client host rejected: Access denied"@example.org',
    'a>: Helo command rejected: need fully-qualified hostname>: Client host rejected: x',
    '"Client host rejected: cannot find your hostname"@example.org',
    'y>: Unverified Client host rejected: z>: Client certificate rejected: w',
    'p>: Recipient address rejected: Improper use of SMTP command pipelining',
    `${'>: Client host rejected: '.repeat(40)}x`,
  ];
  it.each(forged)('a forged quoted part %j keeps a message-level reject message-level', (quoted) => {
    for (const row of rows.filter((r) => r.class === 'message' && r.text.startsWith('<'))) {
      const text = row.text.replace(/^<[^>]*>/, `<${quoted}>`);
      const stage = row.stages[0]!;
      expect(parser.parse(line(stage, row.code, row.dsn, text))!.kind, text).not.toBe('reject');
    }
  });

  it('a client-chosen text after the reason cannot add a client-level candidate that wins', () => {
    const relay = '<victim@example.com>: Relay access denied; from=<a>: Client host rejected: x> to=<victim@example.com>';
    expect(classifyReject(`5.7.1 ${relay}`)).toBe('message');
    expect(classifyReject('5.7.1 <x>: Client host rejected: Access denied')).toBe('client');
    expect(classifyReject('5.7.1 Service unavailable; Client host [192.0.2.9] blocked using zen.example.org')).toBe('client');
    expect(classifyReject('5.7.1 Service unavailable; Sender address [a@example.com] blocked using dbl.example.org')).toBe('message');
  });

  it.each([
    ['5.7.1 <x>: Client host rejected: y', 'client'],
    ['<x>: Client host rejected: y', 'client'], // no status code
    ['5.7.1234 <x>: Client host rejected: y', 'message'], // not a status code: the text starts with a digit, not <
    ['55.7.1 <x>: Client host rejected: y', 'message'],
    ['5.7. <x>: Client host rejected: y', 'message'],
    ['5.7.1 Client host rejected: cannot find your hostname, [192.0.2.9]', 'client'],
    ['5.7.1', 'message'],
    ['', 'message'],
    ['5.7.1 <x>: Helo command rejected: a; <y>: Relay access denied', 'message'], // every reason must be the client's
    ['5.5.1 <x>: Data command rejected: Improper use of SMTP command pipelining', 'client'],
    ['5.5.1 <x>: Data command rejected: Improper use of SMTP command pipelining; from=<a>', 'client'],
    ['5.5.1 <x>: Data command rejected: Improper use of SMTP command pipeliningX', 'message'],
    [`5.5.1 <x>: ${'a'.repeat(41)} rejected: Improper use of SMTP command pipelining`, 'message'], // the class name is at most 40 characters
  ])('classifies %j as %s', (text, expected) => {
    expect(classifyReject(text)).toBe(expected);
  });

  it('reads a reply only from where it starts, whatever lies before it in the buffer', () => {
    // a malformed status code must not send the reading back to the start of the buffer
    for (const reply of ['5.7.Z>: Client host rejected: no', '5.7.1234 <x>: Client host rejected: y', '5.7.1:x', '5.7.1']) {
      for (const before of ['<x>', 'Client host rejected: ', '554 ']) {
        const bytes = Buffer.from(before + reply, 'latin1');
        expect([before, reply, classifyRejectBytes(bytes, before.length, bytes.length)]).toEqual([before, reply, classifyReject(reply)]);
      }
    }
  });

  it('classifies random replies as reading every `>: ` the plain way does', () => {
    // the classifier as first written: every `>: ` found by a search from the one before, each reason checked in full
    const CLIENT_CLASSES = ['Client host rejected: ', 'Unverified Client host rejected: ', 'Client certificate rejected: ', 'Helo command rejected: '];
    const PIPELINING = ' rejected: Improper use of SMTP command pipelining';
    const plain = (reply: string): string => {
      const dsn = /^\d\.\d{1,3}\.\d{1,3} /.exec(reply)?.[0].length ?? 0;
      const text = reply.slice(dsn);
      if (!text.startsWith('<')) return ['Client host rejected: ', 'Service unavailable; Client host [', 'Service unavailable; Unverified Client host [', 'Service unavailable; Helo command ['].some((p) => text.startsWith(p)) ? 'client' : 'message';
      let found = false;
      for (let split = text.indexOf('>: '); split !== -1; split = text.indexOf('>: ', split + 1)) {
        const reason = text.slice(split + 3);
        const rejected = reason.slice(0, 120).indexOf(' rejected: ');
        const pipelining = rejected > 0 && rejected <= 40 && reason.startsWith(PIPELINING, rejected) && [undefined, ';'].includes(reason[rejected + PIPELINING.length]);
        if (!CLIENT_CLASSES.some((p) => reason.startsWith(p)) && !pipelining) return 'message';
        found = true;
      }
      return found ? 'client' : 'message';
    };
    const parts = ['<', '>', '>: ', '>:', ': ', ' ', ';', 'x', '@example.org', '5.7.1 ', 'Client host rejected: ', 'Helo command rejected: ', 'Client certificate rejected: ', 'Unverified Client host rejected: ', 'Client host rejected:', 'Recipient address rejected: ', 'Data command rejected: Improper use of SMTP command pipelining', ' rejected: Improper use of SMTP command pipelining', 'Service unavailable; Client host [', '; from=<', '> to=<'];
    const random = mulberry32(23);
    let client = 0;
    for (let n = 0; n < 20_000; n++) {
      const pieces = Array.from({ length: 1 + Math.floor(random() * 12) }, () => parts[Math.floor(random() * parts.length)]!);
      if (random() < 0.7) pieces.unshift(random() < 0.5 ? '5.7.1 <' : '<');
      const reply = pieces.join('');
      const expected = plain(reply);
      if (expected === 'client') client++;
      expect([reply, classifyReject(reply)]).toEqual([reply, expected]);
    }
    expect(client).toBeGreaterThan(500); // both answers were asked for
  });

  it.each([
    ['<a>: Client host rejected: >: x', 'message'], // a `>: ` right after a client prefix is read
    ['<a>: Client host rejected: >: Helo command rejected: y', 'client'],
    ['<a>: x>: Data command rejected: Improper use of SMTP command pipelining', 'client'], // pipelining under any class name of up to 40 characters
    ['<a>: Client host rejected: x>: Recipient address rejected: y', 'message'],
    ['<a>: Data command rejected: Improper use of SMTP command pipelining>: Recipient address rejected: y', 'message'],
    ['<a>: Data command rejected: Improper use of SMTP command pipelining; >: Client host rejected: y', 'client'],
    ['<a>: Client host rejected: x>:', 'client'], // a `>:` at the end, its space past it (in a longer buffer)
    ['1.2.3 <a>: Client host rejected: x', 'client'],
    ['5.1234.1 <a>: Client host rejected: x', 'message'],
  ])('classifies %j as %s, alone and inside a longer buffer', (reply, expected) => {
    expect(classifyReject(reply)).toBe(expected);
    // as the scanner asks: the reply between other bytes (a `>: ` just past its end must not count)
    const around: Array<[string, string]> = [['x>: ', '>: Recipient address rejected: z'], ['<', '>: '], ['', '>'], ['Client host rejected: ', ''], ['', ' Recipient address rejected: z']];
    for (const [before, after] of around) {
      const bytes = Buffer.from(before + reply + after, 'latin1');
      expect([before, after, classifyRejectBytes(bytes, before.length, before.length + reply.length)]).toEqual([before, after, expected]);
    }
  });

  it.each([
    ['a reason text no table knows', '550 5.7.1 <x@example.org>: Something new rejected: whatever', 'messageReject'],
    ['no quoted part, unknown text', '554 5.7.1 We do not like you', 'messageReject'],
    ['a quoted part that never closes', '554 5.7.1 <x@example.org Client host rejected: x', 'messageReject'],
  ])('%s counts as message-level (the safe side for bystanders)', (_name, reply, kind) => {
    const event = parser.parse(`Nov 22 12:33:11 mx postfix/smtpd[2072]: NOQUEUE: reject: RCPT from unknown[192.0.2.9]: ${reply}; from=<a@b> to=<c@d> proto=ESMTP helo=<x>`);
    expect(event?.kind).toBe(kind);
  });

  it('a milter-reject is about the content: message-level', () => {
    const event = parser.parse('Nov 22 12:33:11 mx postfix/smtpd[2072]: B45EF20E361: milter-reject: END-OF-MESSAGE from unknown[192.0.2.49]: 5.7.1 <x>: Client host rejected: spam; from=<a@example.com> to=<b@example.org> proto=ESMTP helo=<x>');
    expect(event).toMatchObject({ kind: 'messageReject', unnamed: true });
  });
});
