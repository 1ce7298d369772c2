/**
 * JSON on stdout without the whole text in memory: `JSON.stringify(value, null, 2)` and a newline,
 * byte for byte, but a top-level array's elements stringified BATCH at a time and the pieces
 * written in chunks that wait for the stream to drain. `scan --json` over a flood lists a hundred
 * thousand addresses: one string of it is 125 MB, and its copy on the way out as much again.
 */
import { once } from 'node:events';
import type { Writable } from 'node:stream';

const CHUNK = 1 << 16;
/**
 * Elements stringified at once, inside `{ "a": [...] }`: each one on its own and then indented
 * made ~6 times the output in garbage (a flood's 40 MB of JSON, 270 MB); much larger batches are
 * slower again in V8. (An element's toJSON, which nothing here has, would be given its index in
 * the batch as its key.)
 */
const BATCH = 64;
/** `{\n  "a": [\n` and `\n  ]\n}`. */
const WRAP_HEAD = 11;
const WRAP_TAIL = 6;

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
        for (let k = 0; k < v.length; k += BATCH) {
          // as the value of a key of an object, the elements come out indented as here: the rest is cut off
          const text = JSON.stringify({ a: v.slice(k, k + BATCH) }, null, 2);
          await put(`${text.slice(WRAP_HEAD, -WRAP_TAIL)}${k + BATCH < v.length ? ',' : ''}\n`);
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
