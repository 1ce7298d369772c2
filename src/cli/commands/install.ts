/**
 * `smtpguard install [--timer] [--dry-run]` and `smtpguard uninstall [--dry-run]` (edge):
 * read the files, transform them with install.ts, show or write them, run the commands.
 */
import { readFile, realpath, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { createTwoFilesPatch } from 'diff';
import { execCommand } from '../../write/exec.js';
import type { Runner } from '../../write/change.js';
import { BACKENDS } from '../../write/firewall/registry.js';
import type { FileEdit, InstallPart } from '../../write/firewall/backend.js';
import { ensureDirectory, PREVIOUS_SUFFIX, writeTarget, writeWithBackup } from '../../store/atomic.js';
import { SmtpguardError } from '../../errors.js';
import {
  addRestriction,
  escapeForCron,
  escapeForSystemd,
  fill,
  findOtherMapUses,
  installAccessMap,
  removeRestriction,
  uninstallAccessMap,
  type Templates,
} from '../../write/install.js';
import { INDEX_SUFFIX } from '../../write/plan.js';
import { formatCommand } from '../../report/plan-report.js';
import { DEFAULT_CONFIG_FILE, renderConfigHeader, type Settings } from '../settings.js';
import { addConfigWord, setConfigValues } from '../config-file.js';
import { findDefaultMapType, postconf, query } from '../system.js';
import type { Io } from './common.js';
import { packageRoot } from '../../version.js';
import { systemdReads } from '../../write/install.js';

export interface InstallOptions {
  uninstall: boolean;
  dryRun: boolean;
  timer: boolean;
  /** `smtpguard follow` as a service (smtpguard-follow.service) instead of the cron job or the timer. */
  follow: boolean;
  cronFile: string;
  systemdDir: string;
  /** Where the manual page (smtpguard.1) and the bash completion (smtpguard) go. */
  manDir: string;
  completionDir: string;
  /** The config file (--config or the default), its text, and the settings given as flags or environment: install keeps them there. */
  config: { file: string; text: string | null; given: ReadonlyMap<string, string[]>; allow: readonly string[] };
}

const ROOT = packageRoot() + path.sep;
/** The follower's unit (`smtpguard.service` is the timer's oneshot job). */
export const FOLLOW_UNIT = 'smtpguard-follow.service';
/** Where the Debian package puts the program (packaging/build-deb.mjs). */
const PACKAGED_ROOT = '/usr/lib/smtpguard/';
const TEMPLATE_DIR = path.join(ROOT, 'templates') + path.sep;
const BIN = path.join(ROOT, 'bin', 'smtpguard.js');

/**
 * How the job calls smtpguard: the first `smtpguard` on PATH that is this very copy (its link
 * resolves to this entry point) and lies outside it (not a clone's node_modules/.bin, which
 * `npx` puts on PATH), else node and the entry point.
 */
async function programOnPath(): Promise<string[]> {
  const self = await realpath(BIN).catch(() => BIN);
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (!path.isAbsolute(dir) || (dir + path.sep).startsWith(ROOT)) continue;
    const candidate = path.join(dir, 'smtpguard');
    if ((await realpath(candidate).catch(() => null)) === self) return [candidate];
  }
  return [process.execPath, BIN];
}

export async function readTemplates(): Promise<Templates> {
  const read = (name: string) => readFile(path.join(TEMPLATE_DIR, name), 'utf8');
  const [ufwChains, ufwRules, accessMap, cron, service, timer, followService] = await Promise.all(
    ['ufw-chains.rules', 'ufw-rules.rules', 'access-map', 'cron', 'smtpguard.service', 'smtpguard.timer', 'smtpguard-follow.service'].map(read),
  );
  return { ufwChains: ufwChains!, ufwRules: ufwRules!, accessMap: accessMap!, cron: cron!, service: service!, timer: timer!, followService: followService! };
}

async function readOptional(file: string): Promise<string | null> {
  return readFile(file, 'latin1').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null;
    if (error.code === 'EISDIR') throw new SmtpguardError(`${file} is a directory, not a file`, { hint: 'point the option at the file itself (--ufw-rules, --ufw6-rules, --access-map, --cron-file, --config)' });
    throw new SmtpguardError(`cannot read ${file}: ${error.message}`, { hint: 'run as root' });
  });
}

