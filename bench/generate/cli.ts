/**
 * The generator's command line (after `tsc -p tsconfig.bench.json`; `npm run bench:generate -- ...`):
 *   node dist-bench/bench/generate/cli.js --lines N --seed S --out FILE [--truth FILE.json]
 *     [--format rfc3339|traditional|maillog] [--start ISO] [--end ISO] [--attack-share 0.1] [--host mx]
 */
import { realpathSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { writeLog } from './generator.js';
import { DEFAULT_START, type GenerateOptions } from './options.js';
import { sortTruth } from './truth.js';

const USAGE = `usage: node dist-bench/bench/generate/cli.js --lines N --out FILE [--seed S] [--truth FILE.json]
       [--format rfc3339|traditional|maillog] [--start ISO] [--end ISO] [--attack-share 0.1] [--host mx]`;

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      lines: { type: 'string' },
      seed: { type: 'string', default: '1' },
      out: { type: 'string' },
      truth: { type: 'string' },
      format: { type: 'string', default: 'rfc3339' },
      start: { type: 'string', default: DEFAULT_START },
      end: { type: 'string' },
      'attack-share': { type: 'string' },
      host: { type: 'string', default: 'mx' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const number = (name: string, text: string | undefined): number => {
    const n = Number(text);
    if (text === undefined || text.trim() === '' || !Number.isFinite(n)) throw new Error(`--${name} needs a number, got ${String(text)}\n${USAGE}`);
    return n;
  };
  const date = (name: string, text: string): Date => {
    const d = new Date(text);
    if (Number.isNaN(d.getTime())) throw new Error(`--${name} needs an ISO 8601 date, got ${text}`);
    return d;
  };
  if (values.out === undefined) throw new Error(`--out is required\n${USAGE}`);
  const format = values.format;
  if (format !== 'rfc3339' && format !== 'traditional' && format !== 'maillog') {
    throw new Error(`--format must be rfc3339, traditional or maillog, got ${format}`);
  }
  const options: GenerateOptions = {
    lines: number('lines', values.lines),
    seed: number('seed', values.seed),
    start: date('start', values.start),
    format,
    host: values.host,
  };
  if (values.end !== undefined) options.end = date('end', values.end);
  if (values['attack-share'] !== undefined) options.attackShare = number('attack-share', values['attack-share']);

  const started = performance.now();
  const truth = await writeLog(values.out, options);
  const seconds = (performance.now() - started) / 1000;
  let events = 0;
  for (const counts of Object.values(truth)) for (const n of Object.values(counts)) events += n;
  if (values.truth !== undefined) await writeFile(values.truth, `${JSON.stringify(sortTruth(truth), null, 2)}\n`);
  process.stderr.write(
    `wrote ${options.lines} lines to ${values.out} in ${seconds.toFixed(2)} s (${Math.round(options.lines / seconds)} lines/s); ` +
      `${events} events from ${Object.keys(truth).length} addresses${values.truth === undefined ? '' : ` -> ${values.truth}`}\n`,
  );
}

function isMain(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(script)).href;
  } catch {
    return false;
  }
}

if (isMain()) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`generate: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  });
}
