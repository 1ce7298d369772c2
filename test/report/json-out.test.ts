/** writeJson writes what JSON.stringify(value, null, 2) does, byte for byte, in pieces that wait for the stream. */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { writeJson } from '../../src/report/json-out.js';

async function written(value: object, highWaterMark = 16): Promise<string> {
  const parts: string[] = [];
  const out = new Writable({
    highWaterMark,
    write: (chunk, _encoding, done) => {
      parts.push(String(chunk));
      setImmediate(done); // slow: write() returns false and the writer must wait for 'drain'
    },
  });
  await writeJson(value, out);
  await new Promise<void>((resolve) => out.end(resolve));
  return parts.join('');
}

describe('writeJson', () => {
  const big = Array.from({ length: 5000 }, (_, i) => ({ address: `192.0.2.${i % 256}`, events: { reject: i, saslFailure: 0 }, total: i, when: new Date(Date.UTC(2026, 10, 22, 0, 0, i)), note: i % 7 === 0 ? 'a\nb "quoted"' : undefined }));
  it.each([
    ['empty object', {}],
    ['flat values', { a: 1, b: 'two', c: null, d: true }],
    ['empty and nested arrays, objects', { list: [], nested: [[1, [2]], { x: [] }], object: { k: { deep: [1, 2] } }, e: {} }],
    ['undefined, functions and symbols left out; undefined in an array is null', { gone: undefined, f: () => 1, s: Symbol('x'), list: [undefined, 1] }],
    ['a long top-level array with dates and strings holding newlines', { addresses: big, blocks: [{ cidr: '192.0.2.0/24' }], window: { from: null, to: 'now' } }],
    ['arrays of every length around a batch (64), with empty, null, undefined and function elements', Object.fromEntries([1, 63, 64, 65, 128, 129].map((n) => [`n${n}`, Array.from({ length: n }, (_, i) => [[], null, undefined, () => i, {}, { i, s: 'x\ny' }][i % 6])]))],
  ])('%s', async (_name, value) => {
    expect(await written(value)).toBe(`${JSON.stringify(value, null, 2)}\n`);
  });
});
