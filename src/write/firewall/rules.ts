/**
 * The `rules` backend (the default): one ufw rule per block in the generated section,
 * `-A ufw-smtpguard -s 192.0.2.0/24 -j ufw-smtpguard-log`, put in force by `ufw reload`.
 * Every new SMTP connection walks the list: fine for hundreds of blocks, costly for tens of
 * thousands (README "Large block lists"; bench/results.md).
 */
import { parseRange } from '../../address.js';
import { sortBlocks } from '../access-map.js';
import type { Block } from '../../decide/policy.js';
import { applySections, chainDrops, MISSING_SECTION, namesSets, planSections, probeLive, ufwEnabled, ufwFiles, ufwInstallPart, USES_UFW } from './ufw.js';
import { parseSaveFile, readUfwKernel, ufwRecorded } from './ipset.js';
import type { FirewallBackend } from './backend.js';

/**
 * `-A ufw-smtpguard -s 192.0.2.0/24 -j ufw-smtpguard-log`, one line per block of that family;
 * a block's exceptions (addresses where someone logged in) first, as `-j RETURN` lines: the
 * chain is walked in order, so they are checked before the range.
 */
export function renderUfwRules(blocks: readonly Block[], family: 4 | 6, chain: string): string[] {
  const lines: string[] = [];
  for (const b of sortBlocks(blocks)) {
    if (b.family !== family) continue;
    for (const e of b.exceptions ?? []) lines.push(`-A ${chain} -s ${e} -j RETURN`);
    lines.push(`-A ${chain} -s ${b.cidr} -j ${chain}-log`);
  }
  return lines;
}

/** Every rendered ufw line has exactly this shape (a block, or an exception's RETURN); anything else is a bug, caught before writing. */
export function checkUfwLine(line: string, chain: string): void {
  const m = /^-A (\S+) -s (\S+) -j (\S+)$/.exec(line);
  if (m === null || m[1] !== chain || (m[3] !== `${chain}-log` && m[3] !== 'RETURN')) throw new Error(`bad generated ufw line: ${line}`);
  parseRange(m[2]!);
}

/** Past this many blocks the rules backend costs every new connection and every reload (bench/results.md): the cron line says so once. */
export const RULES_ADVICE_BLOCKS = 1000;

export const rulesBackend: FirewallBackend = {
  mode: 'rules',
  advice: { blocks: RULES_ADVICE_BLOCKS, text: 'as ufw rules: every new SMTP connection walks them and every change reloads ufw; --firewall ipset keeps them in a set (README "Large block lists")' },
  summary: 'one ufw rule each, put in force by ufw reload',
  kernelName: "the kernel's rules",
  recordName: 'the file',
  updateName: 'ufw reload',
  reloadsAll: true,
  missingRecord: MISSING_SECTION,
  enabled: ufwEnabled,
  roles: ['ufw4', 'ufw6'],
  files: (settings) => ufwFiles(settings, true),
  settingsProblem: () => null,
  kernelOwes: async () => false, // a reload owed is recorded (pending-reloads); ufw loads the files at boot
  // the live chain matters only when the section changes its kind (from the ipset backend's set line, or emptied for another backend)
  probe: async (settings, targets, query, active) => (active && !namesSets(targets) ? {} : { live: await probeLive(settings, query) }),
  plan(blocks, targets, context) {
    const saved = parseSaveFile(targets.get('sets')?.text ?? ''); // a --match-set line (a switch from ipset) stands for these
    const kind = blocks === null ? null : { render: (family: 4 | 6) => renderUfwRules(blocks, family, family === 4 ? context.ufwChain : context.ufw6Chain), check: checkUfwLine, sets: false };
    const sections = planSections(kind, targets, context, saved);
    return { mode: 'rules', active: blocks !== null, ...sections, owes: sections.changes.length > 0, context };
  },
  async apply(part, run, reload) {
    await applySections(part.changes, part.commands, part.context, reload, run);
    return [];
  },
  recorded: ufwRecorded,
  readKernel: readUfwKernel,
  dropped: chainDrops,
  bootProblem: async () => null,
  boot: async () => 'nothing to load: ufw loads its rules files, with their smtpguard section, at boot',
  install: async (context) => (context.uninstall || USES_UFW.has(context.settings.firewall) ? ufwInstallPart(context) : null),
};
