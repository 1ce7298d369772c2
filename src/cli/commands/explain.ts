/**
 * `smtpguard explain ADDR` (read-only): every event of that address (or of its IPv6
 * prefix) in the window as the log lines themselves with file:line, its counts against
 * each threshold, and the block it is in and why, or why not. The answer is run's: the
 * decision is made by the same code as `run --dry-run` (policy, fleet, manual blocks,
 * bans), and every number is the policy's reason record for the address, never recounted.
 */
import { inRange, networkOf, parseAdminRange, parseIp, parseRange, rangeWord } from '../../address.js';
import { usageError } from '../../errors.js';
import { describeUntil, type Override } from '../../decide/overrides.js';
import { readOverrides } from '../../store/overrides.js';
import { describeSpared } from '../../report/plan-report.js';
import { lengthText, ordinal } from '../../decide/bans.js';
import { localTime } from '../../report/report.js';
import { readBans } from '../../store/bans.js';
import { recordedBlocks } from '../../write/firewall/registry.js';
import type { Block, Decision, Reason } from '../../decide/policy.js';
import type { Settings } from '../settings.js';
import { clientLines } from '../../scan/lines.js';
import { chooseJournal, type Io } from './common.js';
import { decideAsRun } from './run.js';
import { summaryOfAddress } from '../../count/summary.js';

export interface ExplainOptions {
  target: string;
  now: Date;
  defaultLogs: boolean;
  json: boolean;
}

const SHOWN_LINES = 200;

export async function explainCommand(settings: Settings, options: ExplainOptions, io: Io): Promise<void> {
  const read = parseAdminRange(options.target);
  if ('problem' in read) throw usageError(read.problem, 'give one address, e.g. 192.0.2.7 or 2001:db8:1:2::5');
  if (rangeWord(read.cidr) === read.cidr) throw usageError(`${options.target} is a range: explain takes one address`, 'give one address, e.g. 192.0.2.7 or 2001:db8:1:2::5');
  const address = rangeWord(read.cidr);
  const family = address.includes(':') ? 6 : 4;
  const scope = family === 6 ? networkOf(address, settings.ipv6Prefix) : `${address}/32`;
  const scopeRange = parseRange(scope);
  const to = options.now.getTime();
  const from = settings.window === Infinity ? -Infinity : to - settings.window;

  // the lines themselves: the scanner's events of this address (or prefix), from the logs run reads
  const journal = await chooseJournal(settings, options.defaultLogs, { ...io, note: undefined });
  const found = await clientLines({
    logs: journal !== null && options.defaultLogs ? [] : settings.log,
    usingDefaultLogs: options.defaultLogs,
    journal,
    now: options.now,
    window: { from, to },
    match: (a) => inRange(parseIp(a), scopeRange),
    keep: SHOWN_LINES,
    warn: io.warn,
    stdin: io.stdin,
  });

  // the decision, as run --dry-run makes it, with the policy's reason record for this address
  let overrides: Override[] = [];
  const decided = await decideAsRun(settings, { now: options.now, defaultLogs: options.defaultLogs, dryRun: true, explain: [address] }, io, async () => (overrides = await readOverrides(settings.stateDir)));
  const { decision, summaries } = decided;
  const reason = decided.policy.reasons![0]!;
  const ip = parseIp(address);
  const mine = summaryOfAddress(summaries, address);
  const counts =
    family === 4
      ? { total: reason.counted, threshold: settings.threshold, offendersIn24: reason.subnet?.offenders ?? 0, subnetHosts: settings.subnetHosts }
      : { total: reason.counted, prefix: scope, prefixTotal: reason.prefix?.counted ?? 0, threshold6: settings.threshold6 };
  const override = overrides.find((o) => inRange(ip, parseRange(o.cidr)) && (o.until === null || Date.parse(o.until) > to));
  const { verdict, block } = verdictOf(address, reason, decision, decided.policy, override, settings);

  const firewall = await inFirewallFiles(settings, ip);
  // its ban history: every range holding it that was banned (running, or remembered for the recidive window)
  const bans = (await readBans(settings.stateDir, io.warn, true)).filter((r) => inRange(ip, parseRange(r.cidr)));
  const history = bans.map((r) => ({
    cidr: r.cidr,
    reason: r.reason,
    times: r.times,
    banFor: lengthText(r.banMs),
    firstBlocked: new Date(r.firstBlocked).toISOString(),
    lastEvent: new Date(r.lastEvent).toISOString(),
    until: r.until === null ? null : new Date(r.until).toISOString(),
    running: r.until === null || r.until > options.now.getTime(),
  }));
  const lines = found.lines;
  const result = {
    address,
    scope,
    bans: history,
    window: { from: Number.isFinite(from) ? new Date(from).toISOString() : null, to: options.now.toISOString() },
    events: found.matched,
    lines,
    counts,
    eventsByKind: mine?.events ?? null,
    verdict,
    block: block ?? null,
    inFirewallFiles: firewall,
    override: override ?? null,
    reason,
  };
  if (options.json) {
    io.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return;
  }
  const out = [`${address}: ${verdict}`, ''];
  out.push(countsLine(reason, settings));
  if (mine !== undefined) out.push(`Events by kind: ${Object.entries(mine.events).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}`);
  out.push(`In the firewall's record now (${settings.firewall}): ${firewall.length > 0 ? firewall.join(', ') : 'no'}`);
  for (const b of history) {
    const end = b.until === null ? 'for good' : `${b.running ? 'until' : 'ended'} ${localTime(Date.parse(b.until))}`;
    out.push(`Ban history: ${b.cidr} (${b.reason}), ${ordinal(b.times)} time, ${b.banFor}, ${end}; first blocked ${localTime(Date.parse(b.firstBlocked))}, last event ${localTime(Date.parse(b.lastEvent))}`);
  }
  const matched = found.matched;
  out.push('', matched === 0 ? `No log lines of ${family === 6 ? scope : address} in the window.` : `Log lines in the window (${matched}${matched > lines.length ? `, the first ${lines.length} shown` : ''}${found.sources.length > 1 ? '; a line in both mail.log and mail.warn is one event' : ''}):`);
  for (const l of lines) out.push(`  ${l.file}:${l.line}: ${l.text}`);
  if (found.sources.length === 0) out.push('  (no log read: with --log - the lines are not shown; smtpguard scan counts them)');
  io.stdout.write(out.join('\n') + '\n');
}

