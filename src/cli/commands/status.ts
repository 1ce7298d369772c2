/**
 * `smtpguard status`: what is blocked now (read back from the generated sections), why
 * (from what `run` kept), how many packets each block dropped (iptables counters and the
 * [SMTPGUARD...] kernel log lines), who is close to the threshold, and the counted
 * events per hour of the last day. Read-only; unprivileged it shows what it can read
 * and says what it could not.
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { INDEX_SUFFIX } from '../../write/plan.js';
import { PendingReloads } from '../../store/pending-reloads.js';
import { findDefaultMapType } from '../system.js';
import { inRange, parseIp, parseRange } from '../../address.js';
import { SmtpguardError } from '../../errors.js';
import type { Settings } from '../settings.js';
import { backendFor, recordedBlocks } from '../../write/firewall/registry.js';
import { readBlockRecords } from '../../store/block-records.js';
import { query } from '../system.js';
import type { KernelView } from '../../write/firewall/backend.js';
import { renderStatus, type Enforcement, type Status, type StatusBlock } from '../../report/status-report.js';
import { countPerHour } from '../../count/summary.js';
import { scanAndDecide, type Io } from './common.js';

export interface StatusOptions {
  now: Date;
  defaultLogs: boolean;
  json: boolean;
}

export async function statusCommand(settings: Settings, options: StatusOptions, io: Io): Promise<void> {
  const notes: string[] = [];
  const blocks = new Map<string, StatusBlock>();
  const backend = backendFor(settings.firewall);
  // not installed: one clear line, not a page of notes
  const own = await backend.recorded(settings);
  const unmarked = own.filter((r) => r.installed === false).map((r) => r.file);
  if (own.length > 0 && unmarked.length === own.length) {
    const message = `smtpguard is not installed: ${unmarked.join(' and ')} ${backend.missingRecord}`;
    if (options.json) io.stdout.write(`${JSON.stringify({ now: options.now.toISOString(), installed: false, problem: message }, null, 2)}\n`);
    throw new SmtpguardError(message, { hint: `run "smtpguard install"${settings.firewall === 'rules' ? '' : ` --firewall ${settings.firewall}`} (or point the options at the right files)` });
  }
  for (const section of await recordedBlocks(settings)) {
    if (section.problem !== null) notes.push(`cannot read the blocks in ${section.file}: ${section.problem}`);
    for (const cidr of section.cidrs) blocks.set(cidr, { cidr, family: cidr.includes(':') ? 6 : 4, packets: null, logged: null, record: null });
  }
  const records = await readBlockRecords(settings.stateDir, io.warn);
  if (records === null) notes.push(`no record of why each block was made (${settings.stateDir}/blocks.json): smtpguard run writes it`);
  for (const record of records ?? []) {
    const block = blocks.get(record.cidr);
    if (block !== undefined) block.record = record;
  }

  const { view, problem } = await backend.readKernel(settings, query);
  if (problem !== null) notes.push(problem);
  for (const [cidr, packets] of view?.packets ?? []) {
    const block = blocks.get(cidr);
    if (block !== undefined) block.packets = packets;
  }
  for (const [cidr, expires] of view?.expires ?? []) {
    const block = blocks.get(cidr);
    if (block !== undefined) block.expires = expires;
  }
  const logged = await readKernelLog(options.now);
  if (logged === null) notes.push('cannot read the kernel log (journalctl -k or /var/log/kern.log): no LOGGED column');
  else if (logged.size === 0) notes.push('no [SMTPGUARD BLOCK] lines in the kernel log of the last 24 hours (this boot)');
  else {
    for (const block of blocks.values()) {
      const range = parseRange(block.cidr);
      block.logged = 0;
      for (const [source, n] of logged) {
        const ip = parseIp(source);
        if (inRange(ip, range)) block.logged += n;
      }
    }
  }

  let nearMisses: Status['nearMisses'] = [];
  let perHour: number[] | null = null;
  let leftOut = 0;
  try {
    // the chart needs the last 24 hours (25: its first hour starts before now - 24h) whatever --window decides on
    const { collected, decision, summarised } = await scanAndDecide(settings, options.now, options.defaultLogs, io, { saveState: false, readAtLeast: 25 * 3_600_000 });
    if (summarised.addresses > 0) notes.push(`${summarised.addresses} addresses past --max-tracked ${settings.maxTracked} were not counted one by one (the fewest events; IPv6 added up into ${summarised.ranges} range${summarised.ranges === 1 ? '' : 's'}): a flood of addresses`);
    // the policy's near misses (counted as it counts: spared events left out, an IPv6 prefix added up), less what a ban or a hand still blocks
    const blocked = [...blocks.keys()].map(parseRange);
    nearMisses = (decision.nearMisses ?? []).filter((n) => {
      const [ip] = parseRange(n.address);
      return !blocked.some((range) => inRange(ip, range));
    });
    perHour = countPerHour(collected.tally, options.now.getTime(), settings.kinds, 24);
    leftOut = decision.overLimit.length;
  } catch (error) {
    if (!(error instanceof SmtpguardError)) throw error;
    notes.push(`cannot read the logs: ${error.message}`);
  }

  const enforcement = await readEnforcement(settings, blocks, view);
  const { followerView } = await import('../follow/in-charge.js');
  const follower = await followerView(settings.stateDir);
  const status: Status = { now: options.now.toISOString(), enforcement, blocks: [...blocks.values()], nearMisses, perHour, leftOut, notes, ...(follower === null ? {} : { follower }) };
  io.stdout.write(options.json ? `${JSON.stringify(status, null, 2)}\n` : renderStatus(status, settings.kinds));
}

/** SRC= of the [SMTPGUARD...] LOG lines of the last 24 hours: the kernel journal (this boot), else kern.log; null when neither is readable. */
async function readKernelLog(now: Date): Promise<Map<string, number> | null> {
  const since = now.getTime() - 24 * 3_600_000;
  const journal = await query('journalctl', ['-k', '-q', '--no-pager', '-o', 'cat', `--since=@${Math.floor(since / 1000)}`, '--grep=SMTPGUARD']);
  let text = journal.ok ? journal.output : null;
  if (text === null || text === '') {
    const kern = await readFile('/var/log/kern.log', 'utf8').catch(() => null);
    if (kern !== null) {
      // rsyslog's RFC 3339 stamps: keep the last 24 hours (a line without one is kept)
      text = kern
        .split('\n')
        .filter((line) => {
          const stamp = Date.parse(line.slice(0, line.indexOf(' ')));
          return Number.isNaN(stamp) || stamp >= since;
        })
        .join('\n');
    }
  }
  if (text === null) return null;
  const sources = new Map<string, number>();
  for (const m of text.matchAll(/\[SMTPGUARD[^\]]*\].*? SRC=([0-9a-fA-F:.]+) /g)) sources.set(m[1]!, (sources.get(m[1]!) ?? 0) + 1);
  return sources;
}

