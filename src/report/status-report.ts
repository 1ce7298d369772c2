/** How `smtpguard status` reads: the blocks table, the near misses and the hourly chart. Pure. */
import type { FollowerBeat } from '../store/follower.js';
import type { EventKind } from '../read/kinds.js';
import { formatColumns, localTime } from './report.js';
import type { BlockRecord } from '../store/block-records.js';

export interface StatusBlock {
  cidr: string;
  family: 4 | 6;
  /** Why and since when, from the last run; null when it kept no record of this block. */
  record: BlockRecord | null;
  /** Packets its rule sent to the log-and-drop chain (iptables counters); null: not readable. */
  packets: number | null;
  /** [SMTPGUARD BLOCK] kernel log lines from its addresses in the last 24 hours; null: none found. */
  logged: number | null;
  /** When the kernel drops it by itself (ISO; null: never), where the backend keeps a timeout (nftables); absent: it does not. */
  expires?: string | null;
}

/** Whether the firewall and Postfix have what the files say. */
export interface Enforcement {
  /** ufw.conf ENABLED=; null when there is no ufw.conf beside the rules file. */
  ufwEnabled: boolean | null;
  /** Reloads an earlier run wrote the files for but did not do, and since when (ISO). */
  owed: Array<{ what: 'ufw' | 'map'; since: string | null }>;
  /** The kernel's rules of the chains against the generated sections; null when the kernel could not be asked. */
  kernel: { missing: string[]; extra: string[] } | null;
  /** The access map's index is missing or older than the map: Postfix does not have its last text. */
  mapIndexStale: boolean;
  /** The firewall backend (--firewall). */
  firewall?: string;
  /** How the backend names its kernel copy, its record and what puts a change in force ("the kernel's sets", "the save file", "set update (ipset restore)"). */
  names?: { kernel: string; record: string; update: string };
  /** The sets its rules match (ipset, nftables): members in the kernel, their limit (null: none), packets their rule matched, whether the set is there. */
  sets?: Array<{ name: string; members: number; maxelem: number | null; packets: number | null; present?: boolean }>;
  /** Why the next boot would not put the blocks back (ipset: before.init; nftables: its unit); null: fine. */
  bootProblem?: string | null;
}

export interface Status {
  now: string;
  enforcement?: Enforcement;
  blocks: StatusBlock[];
  /** Clients with counted events under their threshold, worst first. */
  nearMisses: Array<{ address: string; total: number; threshold: number }>;
  /** Counted events per hour, the last 24 hours, oldest first; null when the logs could not be read. */
  perHour: number[] | null;
  /** Offenders that --max-blocks leaves unblocked now (0 when the logs could not be read). */
  leftOut: number;
  /** What could not be read, and why. */
  notes: string[];
  /** `smtpguard follow`, when one ran here or its unit is installed. */
  follower?: FollowerView | null;
}

/** The follower as status shows it: its last heartbeat (null: never ran), whether it runs now, whether its unit is installed. */
export interface FollowerView {
  beat: FollowerBeat | null;
  running: boolean;
  installed: boolean;
}

/** What status and the bare command say of the follower (nothing when there is none). */
export function followerLines(view: FollowerView | null | undefined): string[] {
  if (view === null || view === undefined) return [];
  const { beat, running, installed } = view;
  if (beat === null) return [`WARNING: smtpguard-follow.service is installed but the follower never ran here (no follower.json): "systemctl status smtpguard-follow"`];
  const last = beat.lastApply === null ? 'no change applied yet' : `last apply ${localTime(Date.parse(beat.lastApply.time))}: ${beat.lastApply.ok ? beat.lastApply.summary : `FAILED: ${beat.lastApply.summary}`}`;
  if (running) {
    const behind = beat.sources.map((s) => `${s.name} ${s.behindBytes === 0 ? 'caught up' : `${s.behindSeconds} s (${s.behindBytes} bytes) behind`}`);
    return [`Follower: pid ${beat.pid}, running since ${localTime(Date.parse(beat.started))}; ${behind.join(', ') || 'no log yet'}; ${last}`];
  }
  if (beat.stopped !== undefined) return [`Follower: stopped at ${localTime(Date.parse(beat.stopped))} (pid ${beat.pid})${installed ? ' although its unit is installed' : ''}; the cron job does the work; ${last}`];
  return [`WARNING: the follower (pid ${beat.pid}) is not running or is hung: its last heartbeat was ${localTime(Date.parse(beat.heartbeat))}; a cron run does the work meanwhile${installed ? ' ("systemctl status smtpguard-follow")' : ''}`];
}

/** Ten CIDRs, then how many more. */
function someOf(cidrs: readonly string[]): string {
  return cidrs.length <= 10 ? cidrs.join(' ') : `${cidrs.slice(0, 10).join(' ')} and ${cidrs.length - 10} more`;
}

const BARS = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/** One character per hour; an hour with nothing is a space, any event at least the lowest bar. */
export function sparkline(values: readonly number[]): string {
  const max = values.reduce((m, v) => Math.max(m, v), 0);
  return values.map((v) => (v === 0 ? ' ' : BARS[Math.max(0, Math.ceil((v / max) * BARS.length) - 1)]!)).join('');
}

