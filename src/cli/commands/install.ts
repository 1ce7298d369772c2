/**
 * `smtpguard install [--timer] [--dry-run]` and `smtpguard uninstall [--dry-run]` (edge):
 * read the files, transform them with install.ts, show or write them, run the commands.
 */
import { readFile, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { createTwoFilesPatch } from 'diff';
import { execCommand, type Runner } from '../../write/apply.js';
import { replaceRulesFiles } from '../../write/firewall/ufw.js';
import { ensureDirectory, PREVIOUS_SUFFIX, writeTarget, writeWithBackup } from '../../store/atomic.js';
import { SmtpguardError } from '../../errors.js';
import {
  addRestriction,
  escapeForCron,
  escapeForSystemd,
  fill,
  findOtherMapUses,
  installAccessMap,
  installInit,
  uninstallInit,
  installUfw,
  removeRestriction,
  uninstallAccessMap,
  uninstallUfw,
  type Templates,
} from '../../write/install.js';
import { INDEX_SUFFIX, type FileChange } from '../../write/plan.js';
import { formatCommand } from '../../report/plan-report.js';
import { DEFAULT_CONFIG_FILE, renderConfigHeader, type Settings } from '../settings.js';
import { addConfigWord, setConfigValues } from '../config-file.js';
import { findDefaultMapType, postconf, query } from '../system.js';
import { initFileOf, makeExecutable, SET_NAMES } from '../../write/firewall/ipset.js';
import type { Io } from './common.js';
import { packageRoot } from '../../version.js';

export interface InstallOptions {
  uninstall: boolean;
  dryRun: boolean;
  timer: boolean;
  cronFile: string;
  systemdDir: string;
  /** Where the manual page (smtpguard.1) and the bash completion (smtpguard) go. */
  manDir: string;
  completionDir: string;
  /** The config file (--config or the default), its text, and the settings given as flags or environment: install keeps them there. */
  config: { file: string; text: string | null; given: ReadonlyMap<string, string[]>; allow: readonly string[] };
}

interface FileEdit {
  path: string;
  before: string | null;
  /** null: remove the file. */
  after: string | null;
}

const ROOT = packageRoot() + path.sep;
const TEMPLATE_DIR = path.join(ROOT, 'templates') + path.sep;
const BIN = path.join(ROOT, 'bin', 'smtpguard.js');

export async function readTemplates(): Promise<Templates> {
  const read = (name: string) => readFile(path.join(TEMPLATE_DIR, name), 'utf8');
  const [ufwChains, ufwRules, accessMap, cron, service, timer] = await Promise.all(
    ['ufw-chains.rules', 'ufw-rules.rules', 'access-map', 'cron', 'smtpguard.service', 'smtpguard.timer'].map(read),
  );
  return { ufwChains: ufwChains!, ufwRules: ufwRules!, accessMap: accessMap!, cron: cron!, service: service!, timer: timer! };
}

async function readOptional(file: string): Promise<string | null> {
  return readFile(file, 'latin1').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null;
    if (error.code === 'EISDIR') throw new SmtpguardError(`${file} is a directory, not a file`, { hint: 'point the option at the file itself (--ufw-rules, --ufw6-rules, --access-map, --cron-file, --config)' });
    throw new SmtpguardError(`cannot read ${file}: ${error.message}`, { hint: 'run as root' });
  });
}

