/**
 * The command line: flags -> settings, then hand over. Errors are caught here,
 * once: a SmtpguardError prints one line and sets its exit code; anything else is
 * a bug (exit 1, stack trace with --debug). Heavy modules load only in the command
 * that needs them, so `--version` and `--help` stay quick.
 */
import { readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { parseNow } from '../duration.js';
import { EXIT_MEANINGS, ExitCode, SmtpguardError, usageError } from '../errors.js';
import { controlCharacterProblem } from '../text.js';
import { DEFAULT_CONFIG_FILE, DEFINITIONS, givenAllow, givenSettings, renderSettings, resolveSettings, type FlagValues, type Resolved } from './settings.js';
import type { Io } from './commands/common.js';
import { version } from '../version.js';
import { TerminalProgress } from '../report/progress.js';
import { setTallyBound } from '../count/tally.js';

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

interface OutputFlags {
  quiet?: boolean;
  verbose?: boolean;
}

/** The command's progress line, if it has one: stopped before an error is reported. */
let progressLine: TerminalProgress | null = null;

/**
 * -q: errors only; -v: also the notes the cron job keeps to itself. scan and status say what they
 * chose to read unless -q. `progress`: a progress line on a terminal's stderr (scan, run), erased
 * before any warning or note.
 */
function ioFor(flags: OutputFlags, notes: boolean, progress = false): Io {
  const quiet = flags.quiet === true;
  const line = progress ? TerminalProgress.for(process.stderr, process.env, quiet) : null;
  progressLine = line;
  const say = (text: string) => {
    line?.clear();
    process.stderr.write(text);
  };
  return {
    stdin: process.stdin,
    stdout: process.stdout,
    warn: quiet ? () => undefined : (message) => say(`smtpguard: warning: ${message}\n`),
    ...(quiet || !(notes || flags.verbose === true) ? {} : { note: (message: string) => say(`smtpguard: ${message}\n`) }),
    ...(line === null ? {} : { progress: line }),
  };
}

/** What `--no-X` does, for the help. */
const NEGATIONS: Readonly<Record<string, string>> = {
  journal: "never read the journal, only --log files",
  state: 'read every log in full each time; keep no scan state',
  reload: 'only write the files: no postmap, postfix reload or ufw reload',
  cutSessions: 'leave the SMTP sessions of new blocks open until the clients disconnect',
};

/** The settings a read-only command uses; the others are accepted (config, environment) but not listed in its help. */
const SCAN_KEYS = new Set(['log', 'window', 'kinds', 'threshold', 'threshold6', 'ipv6Prefix', 'ipv6Subnet', 'ipv6SubnetPrefixes', 'subnetHosts', 'allow', 'maxBlocks', 'trapUsers', 'banTime', 'banFactor', 'banTimeMax', 'recidiveWindow', 'postfixConfigDir', 'stateDir', 'state', 'journal', 'journalDirectory', 'journalUnit']);
const STATUS_KEYS = new Set([...SCAN_KEYS, 'ufwRules', 'ufw6Rules', 'ufwChain', 'ufw6Chain']);

/** Every setting as a flag; no commander defaults, so "not given" is visible and the config file can fill in. */
function addSettingOptions(command: Command, used: ReadonlySet<string> | null = null): Command {
  for (const d of DEFINITIONS) {
    const hidden = used !== null && !used.has(d.key);
    if (d.arg === null) {
      const on = new Option(`--${d.flag}`, `${d.description} (default: ${d.show(d.default as never)})`);
      const off = new Option(`--no-${d.flag}`, NEGATIONS[d.key] ?? `the opposite of --${d.flag}`);
      if (hidden) {
        on.hideHelp();
        off.hideHelp();
      }
      command.addOption(on).addOption(off);
    } else {
      const shown = d.show(d.default as never);
      const option = new Option(`--${d.flag} ${d.arg}`, d.description + (shown === '' ? '' : ` (default: ${shown})`));
      if (d.key === 'log' || d.key === 'allow') option.argParser(collect);
      if (hidden) option.hideHelp();
      command.addOption(option);
    }
  }
  return command
    .option('--config <file>', `config file of KEY=value lines (default: ${DEFAULT_CONFIG_FILE})`)
    .option('--now <iso8601>', 'end of the window, and the year of year-less log lines (default: the current time)')
    .option('-q, --quiet', 'print only errors: no warnings, no notes')
    .option('-v, --verbose', 'also print the notes (what was read, why), and for run a line when nothing changed');
}

const examples = (...lines: string[]): string => `\nExamples:\n${lines.map((l) => `  ${l}`).join('\n')}\n`;

const EXIT_CODES = `\nExit status:\n${Object.entries(EXIT_MEANINGS).map(([code, meaning]) => `  ${code}  ${meaning}`).join('\n')}\n`;

interface CommonFlags extends FlagValues, OutputFlags {
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
  const control = controlCharacterProblem(file);
  if (control !== null) throw usageError(`--config ${JSON.stringify(file).slice(1, -1)}: ${control}`, 'give the path of a config file whose name has no control characters');
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
    const { checkTrustedPaths, configPaths } = await import('../trust.js');
    await checkTrustedPaths(configPaths(file));
  }
  const given: FlagValues = {};
  for (const d of DEFINITIONS) if (flags[d.key] !== undefined) given[d.key] = flags[d.key];
  const resolved = resolveSettings(given, process.env, text, file);
  const { maxTracked, threshold, threshold6, kinds } = resolved.settings;
  setTallyBound({ limit: 10 * maxTracked, offender: Math.min(threshold, threshold6), counted: kinds }); // every tally this run makes (count/tally.ts compact)
  return { ...resolved, file, fileExists: text !== null, fileText: text };
}

