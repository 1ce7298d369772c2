/**
 * Bare `smtpguard`: a short summary (what is blocked, when `run` last ran, the
 * commands) that changes nothing and exits 0, whatever it cannot read.
 */
import { recordedBlocks } from '../../write/firewall/registry.js';
import { readLastRun } from '../../store/last-run.js';
import { followerLines } from '../../report/status-report.js';
import { localTime } from '../../report/report.js';
import type { Settings } from '../settings.js';
import type { Io } from './common.js';

export interface SummaryOptions {
  version: string;
  commands: ReadonlyArray<{ name: string; description: string }>;
  /** Why the settings could not be read (the defaults are used then), or null. */
  settingsProblem: string | null;
}

export async function summaryCommand(settings: Settings, options: SummaryOptions, io: Io): Promise<void> {
  const lines = [`smtpguard ${options.version}: blocks SMTP attackers (SASL brute force, repeat offenders) in ufw and a Postfix client access map.`, ''];
  if (options.settingsProblem !== null) lines.push(`Settings: ${options.settingsProblem}; showing the defaults`, '');
  const sections = await recordedBlocks(settings);
  const installed = !sections.some((s) => s.installed === false);
  const blocks = sections.flatMap((s) => s.cidrs);
  const problems = sections.filter((s) => s.problem !== null).map((s) => `${s.file}: ${s.problem}`);
  if (!installed) lines.push(`Not installed: ${sections.filter((s) => s.installed === false).map((s) => s.file).join(' and ')} hold no smtpguard blocks yet ("smtpguard install" sets this server up).`);
  else if (problems.length > 0 && problems.length === sections.length) lines.push('Blocked now: unknown');
  else if (blocks.length === 0) lines.push('Blocked now: nothing.');
  else lines.push(`Blocked now: ${blocks.length} (${blocks.slice(0, 5).join(', ')}${blocks.length > 5 ? `, and ${blocks.length - 5} more` : ''})`);
  for (const problem of problems) lines.push(`  cannot read ${problem}`);
  const last = await readLastRun(settings.stateDir);
  lines.push(last === null ? `Last run: none recorded (in ${settings.stateDir})` : `Last run: ${localTime(Date.parse(last.time))}, ${last.summary}${last.changed ? '' : ', nothing changed'}`);
  const { followerView } = await import('../follow/in-charge.js');
  for (const line of followerLines(await followerView(settings.stateDir))) lines.push(line);
  lines.push('', 'Commands:');
  const width = options.commands.reduce((w, c) => Math.max(w, c.name.length), 0);
  for (const c of options.commands) lines.push(`  ${c.name.padEnd(width)}  ${c.description}`);
  lines.push('', 'smtpguard COMMAND --help shows its options; "man smtpguard" is the manual. Nothing was changed.');
  io.stdout.write(lines.join('\n') + '\n');
}
