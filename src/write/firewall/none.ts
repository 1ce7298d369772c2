/**
 * The null backend (`--firewall none`): nothing in the kernel. The blocks reach Postfix's access
 * map only; a switch to it takes out what another backend still has in the firewall. For a host
 * whose firewall is not smtpguard's to touch, for `--dry-run` checks, and for tests: it keeps no
 * file, runs no command and reads nothing back.
 */
import path from 'node:path';
import { readBlockRecords } from '../../store/block-records.js';
import type { FirewallBackend } from './backend.js';

export const noneBackend: FirewallBackend = {
  mode: 'none',
  summary: 'nothing in the kernel: only the Postfix access map blocks (a host whose firewall is not smtpguard\'s)',
  kernelName: 'the kernel (nothing: --firewall none)',
  recordName: 'the access map',
  updateName: 'nothing',
  missingRecord: 'does not exist (the first "smtpguard run" writes it)',
  enabled: async () => null,
  roles: [],
  files: () => [],
  settingsProblem: () => null,
  kernelOwes: async () => false,
  probe: async () => ({}),
  plan: (blocks, _targets, context) => ({ mode: 'none', active: blocks !== null, changes: [], commands: [], inForce: [], owes: false, context }),
  apply: async () => [],
  // what the last run put in force (in the access map): its record of the blocks
  recorded: async (settings) => {
    const records = await readBlockRecords(settings.stateDir, () => undefined);
    return [{ file: path.join(settings.stateDir, 'blocks.json'), installed: records !== null, cidrs: records?.map((r) => r.cidr) ?? [], problem: null }];
  },
  readKernel: async () => ({ view: null, problem: null }),
  dropped: async () => null,
  bootProblem: async () => null,
  install: async () => null,
  boot: async () => 'nothing to load: --firewall none keeps nothing in the kernel',
};
