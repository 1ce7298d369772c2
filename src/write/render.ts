/**
 * Render: blocks -> the lines of the generated sections, and sections -> whole files.
 * Pure and deterministic: the same blocks always give the same bytes, sorted by address.
 */
import { compareCidrs, parseRange } from '../address.js';
import { SmtpguardError } from '../errors.js';
import type { Block } from '../decide/policy.js';

export const BEGIN_MARKER = '# BEGIN smtpguard';
export const END_MARKER = '# END smtpguard';

export const MAP_TYPES = ['hash', 'lmdb', 'btree', 'cdb', 'cidr'] as const;
export type MapType = (typeof MAP_TYPES)[number];

/** `-A ufw-smtpguard -s 192.0.2.0/24 -j ufw-smtpguard-log`, one line per block of that family. */
export function renderUfwRules(blocks: readonly Block[], family: 4 | 6, chain: string): string[] {
  return sortBlocks(blocks)
    .filter((b) => b.family === family)
    .map((b) => `-A ${chain} -s ${b.cidr} -j ${chain}-log`);
}

/**
 * `KEY REJECT TEXT` lines for a Postfix client access map.
 * cidr maps take the blocks as they are. Indexed maps (hash, lmdb, btree, cdb) are
 * looked up with the client address and then with it cut at its last `.` or `:`, so a
 * /24 is its three-octet key (`192.0.2`); an IPv6 prefix cannot be written there, so
 * the offending addresses a block names (at most MAX_BLOCK_ADDRESSES, the worst) are
 * written as Postfix logs them: the firewall blocks the whole prefix.
 */
export function renderAccessMap(blocks: readonly Block[], mapType: MapType, rejectText: string): string[] {
  const keys = new Set<string>();
  for (const b of sortBlocks(blocks)) {
    if (mapType === 'cidr') keys.add(b.cidr);
    else if (b.family === 4 && b.cidr.endsWith('/24')) keys.add(b.cidr.slice(0, b.cidr.lastIndexOf('.')));
    else for (const address of b.addresses) keys.add(address); // hosts; and the worst offenders of an IPv6 prefix
  }
  return Array.from(keys, (key) => `${key} REJECT ${rejectText}`);
}

/** Addresses inside IPv6 range blocks that an indexed map does not get (the firewall still blocks them). */
export function addressesLeftOutOfMap(blocks: readonly Block[], mapType: MapType): number {
  if (mapType === 'cidr') return 0;
  let left = 0;
  for (const b of blocks) if (b.family === 6 && !b.cidr.endsWith('/128')) left += b.addressCount - b.addresses.length;
  return left;
}

function sortBlocks(blocks: readonly Block[]): Block[] {
  return [...blocks].sort((a, b) => compareCidrs(a.cidr, b.cidr));
}

/** Text Postfix may send back in a 554 reply: printable ASCII, no client-chosen strings. */
export function rejectTextProblem(text: string): string | null {
  return /^[\x21-\x7e][\x20-\x7e]{0,199}$/.test(text) ? null : 'use 1 to 200 printable ASCII characters, not starting with a space';
}

export interface Section {
  /** Offset just after the BEGIN line (and its newline). */
  bodyStart: number;
  /** Offset of the END line. */
  bodyEnd: number;
}

/**
 * Finds the one generated section of a file: the lines between a line starting
 * `# BEGIN smtpguard` and a line starting `# END smtpguard`. Missing, repeated or
 * misordered markers are an error naming the file and the fix.
 */
