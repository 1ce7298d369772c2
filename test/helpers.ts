import { EVENT_KINDS, type EventKind } from '../src/kinds.js';
import { LineParser, type MailEvent } from '../src/parse.js';
import { LogScanner } from '../src/scan.js';
import { ALL_TIME, summarise, Tally } from '../src/tally.js';

export const NOW = new Date('2026-11-23T12:00:00Z');

/** Every event a buffer of log text gives through the block scanner, as sorted "kind address" strings. */
export function scanEvents(text: string | Buffer, blockBytes?: number): string[] {
  const tally = new Tally();
  const scanner = new LogScanner(new LineParser(NOW), tally, blockBytes);
  scanner.push(typeof text === 'string' ? Buffer.from(text, 'latin1') : text);
  scanner.end();
  return tallyEvents(tally);
}

export function tallyEvents(tally: Tally): string[] {
  const out: string[] = [];
  for (const summary of summarise(tally, ALL_TIME, ['saslFailure'])) {
    for (const kind of EVENT_KINDS) {
      for (let i = 0; i < summary.events[kind]; i++) out.push(`${kind} ${summary.address}`);
    }
  }
  return out.sort();
}

/** `kind address time`, then ` count=N` (a line that stands for N events), ` user=NAME` (SASL lines that name one) and ` unnamed` (recipient rejects of `unknown[ADDR]`). */
export const describeEvent = (e: MailEvent | null): string =>
  e === null
    ? 'none'
    : `${e.kind} ${e.address} ${new Date(e.time).toISOString()}${e.count === undefined ? '' : ` count=${e.count}`}${e.user === undefined ? '' : ` user=${e.user}`}${e.unnamed === true ? ' unnamed' : ''}`;

export type { EventKind };
