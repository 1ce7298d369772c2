/**
 * The `rules` backend (the default): one ufw rule per block in the generated section,
 * `-A ufw-smtpguard -s 192.0.2.0/24 -j ufw-smtpguard-log`, put in force by `ufw reload`.
 * Every new SMTP connection walks the list: fine for hundreds of blocks, costly for tens of
 * thousands (README "Large block lists"; bench/results.md).
 */
import { parseRange, withLength } from '../../address.js';
import { sortBlocks } from '../access-map.js';
import type { Block } from '../../decide/policy.js';
import type { ChainRule, FirewallBackend, KernelView, Query } from './backend.js';

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

/** Packets per source of the chain's rules: `iptables -L CHAIN -v -x -n`; null when it cannot be read. */
export async function readChainRules(family: 4 | 6, chain: string, query: Query): Promise<ChainRule[] | null> {
  const { ok, output } = await query(family === 4 ? 'iptables' : 'ip6tables', ['-L', chain, '-v', '-x', '-n']);
  if (!ok) return null;
  const rules: ChainRule[] = [];
  for (const line of output.split('\n').slice(2)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 4 || !/^\d+$/.test(fields[0]!)) continue;
    const set = / match-set (\S+) src/.exec(line);
    if (set !== null) {
      rules.push({ source: null, set: set[1]!, packets: Number(fields[0]) });
      continue;
    }
    if (fields[2] === 'RETURN') continue; // an exception inside a block: not a block
    const source = fields[fields.length - 2]!; // ip6tables leaves the opt column empty: count from the right
    rules.push({ source: withLength(source), set: null, packets: Number(fields[0]) });
  }
  return rules;
}

export const rulesBackend: FirewallBackend = {
  mode: 'rules',
  sectionLines: renderUfwRules,
  checkLine: checkUfwLine,
  async readKernel(rules): Promise<KernelView> {
    const packets = new Map<string, number>();
    for (const r of rules) if (r.source !== null) packets.set(r.source, (packets.get(r.source) ?? 0) + r.packets);
    return { blocks: [...packets.keys()], packets, sets: [] };
  },
};
