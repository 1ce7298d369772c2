/**
 * Firewall backends: how blocks reach the kernel. Both keep ufw's rules files as the one
 * place the firewall is configured (a generated section in before.rules and before6.rules);
 * they differ in what that section holds and how a change is put in force:
 *
 * - `rules` (rules.ts): one `-A CHAIN -s CIDR -j CHAIN-log` line per block, `ufw reload`.
 * - `ipset` (ipset.ts): one `-m set --match-set` line per family; the blocks are members of
 *   two ipset `hash:net` sets, swapped in whole with `ipset restore` (no ufw reload), and
 *   recreated at boot by a generated section of ufw's before.init.
 *
 * A backend is four things: the section it renders, the blocks a section line stands for,
 * its own files (if any), and what the kernel says (enforced blocks, packet counters). A
 * third backend (plain nftables sets, for hosts without ufw) is one more file here.
 */
import type { Block } from '../../decide/policy.js';
import { escapeRegExp } from '../sections.js';
import { readChainRules, rulesBackend } from './rules.js';
import { ipsetBackend } from './ipset.js';

export const FIREWALL_MODES = ['rules', 'ipset'] as const;
export type FirewallMode = (typeof FIREWALL_MODES)[number];

/** The settings the firewall stage needs, and no more. */
export interface FirewallSettings {
  firewall: FirewallMode;
  ufwRules: string;
  ufw6Rules: string;
  ufwChain: string;
  ufw6Chain: string;
  stateDir: string;
}

/** A read-only command (iptables -L, ipset list): ok and its stdout, else why not. */
export type Query = (command: string, args: readonly string[]) => Promise<{ ok: boolean; output: string }>;

/** What the kernel enforces, as one backend reads it back. */
export interface KernelView {
  /** The CIDRs the kernel matches for this family's chain. */
  blocks: string[];
  /** Packets sent to the log-and-drop chain: per block (rules), or null per block when only a total is known. */
  packets: Map<string, number>;
  /** Per-set totals (ipset): members in the kernel and the packets its rule matched. */
  sets: Array<{ name: string; members: number; maxelem: number | null; packets: number | null }>;
}

export interface FirewallBackend {
  readonly mode: FirewallMode;
  /** The lines of the generated section of one ufw rules file (pure). */
  sectionLines(blocks: readonly Block[], family: 4 | 6, chain: string): string[];
  /** Throws when a rendered line is not of this backend's one shape (a bug, caught before writing). */
  checkLine(line: string, chain: string): void;
  /** What the kernel enforces through the chain's rules that are of this backend's shape. */
  readKernel(rules: readonly ChainRule[], family: 4 | 6, query: Query): Promise<KernelView>;
}

/** One rule of the chain as `iptables -L CHAIN -v -x -n` shows it: its source or its set, and its packet counter. */
export interface ChainRule {
  source: string | null;
  set: string | null;
  packets: number;
}

/**
 * The kernel's view of one family, whichever backend's rules the chain holds now (both,
 * for a moment, never; but a mode switch whose reload is owed shows the other one's).
 * null when the chain cannot be read (not root, ufw not loaded).
 */
export async function readKernel(family: 4 | 6, chain: string, query: Query): Promise<KernelView | null> {
  const rules = await readChainRules(family, chain, query);
  if (rules === null) return null;
  const views = [await rulesBackend.readKernel(rules, family, query), await ipsetBackend.readKernel(rules, family, query)];
  return { blocks: views.flatMap((v) => v.blocks), packets: new Map(views.flatMap((v) => [...v.packets])), sets: views.flatMap((v) => v.sets) };
}

export function backendFor(mode: FirewallMode): FirewallBackend {
  return mode === 'ipset' ? ipsetBackend : rulesBackend;
}

/**
 * The CIDRs a section's lines put in force, whichever backend wrote them: `-s CIDR` lines
 * are one block each; a `--match-set NAME` line stands for the members of NAME in the
 * ipset save file (`saved`). Other lines are not generated ones and count for nothing.
 */
export function sectionCidrs(lines: readonly string[], chain: string, saved: ReadonlyMap<string, readonly string[]>): string[] {
  const cidrs: string[] = [];
  const rule = new RegExp(`^-A ${escapeRegExp(chain)} -s (\\S+) -j ${escapeRegExp(chain)}-log$`); // not an exception's RETURN
  const set = new RegExp(`^-A ${escapeRegExp(chain)} -m set --match-set (\\S+) src -j `);
  for (const line of lines) {
    const m = rule.exec(line);
    if (m !== null) cidrs.push(m[1]!);
    const s = set.exec(line);
    if (s !== null) for (const cidr of saved.get(s[1]!) ?? []) cidrs.push(cidr);
  }
  return cidrs;
}

/** Whether a section's lines are the ipset backend's (a `--match-set` line). */
export function usesSets(lines: readonly string[]): boolean {
  return lines.some((l) => / -m set --match-set /.test(l));
}