/** Why a range wider than a prefix has no threshold (policy.ts wideRangeThreshold). */
const NEVER_WIDE = 'IPV6_SUBNET_PREFIXES=0 blocks no range wider than a prefix';

/**
 * A prefix's threshold and the setting it comes from: THRESHOLD6, or for a range added up per
 * /48 past --max-tracked, THRESHOLD6 x IPV6_SUBNET_PREFIXES (none when that is 0: NEVER_WIDE).
 */
function thresholdText(threshold: number, settings: Settings): string {
  return `${threshold === settings.threshold6 ? 'THRESHOLD6' : 'THRESHOLD6 x IPV6_SUBNET_PREFIXES'}=${threshold}`;
}

/** The counts under the verdict, as the policy counted them. */
function countsLine(reason: Reason, settings: Settings): string {
  const spared = reason.events - reason.counted;
  const sparedText = spared > 0 ? ` (${spared} more not counted)` : '';
  if (reason.subnet !== undefined) {
    const s = reason.subnet;
    const client = s.clientOffenders < s.offenders ? `, ${s.clientOffenders} on client-level evidence` : '';
    return `Counts in the window: ${reason.counted} of THRESHOLD=${settings.threshold}${sparedText}; offenders in its /24: ${s.offenders} of SUBNET_HOSTS=${settings.subnetHosts}${client}`;
  }
  const p = reason.prefix!;
  const folded = Number(p.cidr.slice(p.cidr.indexOf('/') + 1)) < settings.ipv6Prefix ? ` (its prefixes added up past MAX_TRACKED=${settings.maxTracked})` : '';
  const client = p.clientLevel < p.counted ? ` (${p.clientLevel} about the client: only those add up across its addresses)` : '';
  const subnet = reason.subnet6 === undefined ? '' : `; its /${settings.ipv6Subnet} ${reason.subnet6.cidr}: ${reason.subnet6.offendingPrefixes} offending prefixes of IPV6_SUBNET_PREFIXES=${settings.ipv6SubnetPrefixes}`;
  return `Counts in the window: this address ${reason.counted}${sparedText}; its prefix ${p.cidr}${folded}: ${p.counted}${Number.isFinite(p.threshold) ? ` of ${thresholdText(p.threshold, settings)}` : ` (${NEVER_WIDE})`}${client}${subnet}`;
}

