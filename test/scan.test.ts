import { describe, expect, it } from 'vitest';
import { LineParser } from '../src/read/parse.js';
import { LogScanner, MAX_LINE_BYTES } from '../src/read/scan.js';
import { Tally } from '../src/count/tally.js';
import { NOW, scanEvents } from './helpers.js';

const sasl = (address: string, user = 'admin') =>
  `2026-11-22T11:37:32.010856+00:00 mx postfix/smtpd[1234]: warning: unknown[${address}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username=${user}`;
const ordinary = (i: number) =>
  `2026-11-22T11:37:32.010856+00:00 mx postfix/qmgr[1701]: 4ABCDEF${i}: from=<someone${i}@example.com>, size=4500, nrcpt=1 (queue active)`;

function scanCounters(data: Buffer, blockBytes?: number) {
  const scanner = new LogScanner(new LineParser(NOW), new Tally(), blockBytes);
  scanner.push(data);
  return scanner.end();
}

describe('LogScanner', () => {
  it('counts lines and bytes, with or without a final newline', () => {
    const text = [ordinary(1), sasl('192.0.2.1'), ordinary(2)].join('\n');
    expect(scanCounters(Buffer.from(text))).toEqual({ bytes: text.length, lines: 3, events: 1, oversizedLines: 0 });
    expect(scanCounters(Buffer.from(text + '\n')).lines).toBe(3);
    expect(scanCounters(Buffer.from('')).lines).toBe(0);
  });

  it('finds an event on a last line without a newline', () => {
    expect(scanEvents(`${ordinary(1)}\n${sasl('192.0.2.2')}`)).toEqual(['saslFailure 192.0.2.2']);
  });

  it('reads CRLF line endings', () => {
    const text = [ordinary(1), sasl('192.0.2.3'), sasl('2001:db8::3'), ''].join('\r\n');
    expect(scanEvents(text)).toEqual(['saslFailure 192.0.2.3', 'saslFailure 2001:db8::3']);
  });

  it('counts identical lines inside one log each time', () => {
    expect(scanEvents([sasl('192.0.2.4'), sasl('192.0.2.4'), sasl('192.0.2.4'), ''].join('\n'))).toEqual(
      Array(3).fill('saslFailure 192.0.2.4'),
    );
  });

  it('gives the same events whatever the block size', () => {
    const lines: string[] = [];
    for (let i = 0; i < 500; i++) lines.push(i % 7 === 0 ? sasl(`192.0.2.${i % 250}`) : ordinary(i));
    const text = lines.join('\n') + '\n';
    const reference = scanEvents(text);
    expect(reference.length).toBe(72);
    for (const block of [16, 100, 333, 4096]) expect(scanEvents(text, block)).toEqual(reference);
  });

  it('survives a 1 MB line, binary junk and invalid UTF-8, and still finds the real events around them', () => {
    const junk = Buffer.alloc(1 << 20);
    for (let i = 0; i < junk.length; i++) junk[i] = (i * 7919) % 256 === 10 ? 0 : (i * 7919) % 256;
    const data = Buffer.concat([
      Buffer.from(sasl('192.0.2.5') + '\n'),
      Buffer.from('warning ject: _method AUTH f PREGRE '.repeat(30_000) + '\n'), // ~1 MB of pattern bait
      junk,
      Buffer.from('\n'),
      Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0x0a]),
      Buffer.from(sasl('192.0.2.6', 'b\xe4d\xff\xfeuser') + '\n', 'latin1'),
      Buffer.from('\x00\x00' + sasl('198.51.100.9') + '\n', 'latin1'), // an event only after junk: not a line shape
    ]);
    expect(scanEvents(data)).toEqual(['saslFailure 192.0.2.5', 'saslFailure 192.0.2.6']);
    expect(scanEvents(data, 4096)).toEqual(['saslFailure 192.0.2.5', 'saslFailure 192.0.2.6']);
  });

  it('skips a line longer than the limit without losing the lines after it', () => {
    const huge = Buffer.alloc(MAX_LINE_BYTES + 10, 0x61);
    const data = Buffer.concat([Buffer.from(sasl('192.0.2.7') + '\n'), huge, Buffer.from('\n' + sasl('192.0.2.8') + '\n')]);
    const tally = new Tally();
    const scanner = new LogScanner(new LineParser(NOW), tally, 1 << 20);
    scanner.push(data);
    const counters = scanner.end();
    expect(counters).toMatchObject({ lines: 3, events: 2, oversizedLines: 1 });
    expect(tally.addressList().sort()).toEqual(['192.0.2.7', '192.0.2.8']);
  });
});
