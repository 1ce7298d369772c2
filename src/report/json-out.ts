/**
 * JSON on stdout without the whole text in memory: `JSON.stringify(value, null, 2)` and a newline,
 * byte for byte, but each element of a top-level array stringified on its own and the pieces
 * written in chunks that wait for the stream to drain. `scan --json` over a flood lists a hundred
 * thousand addresses: one string of it is 125 MB, and its copy on the way out as much again.
 */
import { once } from 'node:events';
import type { Writable } from 'node:stream';

const CHUNK = 1 << 16;

export async function writeJson(value: object, out: Writable): Promise<void> {
  let pending = '';
  const put = async (text: string) => {
    pending += text;
    if (pending.length < CHUNK) return;
    const chunk = pending;
    pending = '';
    if (!out.write(chunk)) await once(out, 'drain');
  };
  // the keys JSON.stringify writes: not undefined, functions or symbols
  const entries = Object.entries(value).filter(([, v]) => v !== undefined && typeof v !== 'function' && typeof v !== 'symbol');
  if (entries.length === 0) await put('{}');
  else {
    await put('{\n');
    for (const [i, [key, v]] of entries.entries()) {
      await put(`  ${JSON.stringify(key)}: `);
      if (Array.isArray(v) && v.length > 0) {
        await put('[\n');
        for (let k = 0; k < v.length; k++) {
          const element = JSON.stringify(v[k], null, 2) ?? 'null'; // as in an array: undefined is null
          await put(`    ${element.replaceAll('\n', '\n    ')}${k < v.length - 1 ? ',' : ''}\n`);
        }
        await put('  ]');
      } else await put(JSON.stringify(v, null, 2).replaceAll('\n', '\n  '));
      await put(i < entries.length - 1 ? ',\n' : '\n');
    }
    await put('}');
  }
  pending += '\n';
  if (!out.write(pending)) await once(out, 'drain');
}
