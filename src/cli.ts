/**
 * The command line: flags -> settings, then hand over. Errors are caught here,
 * once: a SmtpguardError prints one line and sets its exit code; anything else is
 * a bug (exit 1, stack trace with --debug). Heavy modules load only in the command
 * that needs them, so `--version` and `--help` stay quick.
 */
import { readFile } from 'node:fs/promises';
import { Command, CommanderError, Option } from 'commander';
import { parseNow } from './duration.js';
import { ExitCode, SmtpguardError, usageError } from './errors.js';
import { DEFAULT_CONFIG_FILE, DEFINITIONS, givenSettings, renderSettings, resolveSettings, type FlagValues, type Resolved } from './settings.js';
import type { Io } from './commands/common.js';
import { version } from './version.js';

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

const io: Io = {
  stdin: process.stdin,
  stdout: process.stdout,
  warn: (message) => process.stderr.write(`smtpguard: warning: ${message}\n`),
};

/** scan and status say what they chose to read; the cron job (run) stays silent. */
const withNotes: Io = { ...io, note: (message) => process.stderr.write(`smtpguard: ${message}\n`) };

/** Every setting as a flag; no commander defaults, so "not given" is visible and the config file can fill in. */
function addSettingOptions(command: Command): Command {
  for (const d of DEFINITIONS) {
    if (d.arg === null) {
      command.option(`--${d.flag}`, `${d.description} (default: ${d.show(d.default as never)})`);
      command.option(`--no-${d.flag}`);
    } else {
      const shown = d.show(d.default as never);
      const option = new Option(`--${d.flag} ${d.arg}`, d.description + (shown === '' ? '' : ` (default: ${shown})`));
      if (d.key === 'log' || d.key === 'allow') option.argParser(collect);
      command.addOption(option);
    }
  }
  return command
    .option('--config <file>', `config file of KEY=value lines (default: ${DEFAULT_CONFIG_FILE})`)
    .option('--now <iso8601>', 'end of the window, and the year of year-less log lines (default: the current time)');
}

interface CommonFlags extends FlagValues {
  config?: string;
  now?: string;
}

interface Loaded extends Resolved {
  /** The config file read (or that would be), and whether it exists. */
  file: string;
  fileExists: boolean;
  fileText: string | null;
}

/** `creates`: install (and allow) create a missing --config file. */
async function settingsFrom(flags: CommonFlags, creates = false): Promise<Loaded> {
  const file = flags.config ?? DEFAULT_CONFIG_FILE;
  let text: string | null = null;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' || (flags.config !== undefined && !creates)) {
      const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : (error as Error).message;
      throw new SmtpguardError(`cannot read the config file ${file}: ${why}`, {
        hint: flags.config === undefined ? 'fix its permissions (or run as root)' : 'check the --config path',
      });
    }
  }
  if (text !== null) {
    const { checkTrustedPaths, configPaths } = await import('./trust.js');
    await checkTrustedPaths(configPaths(file));
  }
  const given: FlagValues = {};
  for (const d of DEFINITIONS) if (flags[d.key] !== undefined) given[d.key] = flags[d.key];
  return { ...resolveSettings(given, process.env, text, file), file, fileExists: text !== null, fileText: text };
}

const nowOf = (flags: CommonFlags): Date => (flags.now === undefined ? new Date() : parseNow(flags.now));