/** Whether the firewall and Postfix have what the files say: ufw on, no reload owed, the kernel's copy, the map's index. */
async function readEnforcement(settings: Settings, blocks: ReadonlyMap<string, StatusBlock>, view: KernelView | null): Promise<Enforcement> {
  const backend = backendFor(settings.firewall);
  const enabled = await backend.enabled(settings);
  const { roles } = await PendingReloads.read(settings.stateDir);
  const owedSince = await stat(path.join(settings.stateDir, 'pending-reloads')).then((s) => s.mtime.toISOString(), () => null);
  const mapType = settings.mapType ?? (await findDefaultMapType(settings.postfixConfigDir));
  let mapIndexStale = false;
  if (mapType !== 'cidr') {
    const [source, index] = await Promise.all([stat(settings.accessMap).catch(() => null), stat(settings.accessMap + INDEX_SUFFIX[mapType]).catch(() => null)]);
    mapIndexStale = source !== null && (index === null || index.mtimeMs < source.mtimeMs);
  }
  const inKernel = view === null ? null : new Set(view.blocks);
  return {
    ufwEnabled: enabled,
    owed: [...roles].sort().map((what) => ({ what, since: owedSince })),
    kernel: inKernel === null ? null : { missing: [...blocks.keys()].filter((c) => !inKernel.has(c)), extra: [...[...inKernel].filter((c) => !blocks.has(c)), ...view!.extra] },
    mapIndexStale,
    firewall: settings.firewall,
    names: { kernel: backend.kernelName, record: backend.recordName, update: backend.updateName },
    sets: view?.sets ?? [],
    bootProblem: await backend.bootProblem(settings),
  };
}