export function findSection(text: string, file: string): Section {
  const begins: number[] = [];
  const ends: number[] = [];
  const lineOf = new Map<number, number>();
  for (let at = 0, n = 1; at < text.length; n++) {
    const nl = text.indexOf('\n', at);
    const lineEnd = nl === -1 ? text.length : nl;
    if (text.startsWith(BEGIN_MARKER, at)) begins.push(at);
    else if (text.startsWith(END_MARKER, at)) ends.push(at);
    lineOf.set(at, n);
    at = lineEnd + 1;
  }
  const fix = 'run "smtpguard install", or add the two marker lines from templates/ yourself';
  if (begins.length === 0 && ends.length === 0) throw new SmtpguardError(`${file} has no "${BEGIN_MARKER}" marker line`, { hint: fix });
  if (begins.length === 1 && ends.length === 0) {
    const n = lineOf.get(begins[0]!)!;
    throw new SmtpguardError(`${file} has "${BEGIN_MARKER}" on line ${n} but no "${END_MARKER}" line`, {
      hint: `add the line "${END_MARKER}" after line ${n} and the generated lines below it, or remove line ${n}; "smtpguard install" puts it back for you`,
    });
  }
  if (begins.length === 0 && ends.length === 1) {
    const n = lineOf.get(ends[0]!)!;
    throw new SmtpguardError(`${file} has "${END_MARKER}" on line ${n} but no "${BEGIN_MARKER}" line`, {
      hint: `add the line "${BEGIN_MARKER}" before line ${n} and the generated lines above it, or remove line ${n}; "smtpguard install" puts it back for you`,
    });
  }
  if (begins.length > 1 || ends.length > 1) {
    throw new SmtpguardError(`${file} has ${begins.length} "${BEGIN_MARKER}" and ${ends.length} "${END_MARKER}" lines; it must have one of each`, {
      hint: 'remove the extra marker lines (keep one section)',
    });
  }
  const begin = begins[0]!;
  const end = ends[0]!;
  if (end < begin) {
    throw new SmtpguardError(`${file} has "${END_MARKER}" before "${BEGIN_MARKER}"`, { hint: 'put the BEGIN line first, or ' + fix });
  }
  const nl = text.indexOf('\n', begin);
  return { bodyStart: nl + 1, bodyEnd: end };
}

/** The file with its section's body replaced; every byte outside the section is kept. */
export function replaceSection(text: string, section: Section, lines: readonly string[]): string {
  return text.slice(0, section.bodyStart) + lines.map((l) => `${l}\n`).join('') + text.slice(section.bodyEnd);
}

export function sectionLines(text: string, section: Section): string[] {
  return text
    .slice(section.bodyStart, section.bodyEnd)
    .split('\n')
    .filter((l) => l !== '');
}

/**
 * A ufw rules file must declare every chain a generated line jumps to, and hold the
 * section inside its `*filter` table: a jump to an undeclared chain makes `ufw reload`
 * fail half-way and leave the firewall without its rules (FIELD-NOTES §4).
 */
export function checkUfwFile(text: string, section: Section, file: string, chain: string): void {
  const filterAt = text.startsWith('*filter') ? 0 : text.lastIndexOf('\n*filter', section.bodyStart);
  const commitAt = text.indexOf('\nCOMMIT', section.bodyEnd);
  const table = filterAt === -1 || commitAt === -1 ? null : text.slice(filterAt, commitAt);
  if (table === null || /\n\*\w+/.test(table.slice(1)) || /\nCOMMIT\b/.test(table)) {
    throw new SmtpguardError(`${file}: the smtpguard section is not inside the *filter table`, {
      hint: 'move the marker lines between "*filter" and its "COMMIT" (smtpguard install puts them after the ESTABLISHED accept)',
    });
  }
  for (const name of [chain, `${chain}-log`]) {
    if (!new RegExp(`^:${escapeRegExp(name)} `, 'm').test(table)) {
      throw new SmtpguardError(`${file} does not declare the chain ${name} in its *filter table (a line ":${name} - [0:0]")`, {
        hint: 'run "smtpguard install", which declares it; a jump to an undeclared chain breaks "ufw reload"',
      });
    }
  }
}

/** Only fixed shapes reach a firewall file: chain names are checked once, here. */
export function chainNameProblem(name: string): string | null {
  return /^[A-Za-z][A-Za-z0-9_-]{0,23}$/.test(name) ? null : 'use letters, digits, - and _, at most 24 characters';
}

/** Every rendered ufw line has exactly this shape; anything else is a bug, caught before writing. */
export function checkUfwLine(line: string, chain: string): void {
  const m = /^-A (\S+) -s (\S+) -j (\S+)$/.exec(line);
  if (m === null || m[1] !== chain || m[3] !== `${chain}-log`) throw new Error(`bad generated ufw line: ${line}`);
  parseRange(m[2]!);
}

export function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