function buildProgram(): Command {
  const program = new Command('smtpguard')
    .description('Block Postfix SASL brute-forcers and repeat offenders in ufw and a Postfix client access map.')
    .version(version(), '-V, --version')
    .option('--debug', 'print stack traces for errors')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  addSettingOptions(
    program
      .command('run', { isDefault: true })
      .description('scan, decide, rewrite the generated ufw and Postfix sections, reload what changed (the cron job; the default)')
      .option('--dry-run', 'show the blocks, the diff of each file and the commands; change nothing')
      .option('--json', 'print the plan as JSON')
      .option('-v, --verbose', 'say so also when nothing changed'),
  ).action(async (flags: CommonFlags & { dryRun?: boolean; json?: boolean; verbose?: boolean }) => {
    const { settings, origins } = await settingsFrom(flags);
    const { runCommand } = await import('./commands/run.js');
    await runCommand(settings, { now: nowOf(flags), defaultLogs: origins.log.from === 'default', dryRun: flags.dryRun === true, json: flags.json === true, verbose: flags.verbose === true }, io);
  });

  addSettingOptions(
    program
      .command('scan')
      .description('read the mail logs and show who is attacking the server, and what run would block (changes nothing)')
      .option('--top <n>', 'rows in the table (0: all)', '20')
      .option('--json', 'print one JSON object instead of the table'),
  ).action(async (flags: CommonFlags & { top: string; json?: boolean }) => {
    if (!/^\d+$/.test(flags.top)) throw usageError(`--top ${flags.top} is not a whole number`, 'use e.g. --top 50, or --top 0 for all');
    const { settings, origins } = await settingsFrom(flags);
    const { scanCommand } = await import('./commands/scan.js');
    await scanCommand(settings, { now: nowOf(flags), defaultLogs: origins.log.from === 'default', json: flags.json === true, top: Number(flags.top) }, withNotes);
  });

  addSettingOptions(
    program
      .command('status')
      .description('what is blocked now and why, packets dropped, clients close to the threshold, events per hour (read-only)')
      .option('--json', 'print one JSON object'),
  ).action(async (flags: CommonFlags & { json?: boolean }) => {
    const { settings, origins } = await settingsFrom(flags);
    const { statusCommand } = await import('./commands/status.js');
    await statusCommand(settings, { now: nowOf(flags), defaultLogs: origins.log.from === 'default', json: flags.json === true }, withNotes);
  });

  for (const uninstall of [false, true]) {
    const name = uninstall ? 'uninstall' : 'install';
    const command = program
      .command(name)
      .description(
        uninstall
          ? 'remove exactly what install added (ufw chains and rules, the map section, the Postfix restriction, the schedule)'
          : 'set this server up: ufw chains and markers, the access map, check_client_access in smtpd_client_restrictions, a cron job (or --timer)',
      )
      .option('--dry-run', 'show the changes and commands; change nothing')
      .option('--cron-file <file>', 'the cron job', '/etc/cron.d/smtpguard')
      .option('--systemd-dir <dir>', 'where the systemd units go', '/etc/systemd/system');
    if (!uninstall) command.option('--timer', 'a systemd service and timer instead of the cron job');
    addSettingOptions(command).action(async (flags: CommonFlags & { dryRun?: boolean; timer?: boolean; cronFile: string; systemdDir: string }) => {
      const loaded = await settingsFrom(flags, !uninstall);
      const { installCommand } = await import('./commands/install.js');
      await installCommand(
        loaded.settings,
        {
          uninstall,
          dryRun: flags.dryRun === true,
          timer: flags.timer === true,
          cronFile: flags.cronFile,
          systemdDir: flags.systemdDir,
          config: { file: loaded.file, text: loaded.fileText, given: givenSettings(loaded) },
        },
        io,
      );
    });
  }

  addSettingOptions(
    program.command('config').description('print the settings in effect as a config file, each with where it comes from (flag, environment, file, default)'),
  ).action(async (flags: CommonFlags) => {
    const loaded = await settingsFrom(flags);
    const { findDefaultMapType } = await import('./system.js');
    const defaultMapType = loaded.settings.mapType === null ? await findDefaultMapType(loaded.settings.postfixConfigDir) : undefined;
    io.stdout.write(renderSettings(loaded, { file: loaded.file, fileExists: loaded.fileExists, ...(defaultMapType === undefined ? {} : { defaultMapType }) }));
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
    // commander has printed its message already; --help and --version end here too
    return error.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
  }
  if (error instanceof SmtpguardError) {
    process.stderr.write(`smtpguard: ${error.message}${error.hint === undefined ? '' : ` -- ${error.hint}`}\n`);
    if (debug) process.stderr.write(`${error.stack ?? ''}\n`);
    return error.exitCode;
  }
  process.stderr.write(`smtpguard: internal error: ${error instanceof Error ? error.message : String(error)}\n`);
  process.stderr.write(debug && error instanceof Error ? `${error.stack ?? ''}\n` : 'smtpguard: run again with --debug for the stack trace, and please report it\n');
  return ExitCode.internal;
}