export function renderStatus(status: Status, kinds: readonly EventKind[]): string {
  const lines: string[] = [];
  const e = status.enforcement;
  if (e?.ufwEnabled === false) lines.push('WARNING: ufw is not enabled (ENABLED=no in ufw.conf): the firewall enforces none of these blocks; "ufw enable" turns it on');
  lines.push(`smtpguard status, ${localTime(Date.parse(status.now))}`, '');
  for (const line of followerLines(status.follower)) lines.push(line);
  for (const owed of e?.owed ?? []) {
    const since = owed.since === null ? '' : ` since ${localTime(Date.parse(owed.since)).slice(11, 16)}`;
    const firewall = `${e?.names?.update ?? 'ufw reload'} owed`;
    lines.push(owed.what === 'ufw' ? `${firewall}${since}: the firewall does not have these blocks yet (the next run puts them in force)` : `postmap/postfix reload owed${since}: Postfix does not have these blocks yet (the next run reloads)`);
  }
  if (e?.kernel != null) {
    const where = e.names?.kernel ?? "the kernel's rules";
    const record = e.names?.record ?? 'the file';
    if (e.kernel.missing.length > 0) lines.push(`Not in ${where} (in ${record} only): ${someOf(e.kernel.missing)}`);
    if (e.kernel.extra.length > 0) lines.push(`In ${where} but not in ${record}: ${someOf(e.kernel.extra)}`);
  }
  if (e?.bootProblem != null) lines.push(`WARNING: ${e.bootProblem}`);
  for (const set of e?.sets ?? []) {
    const full = set.maxelem !== null && set.members >= set.maxelem * 0.9 ? ' NEARLY FULL: the next run makes it bigger' : '';
    const size = set.present === false || (set.present === undefined && set.maxelem === null) ? ' (not in the kernel)' : set.maxelem === null ? '' : ` of at most ${set.maxelem}${full}`;
    lines.push(`Set ${set.name}: ${set.members} member${set.members === 1 ? '' : 's'}${size}, ${set.packets ?? '?'} packets dropped since its rule was loaded`);
  }
  if (e?.mapIndexStale === true) lines.push('The access map\'s index is missing or older than the map: Postfix does not use its last text yet (the next run runs postmap)');
  if (lines.length > 2 && lines.at(-1) !== '') lines.push('');
  if (status.blocks.length === 0) lines.push('Blocked now: nothing.');
  else {
    lines.push(`Blocked now: ${status.blocks.length}`);
    // the kernel's own expiry, where the backend keeps one (nftables timeouts)
    const expiring = status.blocks.some((b) => b.expires !== undefined);
    const rows = [
      ['CIDR', 'REASON', 'EVENTS', 'FIRST SEEN', 'LAST SEEN', 'BLOCKED SINCE', 'UNTIL', 'TIMES', 'DROPPED', 'LOGGED 24H', ...(expiring ? ['KERNEL EXPIRES'] : [])],
      ...status.blocks.map((b) => [
        b.cidr,
        b.record?.reason ?? '?',
        b.record === null ? '?' : String(b.record.total),
        b.record === null ? '' : localTime(Date.parse(b.record.firstSeen)).slice(0, 16),
        b.record === null ? '' : localTime(Date.parse(b.record.lastSeen)).slice(0, 16),
        b.record === null ? '' : localTime(Date.parse(b.record.since)).slice(0, 16),
        b.record?.times === undefined ? '-' : b.record.until === null || b.record.until === undefined ? 'forever' : localTime(Date.parse(b.record.until)).slice(0, 16),
        b.record?.times === undefined ? '-' : String(b.record.times),
        b.packets === null ? '-' : String(b.packets),
        b.logged === null ? '-' : String(b.logged),
        ...(expiring ? [b.expires === undefined ? '?' : b.expires === null ? 'never' : localTime(Date.parse(b.expires)).slice(0, 16)] : []),
      ]),
    ];
    for (const line of formatColumns(rows, [false, false, true, false, false, false, false, true, true, true, false])) lines.push(`  ${line}`);
  }
  if (status.leftOut > 0) lines.push(`  and ${status.leftOut} offender${status.leftOut === 1 ? '' : 's'} NOT blocked: left out by --max-blocks (raise it to block them)`);
  lines.push('');
  if (status.nearMisses.length > 0) {
    lines.push('Close to the threshold (not blocked):');
    for (const n of status.nearMisses) lines.push(`  ${n.address.padEnd(40)} ${n.total} of ${n.threshold}`);
    lines.push('');
  }
  if (status.perHour !== null) {
    const total = status.perHour.reduce((a, b) => a + b, 0);
    lines.push(`Counted events (${kinds.join(' + ')}) per hour, last 24 hours: ${total} in all, at most ${status.perHour.reduce((m, v) => Math.max(m, v), 0)} in an hour`);
    lines.push(`  |${sparkline(status.perHour)}|`);
    lines.push(`   ${'-24h'.padEnd(21)}now`);
    lines.push('');
  }
  for (const note of status.notes) lines.push(`Note: ${note}`);
  return lines.join('\n').trimEnd() + '\n';
}