async function readRequired(file: string, what: string): Promise<string> {
  const text = await readOptional(file);
  if (text === null) throw new SmtpguardError(`${file} does not exist`, { hint: `is ${what} installed? (apt-get install ${what}), or point the option at the right file` });
  return text;
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
  for (const [file, family, chain] of [
    [settings.ufwRules, 4, settings.ufwChain],
    [settings.ufw6Rules, 6, settings.ufw6Chain],
  ] as const) {
    const before = await readRequired(file, 'ufw');
    const after = options.uninstall ? uninstallUfw(before) : installUfw(before, file, family, chain, templates);
    if (typeof after === 'string') edits.push({ path: file, before, after });
    else {
      edits.push({ path: file, before, after: after.text });
      for (const warning of after.warnings) warnings.push(warning);
    }
  }
  // ufw's before.init: the section the ipset backend fills (its sets must exist before ufw loads its rules)
  const initFile = initFileOf(settings.ufwRules);
  const initBefore = await readOptional(initFile);
  if (initBefore === null && settings.firewall === 'ipset' && !options.uninstall) {
    throw new SmtpguardError(`${initFile} does not exist: --firewall ipset creates its sets there before ufw loads its rules at boot`, {
      hint: 'ufw ships it (a conffile): "apt-get install --reinstall -o Dpkg::Options::=--force-confmiss ufw" puts it back',
    });
  }
  if (initBefore !== null) edits.push({ path: initFile, before: initBefore, after: options.uninstall ? uninstallInit(initBefore) : installInit(initBefore) });

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

  // man smtpguard, and bash completion
  const manPage = path.join(options.manDir, 'smtpguard.1');
  const completion = path.join(options.completionDir, 'smtpguard');
  const docs = await Promise.all([readOptional(manPage), readOptional(completion)]);
  if (options.uninstall) {
    for (const [file, text] of [[manPage, docs[0]], [completion, docs[1]]] as const) if (text !== null && text.includes('smtpguard install')) edits.push({ path: file, before: text, after: null });
  } else {
    edits.push({ path: manPage, before: docs[0], after: await readFile(path.join(ROOT, 'man', 'smtpguard.1'), 'latin1') });
    edits.push({ path: completion, before: docs[1], after: await readFile(path.join(ROOT, 'completions', 'smtpguard.bash'), 'latin1') });
  }

  const command = formatCommand([process.execPath, BIN, 'run', '--config', options.config.file]);
  const service = path.join(options.systemdDir, 'smtpguard.service');
  const timer = path.join(options.systemdDir, 'smtpguard.timer');
  const installed = { cron: await readOptional(options.cronFile), service: await readOptional(service), timer: await readOptional(timer) };
  if (options.uninstall) {
    for (const [file, text] of [[options.cronFile, installed.cron], [service, installed.service], [timer, installed.timer]] as const) {
      if (text !== null && text.includes('smtpguard install')) edits.push({ path: file, before: text, after: null });
    }
  } else if (options.timer) {
    edits.push({ path: service, before: installed.service, after: fill(templates.service, { COMMAND: escapeForSystemd(command) }) });
    edits.push({ path: timer, before: installed.timer, after: templates.timer });
  } else {
    edits.push({ path: options.cronFile, before: installed.cron, after: fill(templates.cron, { COMMAND: escapeForCron(command) }) });
  }

  const changed = edits.filter((e) => e.before !== e.after);
  const links: string[] = [];
  const newRestrictions = options.uninstall ? removeRestriction(restrictions.output, element) : addRestriction(restrictions.output, element);
  const commands: string[][] = [];
  // the index first: Postfix must not be told about a map it cannot open yet
  const mapEdit = changed.find((e) => e.path === settings.accessMap);
  if (mapEdit !== undefined && mapEdit.after !== null && mapType !== 'cidr') commands.push(['postmap', ...postfixConfig, `${mapType}:${settings.accessMap}`]);
  if (newRestrictions !== restrictions.output) commands.push(['postconf', ...postfixConfig, '-e', `smtpd_client_restrictions=${newRestrictions}`]);
  if (settings.reload) {
    if (commands.length > 0 || mapEdit !== undefined) commands.push(['postfix', ...postfixConfig, 'reload']);
    if (changed.some((e) => e.path === settings.ufwRules || e.path === settings.ufw6Rules)) commands.push(['ufw', 'reload']);
    const units = changed.some((e) => e.path === service || e.path === timer);
    if (units) commands.push(['systemctl', 'daemon-reload']);
    if (units && !options.uninstall) commands.push(['systemctl', 'enable', '--now', 'smtpguard.timer']);
    if (units && options.uninstall) commands.unshift(['systemctl', 'disable', '--now', 'smtpguard.timer']);
  }

  // uninstall: once ufw has reloaded without them, nothing jumps to the smtpguard chains (ufw's
  // stop does not flush chains it does not know: they would keep their rules, and the sets their users)
  const afterReload: string[][] = [];
  if (options.uninstall && settings.reload) {
    for (const [command, chain] of [['iptables', settings.ufwChain], ['ip6tables', settings.ufw6Chain]] as const) {
      if (!(await query(command, ['-S', chain])).ok) continue;
      for (const name of [chain, `${chain}-log`]) afterReload.push([command, '-F', name], [command, '-X', name]);
    }
    for (const name of Object.values(SET_NAMES)) if ((await query('ipset', ['-n', 'list', name])).ok) afterReload.push(['ipset', 'destroy', name]);
  }
  for (const argv of afterReload) commands.push(argv);
  const initExecutable = initBefore === null || options.uninstall || settings.firewall !== 'ipset' ? true : ((await stat(initFile)).mode & 0o100) !== 0;
  if (!initExecutable) links.push(`${initFile} is made executable: ufw-init runs it only then`);

  for (const warning of warnings) io.warn(warning);
  const verb = options.uninstall ? 'uninstall' : 'install';
  for (const e of changed) {
    const target = await writeTarget(e.path);
    if (target !== e.path) links.push(`${e.path} is a symlink: ${e.after === null ? 'the link is removed' : `the new text is written to its target ${target}`}`);
  }
  if (options.dryRun) {
    const lines = [`smtpguard ${verb} --dry-run:`, ''];
    if (changed.length === 0 && commands.length === 0 && initExecutable) lines.push('Nothing to do: already done.');
    for (const link of links) lines.push(`Note: ${link}`);
    for (const e of changed) {
      lines.push(e.after === null ? `would remove ${e.path}` : createTwoFilesPatch(e.path, e.path, e.before ?? '', e.after, e.before === null ? '(new file)' : '', '(smtpguard)').trimEnd());
    }
    if (commands.length > 0) lines.push('', 'Commands that would run:');
    for (const c of commands) lines.push(`  ${formatCommand(c)}`);
    lines.push('', 'Nothing was changed (--dry-run).');
    io.stdout.write(lines.join('\n') + '\n');
    return;
  }
  if (changed.length === 0 && commands.length === 0 && initExecutable) {
    io.stdout.write(`smtpguard ${verb}: nothing to do, already done\n`);
    return;
  }

  // files first, then the commands; files to remove last, once Postfix no longer names them
  const rules: FileChange[] = [];
  for (const e of changed) {
    if (e.path === settings.ufwRules || e.path === settings.ufw6Rules) {
      rules.push({ role: e.path === settings.ufwRules ? 'ufw4' : 'ufw6', path: e.path, before: e.before!, after: e.after! });
    } else if (options.uninstall && e.path === initFile) {
      continue; // it may create the sets the rules still name: it goes once ufw has the rules without them
    } else if (e.after !== null) {
      if (e.before === null) await ensureDirectory(path.dirname(e.path), 'the directory', `the path ${e.path}`);
      await writeWithBackup(e.path, e.after, e.before === null ? null : e.path);
    }
  }
  const ufwReload = commands.find((c) => c[0] === 'ufw');
  for (const argv of commands.filter((c) => !afterReload.includes(c) && c[0] !== 'ufw')) {
    const result = await run(argv);
    if (!result.ok) {
      const soft = argv[0] === 'postfix' || argv[0] === 'systemctl';
      if (!soft) throw new SmtpguardError(`${argv.join(' ')} failed: ${result.output}`, { hint: 'fix the cause and run smtpguard install again (it continues where it stopped)' });
      io.warn(`${argv.join(' ')} failed: ${result.output}`);
    }
  }
  if (rules.length > 0) await replaceRulesFiles(rules, ufwReload !== undefined, run);
  const initEdit = changed.find((e) => e.path === initFile);
  if (options.uninstall && initEdit?.after != null) await writeWithBackup(initFile, initEdit.after, initFile);
  if (!options.uninstall && settings.firewall === 'ipset') await makeExecutable(initFile);
  for (const argv of afterReload) {
    const result = await run(argv);
    if (!result.ok) io.warn(`${argv.join(' ')} failed: ${result.output}`);
  }
  for (const e of changed.filter((c) => c.after === null)) {
    await unlink(e.path).catch(() => undefined);
    if (e.path === settings.accessMap && mapType !== 'cidr') await unlink(settings.accessMap + INDEX_SUFFIX[mapType]).catch(() => undefined);
  }
  const did = changed.map((e) => `${e.after === null ? 'removed' : e.before === null ? 'created' : 'changed'} ${e.path}`);
  io.stdout.write(`smtpguard ${verb}: ${did.join(', ') || 'no file changed'}${commands.length > 0 ? `; ran ${commands.map((c) => formatCommand(c)).join('; ')}` : ''}\n`);
  if (options.uninstall) {
    // the copies of each file before smtpguard's last write stay: a way back, said so, not left silently
    const kept = (await Promise.all(changed.map(async (e) => ((await stat(e.path + PREVIOUS_SUFFIX).catch(() => null)) === null ? null : e.path + PREVIOUS_SUFFIX)))).filter((f): f is string => f !== null);
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
