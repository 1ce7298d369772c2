/**
 * Install and uninstall, as text transformations. Pure: templates and files come in
 * as strings. Each step is idempotent (installing twice changes nothing the second
 * time) and uninstall removes exactly the lines install added.
 */
import path from 'node:path';
import { SmtpguardError } from '../errors.js';
import { BEGIN_LINE, BEGIN_MARKER, END_MARKER, escapeRegExp } from './sections.js';
import type { MapType } from './access-map.js';

export interface Templates {
  ufwChains: string;
  ufwRules: string;
  accessMap: string;
  cron: string;
  service: string;
  timer: string;
  followService: string;
}

/** The unit directories systemd reads: install runs systemctl only for these (a test's, or a staging tree's, is left to the admin). */
const SYSTEMD_DIRS = ['/etc/systemd/system', '/run/systemd/system', '/lib/systemd/system', '/usr/lib/systemd/system'];

export const systemdReads = (dir: string): boolean => SYSTEMD_DIRS.includes(path.resolve(dir));

const CHAINS_START = '# smtpguard install: chains';
const CHAINS_END = '# smtpguard install: end of chains';
const RULES_START = '# smtpguard install: new SMTP connections';
const RULES_END = '# smtpguard install: end of rules';
const MAP_CREATED = '# smtpguard install created this file.';

export function fill(template: string, values: Readonly<Record<string, string>>): string {
  return template.replace(/\{\{([A-Z]+)\}\}/g, (_, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`template value ${name} missing`);
    return value;
  });
}

/**
 * Adds to a ufw rules file: the chain declarations after `# End required lines`, and
 * the jump for new SMTP connections, the log-and-drop chain and the markers right
 * after the ESTABLISHED accept of the input chain (so only new connections walk the
 * list). Returns the new text and a warning when the file has no ESTABLISHED accept.
 */
export function installUfw(text: string, file: string, family: 4 | 6, chain: string, templates: Templates): { text: string; warnings: string[] } {
  const input = family === 4 ? 'ufw-before-input' : 'ufw6-before-input';
  const warnings: string[] = [];
  const generated = new RegExp(`^-A ${escapeRegExp(chain)} (?:(?:-s \\S+|-m set --match-set \\S+ src) -j ${escapeRegExp(chain)}-log|-s \\S+ -j RETURN)$`);
  let out = repairSection(text, (l) => generated.test(l));
  if (out !== text) warnings.push(`${file}: put back the missing smtpguard marker line`);
  if (!hasLine(out, CHAINS_START)) {
    const at = lineAfter(out, (l) => l.startsWith('# End required lines'));
    if (at === -1) {
      throw new SmtpguardError(`${file} has no "# End required lines" line`, {
        hint: 'this does not look like a ufw before.rules file; check --ufw-rules / --ufw6-rules',
      });
    }
    out = out.slice(0, at) + fill(templates.ufwChains, { CHAIN: chain }) + out.slice(at);
  }
  if (!hasLine(out, RULES_START) && !hasLine(out, BEGIN_MARKER)) {
    const established = new RegExp(`^-A ${input} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\\s*$`);
    let at = lineAfter(out, (l) => established.test(l));
    if (at === -1) {
      warnings.push(`${file} has no "-A ${input} ... RELATED,ESTABLISHED -j ACCEPT" line: the smtpguard rules go before COMMIT, where every packet to ports 25/465/587 walks them`);
      at = lineStart(out, (l) => l === 'COMMIT', out.indexOf('*filter'));
      if (at === -1) throw new SmtpguardError(`${file} has no COMMIT line for its *filter table`, { hint: 'check the file' });
    }
    out = out.slice(0, at) + fill(templates.ufwRules, { CHAIN: chain, INPUT: input }) + out.slice(at);
  }
  return { text: out, warnings };
}

/** Removes exactly the two blocks installUfw added (the generated section with them). */
export function uninstallUfw(text: string): string {
  return removeBlock(removeBlock(text, CHAINS_START, CHAINS_END), RULES_START, RULES_END);
}

/**
 * ufw's before.init gets an empty generated section (the ipset backend's run fills it with
 * what creates its sets at boot): after the `set -e` line, else after the `#!` line, else
 * first. Installed with either backend, so that switching is one run.
 */
export function installInit(text: string): string {
  if (hasLine(text, BEGIN_MARKER)) return text;
  const markers = `${BEGIN_LINE}\n${END_MARKER}\n`;
  let at = lineAfter(text, (l) => l.trim() === 'set -e');
  if (at === -1) at = text.startsWith('#!') ? lineAfter(text, () => true) : 0;
  const before = text.slice(0, at);
  return `${before}${before === '' || before.endsWith('\n') ? '' : '\n'}${markers}${text.slice(at)}`;
}

/** before.init without the generated section. */
export function uninstallInit(text: string): string {
  return removeBlock(text, BEGIN_MARKER, END_MARKER);
}

