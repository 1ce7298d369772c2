/**
 * The blocks in force as the ufw files say (edge): the `-s CIDR` of every generated line of
 * both sections, or the saved members of the set a `--match-set` line names (--firewall ipset). One reader for `status`, the bare summary and `explain`.
 */
import { readFile } from 'node:fs/promises';
import { SmtpguardError } from '../../errors.js';
import { BEGIN_MARKER, findSection, sectionLines } from '../sections.js';
import path from 'node:path';
import { sectionCidrs, usesSets, type FirewallSettings } from './backend.js';
import { readSaveFile, SAVE_FILE } from './ipset.js';

export interface SectionBlocks {
  file: string;
  /** false: the file has no smtpguard section (not installed); null: it could not be read. */
  installed: boolean | null;
  /** The CIDRs of the generated lines, in file order. */
  cidrs: string[];
  /** Why it could not be read (or its section is broken), or null. */
  problem: string | null;
}

export async function readSectionBlocks(settings: Omit<FirewallSettings, 'firewall'>): Promise<SectionBlocks[]> {
  const out: SectionBlocks[] = [];
  const saved = await readSaveFile(settings.stateDir); // the members of a --match-set line
  for (const [file, chain] of [
    [settings.ufwRules, settings.ufwChain],
    [settings.ufw6Rules, settings.ufw6Chain],
  ] as const) {
    let text: string;
    try {
      text = await readFile(file, 'latin1');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const why = code === 'EACCES' || code === 'EPERM' ? 'permission denied (root only)' : code === 'ENOENT' ? 'no such file' : (error as Error).message;
      out.push({ file, installed: null, cidrs: [], problem: why });
      continue;
    }
    if (!text.split('\n').some((l) => l.startsWith(BEGIN_MARKER))) {
      out.push({ file, installed: false, cidrs: [], problem: null });
      continue;
    }
    try {
      const lines = sectionLines(text, findSection(text, file));
      const cidrs = sectionCidrs(lines, chain, saved.sets);
      // a --match-set line stands for the saved members: without the save file they are unknown, not none
      const problem = saved.text === null && usesSets(lines) ? `its section names ipset sets and ${path.join(settings.stateDir, SAVE_FILE)} cannot be read (root only; smtpguard run writes it)` : null;
      out.push({ file, installed: true, cidrs, problem });
    } catch (error) {
      out.push({ file, installed: true, cidrs: [], problem: error instanceof SmtpguardError ? error.message : (error as Error).message });
    }
  }
  return out;
}
