/**
 * `smtpguard explain ADDR` (read-only): every event of that address (or of its IPv6
 * prefix) in the window as the log lines themselves with file:line, its counts
 * against each threshold, and the block it is in and why, or why not.
 */
import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { inRange, networkOf, parseAdminRange, parseIp, parseRange, rangeWord } from '../../address.js';
import { usageError } from '../../errors.js';
import { applyOverrides, describeUntil, type Override } from '../../decide/overrides.js';
import { readOverrides } from '../../store/overrides.js';
import { describeSpared } from '../../report/plan-report.js';
import { lengthText, ordinal } from '../../decide/bans.js';
import { localTime } from '../../report/report.js';
import { readBans } from '../../store/bans.js';
import { readSectionBlocks } from '../../write/firewall/section-blocks.js';
import { LineParser } from '../../read/parse.js';
import type { Settings } from '../settings.js';
import { findLogSources } from '../../read/sources.js';
import { scanAndDecide, type Io } from './common.js';

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

  // the lines themselves
  const parser = new LineParser(options.now);
  const lines: Array<{ file: string; line: number; text: string; kind: string; address: string }> = [];
  let matched = 0;
  const sources = settings.log.includes('-') ? [] : await findLogSources(settings.log, options.defaultLogs, io.warn).catch(() => []);
  for (const source of sources) {
    const raw = await readFile(source.path).catch(() => null);
    if (raw === null) continue;
    const text = (source.path.endsWith('.gz') ? gunzipSync(raw) : raw).toString('latin1');
    text.split('\n').forEach((line, i) => {
      const event = parser.parse(line);
      if (event === null || event.time < from || event.time > to || !inRange(parseIp(event.address), scopeRange)) return;
      matched++;
      if (lines.length < SHOWN_LINES) lines.push({ file: source.path, line: i + 1, text: line, kind: event.kind, address: event.address });
    });
  }

  // the decision, as run makes it
  const { decision: raw, summaries, neverBlock } = await scanAndDecide(settings, options.now, options.defaultLogs, io, false);
  const overrides: Override[] = await readOverrides(settings.stateDir).catch(() => []);
  const decision = applyOverrides(raw, overrides, { now: options.now, neverBlock, totals: new Map(summaries.map((s) => [s.address, s.total])) });
  const ip = parseIp(address);
  const mine = summaries.find((s) => s.address === address);
  const inScope = summaries.filter((s) => inRange(parseIp(s.address), scopeRange));
  const counts =
    family === 4
      ? {
          total: mine?.total ?? 0,
          threshold: settings.threshold,
          offendersIn24: summaries.filter((s) => !s.address.includes(':') && networkOf(s.address, 24) === networkOf(address, 24) && s.total >= settings.threshold).length,
          subnetHosts: settings.subnetHosts,
        }
      : { total: mine?.total ?? 0, prefix: scope, prefixTotal: inScope.reduce((sum, s) => sum + s.total, 0), threshold6: settings.threshold6 };
  const holding = decision.blocks.find((b) => inRange(ip, parseRange(b.cidr)));
  // an exception of a range blocked whole (someone logged in there) is not blocked
  const exception = holding?.exceptions?.find((e) => inRange(ip, parseRange(e)));
  const block = exception === undefined ? holding : undefined;
  const ignored = decision.ignored.find((i) => i.address === address || (i.address.includes('/') && inRange(ip, parseRange(i.address))));
  const spared = decision.spared.find((s) => s.address === address);
  const guard = neverBlock.find((n) => inRange(ip, parseRange(n.cidr)));
  const override = overrides.find((o) => inRange(ip, parseRange(o.cidr)) && (o.until === null || Date.parse(o.until) > to));
  let verdict: string;
  if (block !== undefined) {
    const why =
      block.reason === 'manual'
        ? `blocked by hand (smtpguard block)${override?.comment ? `: ${override.comment}` : ''}, ${override === undefined ? '' : describeUntil(override)}`
        : block.reason === 'subnet'
          ? `${block.addressCount} offenders in this /24 (SUBNET_HOSTS=${settings.subnetHosts})`
          : block.reason === 'subnet6'
            ? `offending prefixes in this /${settings.ipv6Subnet} add up (IPV6_SUBNET_PREFIXES=${settings.ipv6SubnetPrefixes}, THRESHOLD6=${settings.threshold6}): ${block.total} counted events from ${block.addressCount} addresses`
          : block.reason === 'prefix'
            ? `the IPv6 prefix has ${block.total} counted events (THRESHOLD6=${settings.threshold6})`
            : `${block.total} counted events (THRESHOLD=${family === 4 ? settings.threshold : settings.threshold6})`;
    verdict = `blocked: in ${block.cidr} (${block.reason}): ${why}`;
  } else if (exception !== undefined) verdict = `not blocked: an exception (${exception}) in ${holding!.cidr}, which is blocked: someone logged in there`;
  else if (ignored !== undefined) verdict = `not blocked: ${ignored.reason}`;
  else if (guard !== undefined) verdict = `not blocked: never blocked (${guard.source} ${guard.cidr})`;
  else if (spared !== undefined) verdict = `not blocked: ${describeSpared(spared)} (spared)`;
  else verdict = `not blocked: ${family === 4 ? `${counts.total} counted events, under THRESHOLD=${settings.threshold}` : `the prefix ${scope} has ${'prefixTotal' in counts ? counts.prefixTotal : 0} counted events, under THRESHOLD6=${settings.threshold6}`}`;

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
  const result = { address, scope, bans: history, window: { from: Number.isFinite(from) ? new Date(from).toISOString() : null, to: options.now.toISOString() }, events: matched, lines, counts, eventsByKind: mine?.events ?? null, verdict, block: block ?? null, inFirewallFiles: firewall, override: override ?? null };
  if (options.json) {
    io.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return;
  }
  const out = [`${address}: ${verdict}`, ''];
  out.push(family === 4 ? `Counts in the window: ${counts.total} of THRESHOLD=${settings.threshold}; offenders in its /24: ${'offendersIn24' in counts ? counts.offendersIn24 : 0} of SUBNET_HOSTS=${settings.subnetHosts}` : `Counts in the window: this address ${counts.total}; its prefix ${scope}: ${'prefixTotal' in counts ? counts.prefixTotal : 0} of THRESHOLD6=${settings.threshold6}`);
  if (mine !== undefined) out.push(`Events by kind: ${Object.entries(mine.events).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}`);
  out.push(`In the generated ufw section now: ${firewall.length > 0 ? firewall.join(', ') : 'no'}`);
  for (const b of history) {
    const end = b.until === null ? 'for good' : `${b.running ? 'until' : 'ended'} ${localTime(Date.parse(b.until))}`;
    out.push(`Ban history: ${b.cidr} (${b.reason}), ${ordinal(b.times)} time, ${b.banFor}, ${end}; first blocked ${localTime(Date.parse(b.firstBlocked))}, last event ${localTime(Date.parse(b.lastEvent))}`);
  }
  out.push('', matched === 0 ? `No events of ${family === 6 ? scope : address} in the window.` : `Events in the window (${matched}${matched > lines.length ? `, the first ${lines.length} shown` : ''}):`);
  for (const l of lines) out.push(`  ${l.file}:${l.line}: ${l.text}`);
  if (sources.length === 0) out.push('  (no log files read: the journal is not searched line by line; smtpguard scan counts it)');
  io.stdout.write(out.join('\n') + '\n');
}

/** The generated ufw lines whose range holds the address. */
async function inFirewallFiles(settings: Settings, ip: ReturnType<typeof parseIp>): Promise<string[]> {
  return (await readSectionBlocks(settings)).flatMap((s) => s.cidrs).filter((cidr) => inRange(ip, parseRange(cidr)));
}
