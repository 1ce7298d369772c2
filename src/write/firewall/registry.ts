/**
 * The firewall backends smtpguard knows, in the order a switch withdraws them. `--firewall`
 * chooses one; plan and apply ask every one of them (the chosen one puts the blocks in force,
 * the others take out what they still have), through the interface in backend.ts.
 */
import type { FirewallBackend, FirewallSettings, RecordedBlocks } from './backend.js';
import { rulesBackend } from './rules.js';
import { ipsetBackend } from './ipset.js';
import { nftablesBackend } from './nftables.js';
import { noneBackend } from './none.js';

export const BACKENDS: readonly FirewallBackend[] = [rulesBackend, ipsetBackend, nftablesBackend, noneBackend];

export const FIREWALL_MODES: readonly string[] = BACKENDS.map((b) => b.mode);

export function backendFor(mode: string): FirewallBackend {
  const backend = BACKENDS.find((b) => b.mode === mode);
  if (backend === undefined) throw new Error(`no firewall backend ${mode}`);
  return backend;
}

/**
 * What the backends' records say is in force: the chosen backend's files, and the blocks another
 * backend still records (a switch whose withdrawal is owed). For status, the bare command, explain.
 */
export async function recordedBlocks(settings: FirewallSettings): Promise<RecordedBlocks[]> {
  const chosen = backendFor(settings.firewall);
  const out = await chosen.recorded(settings);
  const files = new Set(out.map((r) => r.file));
  for (const backend of BACKENDS) {
    if (backend === chosen || backend.roles.length === 0) continue; // a backend with no files has nothing left to withdraw
    for (const r of await backend.recorded(settings)) {
      if (files.has(r.file) || r.installed !== true || r.cidrs.length === 0 || r.problem !== null) continue;
      out.push(r);
      files.add(r.file);
    }
  }
  return out;
}
