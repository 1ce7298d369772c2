/**
 * How a Plan reads: the `--dry-run` text, the `--json` object and the one-line
 * summary of a run that changed something. Pure.
 */
import type { Block, Decision, Spared } from '../decide/policy.js';
import { ordinal } from '../decide/bans.js';
import type { Plan } from '../write/plan.js';
import type { Summarised } from '../count/summary.js';

/** Blocks named in the summary line; the rest are counted. */
export const SUMMARY_NAMED = 10;

/**
 * `blocks: 41 (+2 -1) +198.51.100.0/24 +203.0.113.5/32 (3rd time, 4d) -2001:db8:1:2::/64`: the
 * line cron mails and syslog keeps, naming at most SUMMARY_NAMED changes ("and N more"; a
 * repeat offender with its ban count and length); then
 * what a block cap or the map's bound left out (`, 2001 offenders left out by --max-blocks`).
 */

export function summaryLine(plan: Plan): string {
  const { blocks, added, removed, addedCidrs, removedCidrs, leftOut, leftOutOfMap } = plan.summary;
  // only the blocks the line names are looked at (100,000 blocks cost 0.1 s per line otherwise)
  const shown = new Set(addedCidrs.slice(0, SUMMARY_NAMED));
  const repeat = new Map<string, string>();
  for (const b of plan.decision.blocks) {
    if (!shown.has(b.cidr)) continue;
    // a block no log line made says what made it: the admin, or the fleet
    if (b.reason === 'manual' || b.reason === 'fleet') repeat.set(b.cidr, ` (${b.reason})`);
    else if (b.times !== undefined && b.times > 1) repeat.set(b.cidr, ` (${ordinal(b.times)} time, ${b.banFor ?? '?'})`);
  }
  const all = addedCidrs.length + removedCidrs.length;
  const named = [...addedCidrs.slice(0, SUMMARY_NAMED).map((c) => `+${c}${repeat.get(c) ?? ''}`), ...removedCidrs.slice(0, Math.max(0, SUMMARY_NAMED - addedCidrs.length)).map((c) => `-${c}`)];
  const more = all - named.length;
  let line = [`blocks: ${blocks} (+${added} -${removed})`, ...named, ...(more > 0 ? [`and ${more} more`] : [])].join(' ');
  if (leftOut > 0) line += `, ${leftOut} offender${leftOut === 1 ? '' : 's'} left out by --max-blocks`;
  if (leftOutOfMap > 0) line += `, ${leftOutOfMap} address${leftOutOfMap === 1 ? '' : 'es'} of IPv6 range blocks left out of the access map (the firewall has the ranges)`;
  if (plan.summary.rulesPastAdvice && plan.advice !== null) line += `, ${plan.advice}`;
  return line;
}

/** `, 812345 addresses past --max-tracked not counted one by one (IPv6 added up into 12 ranges)`: said in the cron line while a flood lasts. */
export function trackedClause(summarised: Pick<Summarised, 'addresses' | 'ranges'>): string {
  if (summarised.addresses === 0) return '';
  const ranges = summarised.ranges === 0 ? '' : ` (IPv6 added up into ${summarised.ranges} range${summarised.ranges === 1 ? '' : 's'})`;
  return `, ${summarised.addresses} address${summarised.addresses === 1 ? '' : 'es'} past --max-tracked not counted one by one${ranges}`;
}

export function renderDecision(decision: Decision): string[] {
  const lines: string[] = [];
  if (decision.blocks.length === 0) lines.push('Blocks: none');
  else {
    lines.push(`Blocks (${decision.blocks.length}):`);
    const width = decision.blocks.reduce((w, b) => Math.max(w, b.cidr.length), 0);
    for (const b of decision.blocks) lines.push(`  ${b.cidr.padEnd(width)}  ${describeBlock(b)}`);
  }
  for (const s of decision.spared) lines.push(`Spared: ${s.address} (${describeSpared(s)})`);
  for (const i of decision.ignored) lines.push(`Never blocked: ${i.address} (${i.total} event${i.total === 1 ? '' : 's'}; ${i.reason})`);
  return lines;
}

function describeBlock(b: Block): string {
  const described = describeReason(b);
  const n = b.exceptions?.length ?? 0;
  const except = n === 0 ? '' : `; except ${n <= 3 ? b.exceptions!.join(', ') : `${n} addresses`} (someone logged in there)`;
  return `${described}${except}${b.messageLevel === true ? '; rests on message rejects (not shared with the fleet)' : ''}`;
}