/** Blocked or not, and why: the final decision says whether, the policy's reason record why. */
function verdictOf(address: string, reason: Reason, decision: Decision, policy: Decision, override: Override | undefined, settings: Settings): { verdict: string; block: Block | undefined } {
  const ip = parseIp(address);
  const holds = (cidr: string) => inRange(ip, parseRange(cidr));
  const holding = decision.blocks.find((b) => holds(b.cidr));
  // an exception of a range blocked whole (someone logged in there) is not blocked
  const exception = holding?.exceptions?.find(holds);
  if (holding !== undefined && exception === undefined) return { verdict: `blocked: in ${holding.cidr} (${holding.reason}): ${whyBlocked(holding, reason, policy, override, settings)}`, block: holding };
  if (exception !== undefined) return { verdict: `not blocked: an exception (${exception}) in ${holding!.cidr}, which is blocked: someone logged in there`, block: undefined };
  const ignored = decision.ignored.find((i) => i.address === address || (i.address.includes('/') && holds(i.address)));
  if (ignored !== undefined) return { verdict: `not blocked: ${ignored.reason}`, block: undefined };
  if (reason.neverBlock !== undefined) return { verdict: `not blocked: never blocked (${reason.neverBlock})`, block: undefined };
  const over = decision.overLimit.find((b) => holds(b.cidr));
  if (over !== undefined) return { verdict: `not blocked: its block ${over.cidr} (${over.total} counted events) is left out by MAX_BLOCKS=${settings.maxBlocks}: worse offenders took the places`, block: undefined };
  const threshold = reason.threshold;
  if (reason.spared.length > 0 && reason.counted < threshold && reason.events >= threshold) {
    return { verdict: `not blocked: ${reason.spared.map(describeSpared).join('; ')} (spared)`, block: undefined };
  }
  if (reason.subnet !== undefined) return { verdict: `not blocked: ${reason.counted} counted events, under THRESHOLD=${threshold}`, block: undefined };
  const p = reason.prefix!;
  if (p.outcome === 'holds a never-block range' || p.outcome === 'crowded with logins' || p.outcome === 'counted per address') {
    const why = p.outcome === 'holds a never-block range' ? 'it holds a never-block range' : p.outcome === 'crowded with logins' ? 'it is crowded with addresses where someone logged in' : 'IPV6_PREFIX is 128';
    return { verdict: `not blocked: the prefix ${p.cidr} has ${p.counted} counted events, but ${why}, so its addresses count one by one: this one has ${reason.counted}, under THRESHOLD6=${threshold}`, block: undefined };
  }
  if (p.counted >= threshold && p.clientLevel < threshold) {
    return { verdict: `not blocked: the prefix ${p.cidr} has ${p.counted} counted events, but only ${p.clientLevel} about the client (rejects of recipients, relaying or senders add up for one address only), and this address has ${reason.counted} of THRESHOLD6=${threshold}`, block: undefined };
  }
  if (!Number.isFinite(p.threshold)) return { verdict: `not blocked: the range ${p.cidr} has ${p.counted} counted events, but ${NEVER_WIDE}`, block: undefined };
  return { verdict: `not blocked: the prefix ${p.cidr} has ${p.counted} counted events, under ${thresholdText(p.threshold, settings)}`, block: undefined };
}

function whyBlocked(block: Block, reason: Reason, policy: Decision, override: Override | undefined, settings: Settings): string {
  if (block.reason === 'manual') return `blocked by hand (smtpguard block)${override?.comment ? `: ${override.comment}` : ''}, ${override === undefined ? '' : describeUntil(override)}`;
  if (block.reason === 'fleet' && block.fleet !== undefined) return `a decision shared through CrowdSec (${block.fleet.scenario} from ${block.fleet.origin}) until ${block.fleet.until}`;
  // the policy's own block, as the reason record names it
  const own = reason.block === null ? undefined : policy.blocks.find((b) => b.cidr === reason.block);
  const ban = block.times === undefined ? '' : `: ${ordinal(block.times)} ban${block.banFor === undefined ? '' : ` of ${block.banFor}`}, ${block.until === null || block.until === undefined ? 'for good' : `until ${block.until}`}`;
  if (own === undefined && reason.counted === 0) return `a ban kept from an earlier run, which the window no longer shows${ban}`;
  if (own === undefined) return `a ban still running; in the window it has ${reason.counted} counted events${ban}`;
  if (own.cidr !== block.cidr) {
    const [, ownBits] = parseRange(own.cidr);
    const [, bits] = parseRange(block.cidr);
    return bits < ownBits
      ? `${own.cidr} (${own.reason}) lies inside ${block.cidr}, a ban still running${ban}`
      : `${own.cidr} (${own.reason}) was split by an unblock inside it; this address stays blocked on its own: ${reason.counted} counted events (THRESHOLD${reason.prefix === undefined ? '' : '6'}=${reason.threshold})`;
  }
  const why =
    block.reason === 'subnet'
      ? `${reason.subnet?.offenders ?? block.addressCount} offenders in this /24 (SUBNET_HOSTS=${settings.subnetHosts})`
      : block.reason === 'subnet6'
        ? `offending prefixes in this /${settings.ipv6Subnet} add up (IPV6_SUBNET_PREFIXES=${settings.ipv6SubnetPrefixes}, THRESHOLD6=${settings.threshold6}): ${block.total} counted events from ${block.addressCount} addresses`
        : block.reason === 'prefix'
          ? `the IPv6 prefix has ${reason.prefix?.counted ?? block.total} counted events (${thresholdText(reason.prefix?.threshold ?? settings.threshold6, settings)})`
          : `${reason.counted} counted events (THRESHOLD${reason.prefix === undefined ? '' : '6'}=${reason.threshold})`;
  return why;
}

/** The blocks the firewall's record holds whose range holds the address. */
async function inFirewallFiles(settings: Settings, ip: ReturnType<typeof parseIp>): Promise<string[]> {
  return (await recordedBlocks(settings)).flatMap((s) => s.cidrs).filter((cidr) => inRange(ip, parseRange(cidr)));
}
