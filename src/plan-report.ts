/**
 * How a Plan reads: the `--dry-run` text, the `--json` object and the one-line
 * summary of a run that changed something. Pure.
 */
import type { Block, Decision } from './policy.js';
import type { Plan } from './plan.js';

/** Blocks named in the summary line; the rest are counted. */
export const SUMMARY_NAMED = 10;

/**
 * `blocks: 41 (+2 -1) +198.51.100.0/24 +2001:db8:1:2::/64 -203.0.113.5/32`: the line
 * cron mails and syslog keeps, naming at most SUMMARY_NAMED changes ("and N more").
 */
export function summaryLine(plan: Plan): string {
  const { blocks, added, removed, addedCidrs, removedCidrs } = plan.summary;
  const changes = [...addedCidrs.map((c) => `+${c}`), ...removedCidrs.map((c) => `-${c}`)];
  const named = changes.slice(0, SUMMARY_NAMED);
  const more = changes.length - named.length;
  return [`blocks: ${blocks} (+${added} -${removed})`, ...named, ...(more > 0 ? [`and ${more} more`] : [])].join(' ');
}

export function renderDecision(decision: Decision): string[] {
  const lines: string[] = [];
  if (decision.blocks.length === 0) lines.push('Blocks: none');
  else {
    lines.push(`Blocks (${decision.blocks.length}):`);
    const width = Math.max(...decision.blocks.map((b) => b.cidr.length));
    for (const b of decision.blocks) lines.push(`  ${b.cidr.padEnd(width)}  ${describeBlock(b)}`);
  }
  for (const s of decision.spared) lines.push(`Spared: ${s.address} (${s.saslFailures} SASL failures not counted: ${s.reason})`);
  for (const i of decision.ignored) lines.push(`Never blocked: ${i.address} (${i.total} event${i.total === 1 ? '' : 's'}; ${i.reason})`);
  return lines;
}

function describeBlock(b: Block): string {
  if (b.reason === 'subnet') return `${b.total} events, ${b.addresses.length} offenders in this /24`;
  if (b.reason === 'prefix') return `${b.total} events, IPv6 prefix over threshold6 (${b.addresses.length === 1 ? b.addresses[0] : `${b.addresses.length} addresses`})`;
  return `${b.total} events, over threshold`;
}

/** The dry-run report: blocks with reasons, a unified diff per file, the commands. */
export async function renderPlanText(plan: Plan): Promise<string> {
  const { createTwoFilesPatch } = await import('diff');
  const lines = [`smtpguard run --dry-run: ${summaryLine(plan)}`, '', ...renderDecision(plan.decision)];
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

export async function planJson(plan: Plan): Promise<object> {
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
  };
}

/** argv as a shell would need it typed. */
export function formatCommand(argv: readonly string[]): string {
  return argv.map(quote).join(' ');
}

function quote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