function describeReason(b: Block): string {
  if (b.reason === 'manual') return `manual (smtpguard block)${b.until === undefined ? '' : b.until === null ? ', for good' : `, until ${b.until}`}`;
  // a ban that keeps a block whose events have left the window
  if (b.total === 0 && b.until !== undefined) return `kept by its ban ${b.until === null ? 'for good' : `until ${b.until}`}${b.times !== undefined && b.times > 1 ? ` (${ordinal(b.times)} time)` : ''}: no counted events in the window`;
  if (b.reason === 'fleet') return `fleet: ${b.fleet?.scenario ?? '?'} from ${b.fleet?.origin ?? '?'} (CrowdSec), until ${b.fleet?.until ?? '?'}`;
  if (b.reason === 'subnet') return `${b.total} events, ${b.addressCount} offenders in this /24`;
  if (b.reason === 'prefix') return `${b.total} events, IPv6 prefix over threshold6 (${b.addressCount === 1 && b.addresses.length === 1 ? b.addresses[0] : `${b.addressCount} address${b.addressCount === 1 ? '' : 'es'}`})`;
  if (b.reason === 'subnet6') return `${b.total} events from ${b.addressCount} addresses, offending prefixes in this IPv6 network`;
  return `${b.total} events, over threshold`;
}

/** `3 SASL failures as alice: logged in as alice`, `12 recipient rejects not counted: mail accepted from it`. */
export function describeSpared(s: Spared): string {
  if (s.kind === 'recipientReject' || s.kind === 'messageReject') {
    const what = s.kind === 'recipientReject' ? plural(s.recipientRejects, 'recipient reject') : plural(s.messageRejects, 'message reject');
    return `${what} not counted: ${s.reason === 'mail accepted' ? 'mail was accepted from it' : 'Postfix confirmed its hostname'}`;
  }
  const as = s.users.length === 0 ? '' : ` as ${s.users.join(', ')}`;
  const loggedIn = s.loggedInAs.length === 0 ? 'logged in' : `logged in as ${s.loggedInAs.join(', ')}`;
  return `${plural(s.saslFailures, 'SASL failure')}${as} not counted: ${loggedIn}`;
}

const plural = (n: number, one: string): string => `${n} ${one}${n === 1 ? '' : 's'}`;

/** The dry-run report: blocks with reasons, a unified diff per file, the commands; `summarised`: the addresses past --max-tracked (said as the cron line says them). */
export async function renderPlanText(plan: Plan, summarised: Summarised): Promise<string> {
  const { createTwoFilesPatch } = await import('diff');
  const lines = [`smtpguard run --dry-run: ${summaryLine(plan)}${trackedClause(summarised)}`, '', ...renderDecision(plan.decision)];
  for (const note of plan.notes) lines.push(`Note: ${note}`);
  lines.push('');
  if (plan.changes.length === 0) lines.push('No file would change.');
  for (const change of plan.changes) {
    if (change.before === change.after) lines.push(`${change.path}: unchanged, but its reload is owed (an earlier run wrote it and did not reload, or its index is out of date)`);
    else lines.push(createTwoFilesPatch(change.path, change.path, change.before, change.after, '', '(smtpguard)').trimEnd());
  }
  lines.push('', plan.commands.length === 0 ? 'Commands: none' : 'Commands that would run:');
  for (const argv of plan.commands) lines.push(`  ${formatCommand(argv)}`);
  lines.push('', 'Nothing was changed (--dry-run).');
  return lines.join('\n') + '\n';
}

/** `summarised`: the addresses past --max-tracked, as scan --json gives them. */
export async function planJson(plan: Plan, summarised: Summarised): Promise<object> {
  const { createTwoFilesPatch } = await import('diff');
  return {
    summary: plan.summary,
    blocks: plan.decision.blocks,
    spared: plan.decision.spared,
    ignored: plan.decision.ignored,
    overLimit: plan.decision.overLimit,
    mapType: plan.mapType,
    files: plan.changes.map((c) => ({
      path: c.path,
      role: c.role,
      diff: createTwoFilesPatch(c.path, c.path, c.before, c.after, '', '(smtpguard)'),
      content: c.after,
    })),
    commands: plan.commands,
    notes: plan.notes,
    summarised: { ...summarised },
  };
}

/** argv as a shell would need it typed. */
export function formatCommand(argv: readonly string[]): string {
  return argv.map(quote).join(' ');
}

function quote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