const nowOf = (flags: CommonFlags): Date => (flags.now === undefined ? new Date() : parseNow(flags.now));

/** Extra words after a command: most often a glob the shell expanded because it was not quoted. */
function refuseExtraArguments(command: Command): void {
  const extra = command.args.slice(command.registeredArguments.length);
  if (extra.length === 0) return;
  const looksExpanded = extra.some((a) => a.includes('/') || /\.(\d+|gz)$/.test(a));
  throw usageError(
    `unexpected argument${extra.length === 1 ? '' : 's'} for '${command.name()}': ${extra.join(' ')}`,
    looksExpanded
      ? `these look like files the shell expanded from an unquoted glob: quote it, e.g. --log '/var/log/mail.log*'`
      : `see "smtpguard ${command.name()} --help"`,
  );
}

/**
 * Every flag value and argument of a command may reach a generated file (a cron line, a unit,
 * the config file, overrides.json): none may hold a control character. One check for all of
 * them, before any command runs (settings from the environment and the file: resolveSettings).
 */
function refuseControlCharacters(command: Command): void {
  const seen: Array<[string, unknown]> = [...command.args.map((a, i): [string, unknown] => [`argument ${i + 1}`, a])];
  for (const [name, value] of Object.entries(command.optsWithGlobals())) {
    const flag = `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
    for (const v of Array.isArray(value) ? value : [value]) seen.push([flag, v]);
  }
  for (const [name, value] of seen) {
    if (typeof value !== 'string') continue;
    const problem = controlCharacterProblem(value);
    if (problem !== null) throw usageError(`${name} ${JSON.stringify(value).slice(1, -1)}: ${problem}`, 'give the value without newlines or other control characters');
  }
}

/**
 * A clock read from a file of milliseconds (the wall clock until it holds one). A read that finds
 * no time (the file being rewritten) keeps the last one: the wall clock, weeks after the log's
 * time, once made a follower record bans that its replayed week could never let expire.
 */
function fileClock(file: string): () => number {
  let last = Number.NaN;
  return () => {
    try {
      const ms = Number(readFileSync(file, 'utf8'));
      if (Number.isFinite(ms) && ms > 0) last = ms;
    } catch {
      // unreadable for a moment: as empty
    }
    return Number.isNaN(last) ? Date.now() : last;
  };
}

function buildProgram(): Command {
  const program = new Command('smtpguard')
    .description('Block Postfix SASL brute-forcers and repeat offenders in ufw and a Postfix client access map.')
    .version(version(), '-V, --version')
    .option('--debug', 'print stack traces for errors')
    .option('--config <file>', `config file (default: ${DEFAULT_CONFIG_FILE})`)
    // the program's options only before the command: "smtpguard run --config F" is run's --config
    .enablePositionalOptions()
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .addHelpText('after', examples('smtpguard                 # what is blocked, when it last ran; changes nothing', 'smtpguard scan --log /var/log/mail.log', 'smtpguard install --threshold 5 --allow 192.0.2.0/24'));
  program.hook('preAction', (_program, command) => {
    refuseExtraArguments(command);
    refuseControlCharacters(command);
  });
  program.action(async (flags: { config?: string }) => {
    let loaded: Resolved;
    let problem: string | null = null;
    try {
      loaded = await settingsFrom({ ...(flags.config === undefined ? {} : { config: flags.config }) });
    } catch (error) {
      if (!(error instanceof SmtpguardError)) throw error;
      problem = error.message;
      loaded = resolveSettings({}, {}, null, DEFAULT_CONFIG_FILE);
    }
    const { summaryCommand } = await import('./commands/summary.js');
    const commands = program.commands.map((c) => ({ name: c.name(), description: c.description().replace(/ \([^)]*\)$/, '') }));
    await summaryCommand(loaded.settings, { version: version(), commands, settingsProblem: problem }, ioFor({}, false));
  });

  addSettingOptions(
    program
      .command('run')
      .description('scan, decide, rewrite the generated ufw and Postfix sections, reload what changed (the cron job)')
      .option('--dry-run', 'show the blocks, the diff of each file and the commands; change nothing')
      .option('--json', 'print the plan as JSON'),
  )
    .addHelpText('after', EXIT_CODES + examples('smtpguard run --dry-run', 'smtpguard run --config /etc/smtpguard/smtpguard.conf   # what the cron job runs', 'smtpguard run --json --dry-run | jq .blocks'))
    .action(async (flags: CommonFlags & { dryRun?: boolean; json?: boolean }) => {
      const { settings, origins } = await settingsFrom(flags);
      const { runCommand } = await import('./commands/run.js');
      await runCommand(settings, { now: nowOf(flags), defaultLogs: origins.log.from === 'default', dryRun: flags.dryRun === true, json: flags.json === true, verbose: flags.verbose === true }, ioFor(flags, false, true));
    });

  addSettingOptions(
    program
      .command('follow')
      .description("run's decisions applied as Postfix writes the log, within a second; runs until stopped (README \"Block within a second\")"),
  )
    .addHelpText('after', EXIT_CODES + examples('smtpguard follow --config /etc/smtpguard/smtpguard.conf --firewall nftables', 'kill -HUP PID   # read the config file again', 'kill PID        # finish the apply in progress, save the state, exit 0'))
    .action(async (flags: CommonFlags) => {
      if (flags.now !== undefined) throw usageError('follow runs on the clock: --now is for run, scan and status', 'leave --now out');
      const { settings, origins } = await settingsFrom(flags);
      const { followCommand } = await import('./commands/follow.js');
      await followCommand(
        settings,
        {
          defaultLogs: origins.log.from === 'default',
          // a replay's clock (bench/follow-week.ts): the decisions' time, read from a file the replay writes
          ...(process.env.BENCH_FOLLOW_CLOCK_FILE === undefined ? {} : { now: fileClock(process.env.BENCH_FOLLOW_CLOCK_FILE) }),
          reread: async () => {
            const again = await settingsFrom(flags);
            return { settings: again.settings, defaultLogs: again.origins.log.from === 'default' };
          },
        },
        ioFor(flags, false),
      );
    });

  addSettingOptions(
    program
      .command('scan')
      .description('read the mail logs and show who is attacking the server, and what run would block (changes nothing)')
      .option('--top <n>', 'rows in the table, 0 for all (default: 20)')
      .option('--json', 'print one JSON object instead of the table'),
    SCAN_KEYS,
  )
    .addHelpText('after', examples("smtpguard scan --log '/var/log/mail.log*' --window 7d", 'smtpguard scan --top 0 --json', 'zcat old.log.gz | smtpguard scan --log - --window all'))
    .action(async (flags: CommonFlags & { top?: string; json?: boolean }) => {
      const top = flags.top ?? '20';
      if (!/^\d+$/.test(top)) throw usageError(`--top ${top} is not a whole number`, 'use e.g. --top 50, or --top 0 for all');
      const { settings, origins } = await settingsFrom(flags);
      const { scanCommand } = await import('./commands/scan.js');
      await scanCommand(settings, { now: nowOf(flags), defaultLogs: origins.log.from === 'default', json: flags.json === true, top: Number(top) }, ioFor(flags, true, true));
    });

  addSettingOptions(
    program
      .command('status')
      .description('what is blocked now and why, whether the firewall has it, packets dropped, clients close to the threshold (read-only)')
      .option('--json', 'print one JSON object'),
    STATUS_KEYS,
  )
    .addHelpText('after', examples('smtpguard status', 'smtpguard status --json | jq .blocks'))
    .action(async (flags: CommonFlags & { json?: boolean }) => {
      const { settings, origins } = await settingsFrom(flags);
      const { statusCommand } = await import('./commands/status.js');
      await statusCommand(settings, { now: nowOf(flags), defaultLogs: origins.log.from === 'default', json: flags.json === true }, ioFor(flags, true));
    });

  addVerbs(program);

  for (const uninstall of [false, true]) {
    const name = uninstall ? 'uninstall' : 'install';
    const command = program
      .command(name)
      .description(
        uninstall
          ? 'remove exactly what install added (ufw chains and rules, the map section, the Postfix restriction, the schedule)'
          : 'set this server up: ufw chains and markers, the access map, check_client_access, the config file, a cron job (or --timer)',
      )
      .option('--dry-run', 'show the changes and commands; change nothing')
      .option('--cron-file <file>', 'the cron job (default: /etc/cron.d/smtpguard)')
      .option('--systemd-dir <dir>', 'where the systemd units go (default: /etc/systemd/system)')
      .option('--man-dir <dir>', 'where the manual page smtpguard.1 goes (default: /usr/local/share/man/man1)')
      .option('--completion-dir <dir>', 'where the bash completion goes (default: /etc/bash_completion.d)');
    if (!uninstall) {
      command.option('--timer', 'a systemd service and timer instead of the cron job');
      command.option('--follow', 'smtpguard follow as a service (smtpguard-follow.service) instead of the cron job: blocks within a second');
    }
    command.addHelpText(
      'after',
      uninstall
        ? examples('smtpguard uninstall --dry-run', 'smtpguard uninstall')
        : examples('smtpguard install --dry-run', 'smtpguard install --threshold 5 --allow 192.0.2.0/24   # kept in the config file for the job', 'smtpguard install --firewall nftables --follow   # the follower as a service (or --timer: a systemd timer)'),
    );
    addSettingOptions(command).action(async (flags: CommonFlags & { dryRun?: boolean; timer?: boolean; follow?: boolean; cronFile?: string; systemdDir?: string; manDir?: string; completionDir?: string }) => {
      if (flags.timer === true && flags.follow === true) throw usageError('--timer and --follow: choose one', 'the follower does the work of the timer; use --follow alone (README "Block within a second")');
      const loaded = await settingsFrom(flags, !uninstall);
      const { installCommand } = await import('./commands/install.js');
      const { ADMIN_LOCK_WAIT_MS, withRunLock } = await import('./commands/locked.js');
      // under the run lock: a cron run never meets a half-done install, or puts back what uninstall just took out
      await withRunLock(loaded.settings, flags.dryRun === true, () => installCommand(
        loaded.settings,
        {
          uninstall,
          dryRun: flags.dryRun === true,
          timer: flags.timer === true,
          follow: flags.follow === true,
          cronFile: flags.cronFile ?? '/etc/cron.d/smtpguard',
          systemdDir: flags.systemdDir ?? '/etc/systemd/system',
          manDir: flags.manDir ?? '/usr/local/share/man/man1',
          completionDir: flags.completionDir ?? '/etc/bash_completion.d',
          config: { file: loaded.file, text: loaded.fileText, given: givenSettings(loaded), allow: givenAllow(loaded) },
        },
        ioFor(flags, false),
      ), ADMIN_LOCK_WAIT_MS);
    });
  }

  addSettingOptions(
    program
      .command('load-firewall')
      .description("put the firewall backend's recorded blocks in force, each with the time its ban has left (what the nftables boot unit runs)"),
  )
    .addHelpText('after', examples('smtpguard load-firewall --config /etc/smtpguard/smtpguard.conf   # what smtpguard-nftables.service runs at boot'))
    .action(async (flags: CommonFlags) => {
      const { settings } = await settingsFrom(flags);
      const { loadFirewallCommand } = await import('./commands/load-firewall.js');
      await loadFirewallCommand(settings, ioFor(flags, false));
    });

  addSettingOptions(
    program.command('config').description('print the settings in effect as a config file, each with where it comes from (flag, environment, file, default)'),
  )
    .addHelpText('after', examples('smtpguard config', 'smtpguard config > /etc/smtpguard/smtpguard.conf.new'))
    .action(async (flags: CommonFlags) => {
      const loaded = await settingsFrom(flags);
      const { findDefaultMapType } = await import('./system.js');
      const defaultMapType = loaded.settings.mapType === null ? await findDefaultMapType(loaded.settings.postfixConfigDir) : undefined;
      process.stdout.write(renderSettings(loaded, { file: loaded.file, fileExists: loaded.fileExists, ...(defaultMapType === undefined ? {} : { defaultMapType }) }));
    });

  for (const command of program.commands) {
    command.addOption(new Option('--debug', 'print stack traces for errors').hideHelp());
    command.allowExcessArguments(true); // refused in preAction, with a hint for an unquoted glob
  }
  // `smtpguard help [command]`: what every usage error's hint points at
  program
    .command('help')
    .argument('[command]', 'the command to show the help of')
    .description('show the help of smtpguard, or of one command')
    .action((name: string | undefined) => {
      const names = program.commands.map((c) => c.name()).filter((n) => n !== 'help');
      if (name === undefined) return void program.outputHelp();
      const command = program.commands.find((c) => c.name() === name && name !== 'help');
      if (command === undefined) throw usageError(`unknown command '${name}'`, `commands: ${names.join(', ')}`);
      command.outputHelp();
    });
  return program;
}

/** unblock, allow, block, explain: the everyday verbs (commands/verbs.ts). */
function addVerbs(program: Command): void {
  type VerbFlags = CommonFlags & { dryRun?: boolean; json?: boolean; for?: string; comment?: string; remove?: boolean; forget?: boolean };
  const verb = (name: string, argument: string, description: string, extra: (c: Command) => Command, help: string, used: ReadonlySet<string> | null = null) =>
    addSettingOptions(extra(program.command(name).argument(argument).description(description)), used).addHelpText('after', help);

  verb(
    'unblock',
    '<address-or-cidr>',
    'remove a block now and keep it out for a while (default: until the events that caused it have left the window)',
    (c) =>
      c
        .option('--for <duration>', 'keep it out this long (15m, 24h, 7d)')
        .option('--forget', 'also forget its ban history: if it comes back, it is a first offence again')
        .option('--dry-run', 'show what would change; change nothing')
        .option('--json', 'print the result as JSON'),
    examples('smtpguard unblock 192.0.2.7', 'smtpguard unblock 198.51.100.0/24 --for 7d', 'smtpguard unblock 2001:db8:1:2::5 --forget --dry-run'),
  ).action(async (target: string, flags: VerbFlags) => {
    const loaded = await settingsFrom(flags);
    const { unblockCommand } = await import('./commands/verbs.js');
    await unblockCommand(loaded.settings, { target, for: flags.for ?? null, forget: flags.forget === true, ...verbOptions(flags, loaded) }, ioFor(flags, false));
  });

  verb(
    'block',
    '<address-or-cidr>',
    'block an address or range by hand (reason manual); run keeps it (refused for this host, mynetworks and ALLOW)',
    (c) =>
      c
        .option('--for <duration>', 'for this long (15m, 24h, 7d; default: for good)')
        .option('--comment <text>', 'why, kept with the block')
        .option('--dry-run', 'show what would change; change nothing')
        .option('--json', 'print the result as JSON'),
    examples('smtpguard block 203.0.113.0/24 --comment "spam run"', 'smtpguard block 2001:db8:9::/48 --for 30d', 'smtpguard block 203.0.113.9 --dry-run'),
  ).action(async (target: string, flags: VerbFlags) => {
    const loaded = await settingsFrom(flags);
    const { blockCommand } = await import('./commands/verbs.js');
    await blockCommand(loaded.settings, { target, for: flags.for ?? null, comment: flags.comment ?? null, ...verbOptions(flags, loaded) }, ioFor(flags, false));
  });

  verb(
    'allow',
    '<address-or-cidr>',
    "never block it: add it to the config file's ALLOW (with --comment) and unblock it now; --remove takes it out",
    (c) =>
      c
        .option('--comment <text>', 'why, kept as the ALLOW line\'s comment')
        .option('--remove', 'take it out of ALLOW again')
        .option('--dry-run', 'show what would change; change nothing')
        .option('--json', 'print the result as JSON'),
    examples('smtpguard allow 192.0.2.25 --comment "backup MX"', 'smtpguard allow --remove 192.0.2.25', 'smtpguard allow 2001:db8:5::/48 --dry-run'),
  ).action(async (target: string, flags: VerbFlags) => {
    const loaded = await settingsFrom(flags, true);
    const { allowCommand } = await import('./commands/verbs.js');
    await allowCommand(loaded.settings, { target, remove: flags.remove === true, comment: flags.comment ?? null, configFile: loaded.file, configText: loaded.fileText, ...verbOptions(flags, loaded) }, ioFor(flags, false));
  });

  verb(
    'explain',
    '<address>',
    'why an address is (not) blocked: its events in the window with file:line, its counts, the block it is in (read-only)',
    (c) => c.option('--json', 'print one JSON object'),
    examples('smtpguard explain 192.0.2.7', 'smtpguard explain 2001:db8:1:2::5 --window 7d', 'smtpguard explain 198.51.100.3 --json'),
    STATUS_KEYS,
  ).action(async (target: string, flags: VerbFlags) => {
    const loaded = await settingsFrom(flags);
    const { explainCommand } = await import('./commands/explain.js');
    await explainCommand(loaded.settings, { target, now: nowOf(flags), defaultLogs: loaded.origins.log.from === 'default', json: flags.json === true }, ioFor(flags, true));
  });
}

function verbOptions(flags: CommonFlags & { dryRun?: boolean; json?: boolean }, loaded: Resolved) {
  return { now: nowOf(flags), defaultLogs: loaded.origins.log.from === 'default', dryRun: flags.dryRun === true, json: flags.json === true };
}

/** Global options that may come before the command. */
const GLOBAL_FLAGS = new Set(['--debug', '-h', '--help', '-V', '--version']);

/** `smtpguard stauts`: unknown command 'stauts' (did you mean 'status'?), before commander reads on. */
function checkCommandName(argv: readonly string[], names: readonly string[]): void {
  let i = 0;
  while (i < argv.length && (GLOBAL_FLAGS.has(argv[i]!) || argv[i] === '--config')) i += argv[i] === '--config' ? 2 : 1;
  const word = argv[i];
  if (word === undefined || word.startsWith('-') || word === 'help' || names.includes(word)) return;
  const best = names.map((n) => ({ n, d: editDistance(word, n) })).sort((a, b) => a.d - b.d)[0];
  const suggestion = best !== undefined && best.d <= Math.max(2, Math.floor(word.length / 3)) ? ` (did you mean '${best.n}'?)` : '';
  throw usageError(`unknown command '${word}'${suggestion}`, `commands: ${names.join(', ')}; "smtpguard" alone shows a summary`);
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length]!;
}

export async function main(argv: readonly string[]): Promise<void> {
  const debug = argv.includes('--debug');
  try {
    const program = buildProgram();
    checkCommandName(argv, program.commands.map((c) => c.name()));
    await program.parseAsync(argv, { from: 'user' });
  } catch (error) {
    progressLine?.stop(); // the error goes on a line of its own
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
