/**
 * The command line: flags -> options, then hand over. Errors are caught here,
 * once: a SmtpguardError prints one line and sets its exit code; anything else is
 * a bug (exit 1, stack trace with --debug).
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ExitCode, SmtpguardError, usageError } from './errors.js';
import { DEFAULT_COUNTED_KINDS, EVENT_KINDS, isEventKind, type EventKind } from './kinds.js';
import { parseNow, parseWindow } from './duration.js';
import { DEFAULT_LOGS } from './sources.js';

const DEFAULT_WINDOW = '24h';

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

function parseKinds(text: string): EventKind[] {
  const kinds = text.split(',').map((k) => k.trim()).filter((k) => k !== '');
  for (const kind of kinds) {
    if (!isEventKind(kind)) throw new InvalidArgumentError(`unknown kind "${kind}" (kinds: ${EVENT_KINDS.join(', ')})`);
  }
  if (kinds.length === 0) throw new InvalidArgumentError('name at least one kind');
  return kinds as EventKind[];
}

function parseCount(text: string): number {
  if (!/^\d+$/.test(text)) throw new InvalidArgumentError('expected a whole number');
  return Number(text);
}

function buildProgram(): Command {
  const program = new Command('smtpguard')
    .description('Block Postfix SASL brute-forcers and repeat offenders in ufw and a Postfix access map.')
    .version(version(), '-V, --version')
    .option('--debug', 'print stack traces for errors')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  program
    .command('scan')
    .description('read the mail logs and show who is attacking the server (changes nothing)')
    .option('--log <path-or-glob>', `mail log to read, repeatable; - reads stdin (default: ${DEFAULT_LOGS.join(' and ')})`, collect)
    .option('--window <duration|all>', 'count events in this window ending at --now (15m, 24h, 7d, all)', DEFAULT_WINDOW)
    .option('--now <iso8601>', 'end of the window; also gives the year of year-less log lines (default: now)')
    .addOption(
      new Option('--kinds <list>', 'comma-separated event kinds that count toward an offender\'s total')
        .default(DEFAULT_COUNTED_KINDS.join(','))
        .argParser(parseKinds),
    )
    .option('--top <n>', 'rows in the table (0: all)', parseCount, 20)
    .option('--json', 'print one JSON object instead of the table')
    .action(async (opts: { log?: string[]; window: string; now?: string; kinds: EventKind[] | string; json?: boolean; top: number }) => {
      const { scanCommand } = await import('./commands/scan.js');
      await scanCommand(
        {
          logs: opts.log ?? DEFAULT_LOGS,
          usingDefaultLogs: opts.log === undefined,
          windowMs: parseWindow(opts.window),
          now: opts.now === undefined ? new Date() : parseNow(opts.now),
          countedKinds: typeof opts.kinds === 'string' ? parseKinds(opts.kinds) : opts.kinds,
          json: opts.json === true,
          top: opts.top,
        },
        { stdin: process.stdin, stdout: process.stdout, warn: (message) => process.stderr.write(`smtpguard: warning: ${message}\n`) },
      );
    });
  return program;
}

export async function main(argv: readonly string[]): Promise<void> {
  const debug = argv.includes('--debug');
  try {
    await buildProgram().parseAsync(argv, { from: 'user' });
  } catch (error) {
    process.exitCode = report(error, debug);
  }
}

function report(error: unknown, debug: boolean): number {
  if (error instanceof CommanderError) {
    // commander has printed the message already; --help and --version end here too
    return error.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
  }
  if (error instanceof InvalidArgumentError) error = usageError(error.message);
  if (error instanceof SmtpguardError) {
    process.stderr.write(`smtpguard: ${error.message}${error.hint === undefined ? '' : ` -- ${error.hint}`}\n`);
    if (debug) process.stderr.write(`${error.stack ?? ''}\n`);
    return error.exitCode;
  }
  process.stderr.write(`smtpguard: internal error: ${error instanceof Error ? error.message : String(error)}\n`);
  process.stderr.write(debug && error instanceof Error ? `${error.stack ?? ''}\n` : 'smtpguard: run again with --debug for the stack trace, and please report it\n');
  return ExitCode.internal;
}

await main(process.argv.slice(2));