export async function installCommand(settings: Settings, options: InstallOptions, io: Io, run: Runner = execCommand): Promise<void> {
  const templates = await readTemplates();
  const mapType = settings.mapType ?? (await findDefaultMapType(settings.postfixConfigDir));
  const element = `check_client_access ${mapType}:${settings.accessMap}`;
  const postfixConfig = settings.postfixConfigDir === null ? [] : ['-c', settings.postfixConfigDir];

  const restrictions = await postconf(['-h', 'smtpd_client_restrictions'], settings.postfixConfigDir);
  if (!restrictions.ok) {
    throw new SmtpguardError(`postconf failed: ${restrictions.output || 'not found'}`, { hint: 'is Postfix installed? (apt-get install postfix)' });
  }
  if (!options.uninstall) {
    // a map Postfix already reads for senders (or anything else) must not become a client map
    const [main, master] = await Promise.all([postconf(['-n'], settings.postfixConfigDir), postconf(['-P'], settings.postfixConfigDir)]);
    const uses = findOtherMapUses(main.ok ? main.output : '', master.ok ? master.output : '', settings.accessMap);
    if (uses.length > 0) {
      throw new SmtpguardError(`${settings.accessMap} is already used by Postfix other than as a client access map (${uses.join('; ')}): its entries would also be matched against client addresses and names`, {
        hint: `give smtpguard a map of its own, e.g. smtpguard install --access-map ${path.join(path.dirname(settings.accessMap), 'smtpguard_access')}`,
      });
    }
  }
  const edits: FileEdit[] = [];
  const warnings: string[] = [];
  // the job calls smtpguard by the name on PATH that leads to this copy (/usr/bin/smtpguard of the
  // Debian package or of npm -g), else node and this copy's entry point (a git clone)
  const program = await programOnPath();
  const invoke = (args: readonly string[]) => formatCommand([...program, ...args]);
  const command = invoke(['run', '--config', options.config.file]);
  const followCommand = invoke(['follow', '--config', options.config.file]);
  /** What the job runs: the follower's command with --follow. */
  const jobCommand = options.follow ? followCommand : command;
  // the firewall's pieces, from its backends (those that share pieces, like ufw's files, give them once)
  const parts: InstallPart[] = [];
  for (const backend of BACKENDS) {
    const part = await backend.install({
      settings,
      uninstall: options.uninstall,
      systemdDir: options.systemdDir,
      command: invoke,
      configFile: options.config.file,
      readOptional,
      query,
      templates,
    });
    if (part !== null && !parts.some((p) => p.name === part.name)) parts.push(part);
  }
  for (const part of parts) for (const warning of part.warnings) warnings.push(warning);

  const mapBefore = await readOptional(settings.accessMap);
  const mapAfter = options.uninstall ? (mapBefore === null ? null : uninstallAccessMap(mapBefore)) : installAccessMap(mapBefore, settings.accessMap, mapType, templates);
  edits.push({ path: settings.accessMap, before: mapBefore, after: mapAfter });

  // the job runs with exactly what install was told: the settings go to the config file, the job reads it
  if (!options.uninstall) {
    const given = new Map(options.config.given);
    const metrics = await defaultMetricsFile(options.config.file, options.config.text, given);
    if (metrics !== null) given.set('METRICS_FILE', [metrics]);
    let after = setConfigValues(options.config.text, given, renderConfigHeader());
    for (const word of options.config.allow) after = addConfigWord(after, 'ALLOW', word, null, renderConfigHeader());
    edits.push({ path: options.config.file, before: options.config.text, after });
    if (settings.reload === false && options.config.given.has('RELOAD')) {
      warnings.push(`RELOAD=no is kept in ${options.config.file}: the job will write the files but not reload Postfix or ufw; remove that line to let it reload`);
    }
  }

  // man smtpguard, and bash completion (the Debian package has its own where man and bash look)
  const manPage = path.join(options.manDir, 'smtpguard.1');
  const completion = path.join(options.completionDir, 'smtpguard');
  const docs = await Promise.all([readOptional(manPage), readOptional(completion)]);
  if (ROOT === PACKAGED_ROOT && !options.uninstall) {
    // nothing to add
  } else if (options.uninstall) {
    for (const [file, text] of [[manPage, docs[0]], [completion, docs[1]]] as const) if (text !== null && text.includes('smtpguard install')) edits.push({ path: file, before: text, after: null });
  } else {
    edits.push({ path: manPage, before: docs[0], after: await readFile(path.join(ROOT, 'man', 'smtpguard.1'), 'latin1') });
    edits.push({ path: completion, before: docs[1], after: await readFile(path.join(ROOT, 'completions', 'smtpguard.bash'), 'latin1') });
  }

  const service = path.join(options.systemdDir, 'smtpguard.service');
  const timer = path.join(options.systemdDir, 'smtpguard.timer');
  const followUnit = path.join(options.systemdDir, FOLLOW_UNIT);
  const installed = { cron: await readOptional(options.cronFile), service: await readOptional(service), timer: await readOptional(timer), follow: await readOptional(followUnit) };
  const ours = (text: string | null) => text !== null && text.includes('smtpguard install');
  // one schedule at a time: the one asked for is written, the others install made are taken out
  const schedule: Array<[string, string | null, string | null]> = [
    [options.cronFile, installed.cron, options.uninstall || options.timer || options.follow ? null : fill(templates.cron, { COMMAND: escapeForCron(command) })],
    [service, installed.service, !options.uninstall && options.timer ? fill(templates.service, { COMMAND: escapeForSystemd(command) }) : null],
    [timer, installed.timer, !options.uninstall && options.timer ? templates.timer : null],
    [followUnit, installed.follow, !options.uninstall && options.follow ? fill(templates.followService, { COMMAND: escapeForSystemd(followCommand) }) : null],
  ];
  for (const [file, before, after] of schedule) if (after !== null || ours(before)) edits.push({ path: file, before, after });

  const changed = edits.filter((e) => e.before !== e.after);
  // a job that called another copy (a git clone, before the package): said, with both commands
  const moved = (before: string | null) => (before === null || !before.includes('smtpguard install') ? null : /\bExecStart=(.*)$|^[^#\n]*\broot\s+(.*)$/m.exec(before));
  const jobBefore = options.uninstall ? null : moved(options.follow ? installed.follow : options.timer ? installed.service : installed.cron);
  const oldCommand = jobBefore === null ? null : (jobBefore[1] ?? jobBefore[2] ?? '').trim();
  const partEdits = parts.flatMap((p) => p.edits.filter((e) => e.before !== e.after));
  const links: string[] = parts.flatMap((p) => p.notes);
  const newRestrictions = options.uninstall ? removeRestriction(restrictions.output, element) : addRestriction(restrictions.output, element);
  const commands: string[][] = [];
  // the index first: Postfix must not be told about a map it cannot open yet
  const mapEdit = changed.find((e) => e.path === settings.accessMap);
  if (mapEdit !== undefined && mapEdit.after !== null && mapType !== 'cidr') commands.push(['postmap', ...postfixConfig, `${mapType}:${settings.accessMap}`]);
  if (newRestrictions !== restrictions.output) commands.push(['postconf', ...postfixConfig, '-e', `smtpd_client_restrictions=${newRestrictions}`]);
  if (settings.reload) {
    if (commands.length > 0 || mapEdit !== undefined) commands.push(['postfix', ...postfixConfig, 'reload']);
    const edit = (file: string) => changed.find((e) => e.path === file);
    const timerEdit = edit(timer) ?? edit(service);
    const followEdit = edit(followUnit);
    // a follower runs with the config file it read at start: a changed one needs a restart
    const configChanged = options.follow && !options.uninstall && edit(options.config.file) !== undefined;
    if (timerEdit !== undefined || followEdit !== undefined || configChanged) {
      if (!systemdReads(options.systemdDir)) {
        links.push(`${options.systemdDir} is not a directory systemd reads: copy the units to /etc/systemd/system and enable them there`);
      } else {
        // what goes is stopped first (before its unit file is removed); then systemd reads the units again
        if (installed.follow !== null && followEdit?.after === null) commands.unshift(['systemctl', 'disable', '--now', FOLLOW_UNIT]);
        if (installed.timer !== null && edit(timer)?.after === null) commands.unshift(['systemctl', 'disable', '--now', 'smtpguard.timer']);
        if (timerEdit !== undefined || followEdit !== undefined) commands.push(['systemctl', 'daemon-reload']);
        if (options.timer && !options.uninstall) commands.push(['systemctl', 'enable', '--now', 'smtpguard.timer']);
        // a new or changed unit, or a changed config file: the follower (re)starts with them
        if (options.follow && !options.uninstall) commands.push(['systemctl', 'enable', FOLLOW_UNIT], ['systemctl', 'restart', FOLLOW_UNIT]);
      }
    }
  }

  const partCommands = parts.flatMap((p) => p.commands);
  const pending = parts.some((p) => p.pending);

  for (const warning of warnings) io.warn(warning);
  const verb = options.uninstall ? 'uninstall' : 'install';
  for (const e of [...partEdits, ...changed]) {
    const target = await writeTarget(e.path);
    if (target !== e.path) links.push(`${e.path} is a symlink: ${e.after === null ? 'the link is removed' : `the new text is written to its target ${target}`}`);
  }
  if (options.dryRun) {
    const lines = [`smtpguard ${verb} --dry-run:`, ''];
    if (changed.length === 0 && partEdits.length === 0 && commands.length === 0 && partCommands.length === 0 && !pending) lines.push('Nothing to do: already done.');
    for (const link of links) lines.push(`Note: ${link}`);
    for (const e of [...partEdits, ...changed]) {
      lines.push(e.after === null ? `would remove ${e.path}` : createTwoFilesPatch(e.path, e.path, e.before ?? '', e.after, e.before === null ? '(new file)' : '', '(smtpguard)').trimEnd());
    }
    if (commands.length + partCommands.length > 0) lines.push('', 'Commands that would run:');
    for (const c of [...commands, ...partCommands]) lines.push(`  ${formatCommand(c)}`);
    lines.push('', 'Nothing was changed (--dry-run).');
    io.stdout.write(lines.join('\n') + '\n');
    return;
  }
  if (changed.length === 0 && partEdits.length === 0 && commands.length === 0 && partCommands.length === 0 && !pending) {
    io.stdout.write(`smtpguard ${verb}: nothing to do, already done\n`);
    return;
  }

  // files first, then the commands, then the firewall's pieces; files to remove last, once Postfix no longer names them
  for (const e of changed) {
    if (e.after === null) continue;
    if (e.before === null) await ensureDirectory(path.dirname(e.path), 'the directory', `the path ${e.path}`);
    await writeWithBackup(e.path, e.after, e.before === null ? null : e.path);
  }
  for (const argv of commands) {
    const result = await run(argv);
    if (!result.ok) {
      const soft = argv[0] === 'postfix' || argv[0] === 'systemctl';
      if (!soft) throw new SmtpguardError(`${argv.join(' ')} failed: ${result.output}`, { hint: 'fix the cause and run smtpguard install again (it continues where it stopped)' });
      io.warn(`${argv.join(' ')} failed: ${result.output}`);
    }
  }
  for (const part of parts) for (const warning of await part.carryOut(run, settings.reload)) io.warn(warning);
  for (const e of changed.filter((c) => c.after === null)) {
    await unlink(e.path).catch(() => undefined);
    if (e.path === settings.accessMap && mapType !== 'cidr') await unlink(settings.accessMap + INDEX_SUFFIX[mapType]).catch(() => undefined);
  }
  const all = [...partEdits, ...changed];
  const ran = [...commands, ...partCommands];
  const did = all.map((e) => `${e.after === null ? 'removed' : e.before === null ? 'created' : 'changed'} ${e.path}`);
  io.stdout.write(`smtpguard ${verb}: ${did.join(', ') || 'no file changed'}${ran.length > 0 ? `; ran ${ran.map((c) => formatCommand(c)).join('; ')}` : ''}\n`);
  if (oldCommand !== null && oldCommand !== jobCommand && oldCommand !== escapeForCron(jobCommand) && oldCommand !== escapeForSystemd(jobCommand)) {
    io.stdout.write(`smtpguard install: the job now runs ${jobCommand} (it ran ${oldCommand})\n`);
  }
  if (options.uninstall) {
    // the copies of each file before smtpguard's last write stay: a way back, said so, not left silently
    const kept = (await Promise.all(all.map(async (e) => ((await stat(e.path + PREVIOUS_SUFFIX).catch(() => null)) === null ? null : e.path + PREVIOUS_SUFFIX)))).filter((f): f is string => f !== null);
    if (kept.length > 0) io.stdout.write(`smtpguard uninstall: kept ${kept.join(', ')} (each file before smtpguard last wrote it); remove them when you no longer need them\n`);
  }
}

/** Where Debian's prometheus-node-exporter reads *.prom files (its textfile collector's default). */
export const TEXTFILE_DIR = '/var/lib/prometheus/node-exporter';

/**
 * The metrics file install sets up by itself: on a server's own install (the default config file)
 * where node_exporter's textfile directory exists, and METRICS_FILE is neither given nor set.
 */
export async function defaultMetricsFile(configFile: string, configText: string | null, given: ReadonlyMap<string, string[]>, dir = TEXTFILE_DIR): Promise<string | null> {
  if (configFile !== DEFAULT_CONFIG_FILE || given.has('METRICS_FILE') || /^\s*METRICS_FILE\s*=/m.test(configText ?? '')) return null;
  const info = await stat(dir).catch(() => null);
  return info?.isDirectory() === true ? path.join(dir, 'smtpguard.prom') : null;
}
