/** The bundled examples against the ground truth their generator wrote (bench/make-examples.ts). */
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { collectEvents } from '../src/scan/collect.js';
import { EVENT_KINDS } from '../src/read/kinds.js';
import { ALL_TIME } from '../src/count/tally.js';
import { summarise } from '../src/count/summary.js';
import { NOW } from './helpers.js';

const dir = fileURLToPath(new URL('../examples/logs/', import.meta.url));

it('examples/logs: every address and every kind counted exactly as generated', async () => {
  const truth = JSON.parse(readFileSync(`${dir}truth.json`, 'utf8')) as Record<string, Record<string, number>>;
  const warnings: string[] = [];
  const collected = await collectEvents({ logs: [`${dir}mail.log*`], usingDefaultLogs: false, now: NOW, warn: (w) => warnings.push(w), stdin: Readable.from([]), stateDir: null, saveState: false, window: ALL_TIME });
  const found: Record<string, Record<string, number>> = {};
  for (const s of summarise(collected.tally, ALL_TIME, EVENT_KINDS)) {
    found[s.address] = Object.fromEntries(Object.entries(s.events).filter(([, n]) => n > 0));
  }
  expect(found).toEqual(truth);
  expect(Object.keys(found).length).toBeGreaterThan(50);
  expect(collected.sources.map((s) => s.path.replace(dir, ''))).toEqual(['mail.log.2.gz', 'mail.log.1', 'mail.log']);
  expect(warnings).toEqual([]);
});
