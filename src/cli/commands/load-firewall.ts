/**
 * `smtpguard load-firewall`: what the nftables boot unit runs before the network comes up. The
 * chosen backend puts its recorded blocks in force, each with the time its ban has left now;
 * for the ufw backends ufw itself does this at boot, and the command says so. Under the run
 * lock, so that it never meets a run half-way.
 */
import { backendFor } from '../../write/firewall/registry.js';
import { execCommand } from '../../write/exec.js';
import type { Settings } from '../settings.js';
import { withRunLock } from './locked.js';
import type { Io } from './common.js';

export async function loadFirewallCommand(settings: Settings, io: Io): Promise<void> {
  const done = await withRunLock(settings, false, () => backendFor(settings.firewall).boot(settings, execCommand));
  io.stdout.write(`smtpguard load-firewall: ${done}\n`);
}
