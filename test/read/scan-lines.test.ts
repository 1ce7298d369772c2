/** The scanner's numbered lines (explain): each event with its own line and number, whatever the block and chunk sizes. */
import { describe, expect, it } from 'vitest';
import { LineParser } from '../../src/read/parse.js';
import { LogScanner } from '../../src/read/scan.js';
import { NOW, saslLines } from '../helpers.js';

function numbered(text: string, blockBytes: number, chunk: number): string[] {
  const seen: string[] = [];
  const scanner = new LogScanner(new LineParser(NOW), { add: () => undefined, line: (event, line, n) => seen.push(`${n} ${event.address} ${line}`) }, blockBytes);
  const bytes = Buffer.from(text, 'latin1');
  for (let at = 0; at < bytes.length; at += chunk) scanner.push(bytes.subarray(at, at + chunk));
  scanner.end();
  return seen;
}

describe('numbered lines', () => {
  const noise = (i: number) => `2026-11-22T11:37:3${i % 10}.000000+00:00 mx postfix/qmgr[9]: 4ABC${i}: removed\n`;
  const lines: string[] = [];
  for (let i = 0; i < 60; i++) lines.push(i % 7 === 3 ? saslLines(`192.0.2.${i}`, 1) : noise(i));
  const lf = lines.join('');
  const crlf = lf.replaceAll('\n', '\r\n');
  const truth = lines.flatMap((l, i) => (l.includes('SASL') ? [`${i + 1} 192.0.2.${i} ${l.trimEnd()}`] : []));

  it.each([64, 256, 4096])('block of %i bytes, chunks of 1, 13 and 1000 bytes, LF and CRLF, with and without a last newline', (block) => {
    for (const chunk of [1, 13, 1000]) {
      expect(numbered(lf, block, chunk)).toEqual(truth);
      expect(numbered(crlf, block, chunk)).toEqual(truth);
      expect(numbered(lf.slice(0, -1), block, chunk)).toEqual(truth);
    }
  });

  it('counts the events as the unnumbered scanner does', () => {
    const plain = new LogScanner(new LineParser(NOW), { add: () => undefined });
    plain.push(Buffer.from(lf));
    const withLines = new LogScanner(new LineParser(NOW), { add: () => undefined, line: () => undefined });
    withLines.push(Buffer.from(lf));
    expect(withLines.end()).toEqual(plain.end());
  });
});