/** A new access map from the template, or the markers appended to an existing one. */
export function installAccessMap(text: string | null, path: string, mapType: MapType, templates: Templates): string {
  if (text === null) return fill(templates.accessMap, { TYPE: mapType, PATH: path });
  const repaired = repairSection(text, (l) => /^\S+ (?:REJECT|DUNNO)(?: |$)/.test(l));
  if (repaired !== text || hasLine(text, BEGIN_MARKER)) return repaired;
  const markers = templates.accessMap.split('\n').filter((l) => l.startsWith(BEGIN_MARKER) || l.startsWith(END_MARKER));
  return `${text}${text === '' || text.endsWith('\n') ? '' : '\n'}${markers.join('\n')}\n`;
}

/** The map without the smtpguard section; null when install created it and nothing else is left. */
export function uninstallAccessMap(text: string): string | null {
  const out = removeBlock(text, BEGIN_MARKER, END_MARKER);
  if (!hasLine(text, MAP_CREATED)) return out;
  const rest = out.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
  return rest.length === 0 ? null : out;
}

/** `check_client_access hash:/etc/postfix/sender_access`, first in smtpd_client_restrictions. */
export function addRestriction(value: string, element: string): string {
  if (hasRestriction(value, element)) return value;
  return value.trim() === '' ? element : `${element}, ${value.trim()}`;
}

export function removeRestriction(value: string, element: string): string {
  const [word, table] = element.split(/\s+/) as [string, string];
  const re = new RegExp(`(^|[\\s,])${escapeRegExp(word)}[\\s,]+${escapeRegExp(table)}(?=$|[\\s,])[\\s,]*`);
  return value.replace(re, '$1').replace(/^[\s,]+|[\s,]+$/g, '');
}

export function hasRestriction(value: string, element: string): boolean {
  return removeRestriction(value, element) !== value.trim().replace(/^[\s,]+|[\s,]+$/g, '');
}

function hasLine(text: string, prefix: string): boolean {
  return text.split('\n').some((l) => l.startsWith(prefix));
}

/** Offset just after the first line matching `test`, or -1. */
function lineAfter(text: string, test: (line: string) => boolean): number {
  let at = 0;
  for (const line of text.split('\n')) {
    const next = at + line.length + 1;
    if (test(line)) return Math.min(next, text.length + (text.endsWith('\n') ? 0 : 1));
    at = next;
  }
  return -1;
}

/** Offset of the first line matching `test` at or after `from`, or -1. */
function lineStart(text: string, test: (line: string) => boolean, from: number): number {
  let at = 0;
  for (const line of text.split('\n')) {
    if (at >= from && test(line)) return at;
    at += line.length + 1;
  }
  return -1;
}

/** Removes the lines from one starting with `start` to one starting with `end`, both included. */
function removeBlock(text: string, start: string, end: string): string {
  const lines = text.split('\n');
  const first = lines.findIndex((l) => l.startsWith(start));
  if (first === -1) return text;
  const last = lines.findIndex((l, i) => i > first && l.startsWith(end));
  if (last === -1) return text;
  lines.splice(first, last - first + 1);
  return lines.join('\n');
}

/**
 * Where main.cf (`postconf -n`) or master.cf (`postconf -P`) already names the map file
 * other than as `check_client_access TYPE:FILE`: e.g. `check_sender_access
 * hash:/etc/postfix/sender_access`, whose sender entries would then also be matched
 * against client addresses and names. Each use as `name = value`.
 */
export function findOtherMapUses(mainCf: string, masterCf: string, mapPath: string): string[] {
  const uses: string[] = [];
  for (const [where, text] of [['main.cf', mainCf], ['master.cf', masterCf]] as const) {
    for (const line of text.split('\n')) {
      const m = /^(\S+)\s*=\s*(.*)$/.exec(line.trim());
      if (m === null) continue;
      const words = m[2]!.split(/[\s,{}]+/).filter((w) => w !== '');
      words.forEach((word, i) => {
        if (!word.endsWith(`:${mapPath}`) || !/^[a-z0-9_]+:/.test(word)) return;
        if (words[i - 1] === 'check_client_access' && !m[1]!.endsWith('_maps')) return;
        uses.push(`${where}: ${m[1]} = ${m[2]}`);
      });
    }
  }
  return [...new Set(uses)];
}

/**
 * A generated section with one marker missing (an edit gone wrong): the missing marker
 * put back around the generated lines next to the other one. `generated` tells a
 * generated line. Unchanged when both markers are there or neither is.
 */
export function repairSection(text: string, generated: (line: string) => boolean): string {
  const lines = text.split('\n');
  const begin = lines.findIndex((l) => l.startsWith(BEGIN_MARKER));
  const end = lines.findIndex((l) => l.startsWith(END_MARKER));
  if ((begin === -1) === (end === -1)) return text;
  if (begin !== -1) {
    let at = begin + 1;
    while (at < lines.length && generated(lines[at]!)) at++;
    lines.splice(at, 0, END_MARKER);
  } else {
    let at = end;
    while (at > 0 && generated(lines[at - 1]!)) at--;
    lines.splice(at, 0, `${BEGIN_MARKER} (generated by "smtpguard run": do not edit between these markers)`);
  }
  return lines.join('\n');
}

/** `%` is special to cron (a newline) and to systemd (a specifier), `$` to systemd. */
export const escapeForCron = (command: string): string => command.replaceAll('%', '\\%');
export const escapeForSystemd = (command: string): string => command.replaceAll('%', '%%').replaceAll('$', '$$$$');
