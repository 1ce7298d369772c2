/**
 * Nothing silently dropped: past --max-tracked (a flood), every report says how many addresses it
 * did not count one by one, with their events: scan's table and JSON, run's dry run (text and
 * JSON), the cron line (also when nothing changed), status and the metric. The built CLI on a
 * small flood in a temp directory.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installPaths, makeServerDir, rejectLine, runBin, saslLines, serverFlags } from '../helpers.js';

const IPV4 = 2400;
const IPV6_PER_48 = 400;
const NETWORKS = ['2001:db8:a', '2001:db8:b', '2001:db8:c'];
const ATTACKER_FAILURES = 12;
const ADDRESSES = IPV4 + IPV6_PER_48 * NETWORKS.length + 1;
const EVENTS = IPV4 + IPV6_PER_48 * NETWORKS.length + ATTACKER_FAILURES;
const MAX_TRACKED = 1000; // the lowest it takes

let dir: string;
let flags: string[];
const NOW = ['--now', '2026-11-22T12:00:00Z'];

const reject = (address: string, i: number) => rejectLine(address, i % 60);
/** The same reject as a 4xx (greylisting): a tempReject, which counts toward no block by default. */
const tempReject = (address: string, i: number) => reject(address, i).replace('554 5.7.1', '450 4.7.1').replace('Access denied', 'try again later');

beforeAll(() => {
  dir = makeServerDir('smtpguard-flood-report-');
  flags = serverFlags(dir);
  let log = saslLines('203.0.113.9', ATTACKER_FAILURES);
  // one reject each: distinct IPv4 addresses, and IPv6 addresses each in a /64 of its own in three /48s
  for (let i = 0; i < IPV4; i++) log += reject(`11.0.${Math.floor(i / 250)}.${1 + (i % 250)}`, i);
  for (const [n, network] of NETWORKS.entries()) for (let i = 0; i < IPV6_PER_48; i++) log += reject(`${network}:${(i + 1).toString(16)}::${n + 1}`, i);
  writeFileSync(path.join(dir, 'mail.log'), log);
  expect(runBin(['install', ...flags, ...installPaths(dir)]).code).toBe(0);
  flags.push('--max-tracked', String(MAX_TRACKED));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface ScanJson {
  addresses: Array<{ address: string; total: number; summarised?: { cidr: string; addresses: number } }>;
  blocks: Array<{ cidr: string }>;
  summarised: { addresses: number; events: number; ranges: number };
}

const scanJson = () => JSON.parse(runBin(['scan', '--json', ...flags, ...NOW]).stdout) as ScanJson;
/** A number as scan writes it, with thousands separators. */
const thousands = (n: number) => n.toLocaleString('en-US');

describe('a flood past --max-tracked, in every report', () => {
  it('scan --json: the addresses listed and the ones past the bound add up to the log, and the ranges are the summaries that say so', () => {
    const json = scanJson();
    const listed = json.addresses.filter((a) => a.summarised === undefined);
    const ranges = json.addresses.filter((a) => a.summarised !== undefined);
    expect(listed).toHaveLength(MAX_TRACKED);
    expect(json.summarised.addresses).toBe(ADDRESSES - MAX_TRACKED);
    expect(json.summarised.events + listed.reduce((sum, a) => sum + a.total, 0)).toBe(EVENTS);
    expect(json.summarised.ranges).toBe(ranges.length);
    expect(ranges.length).toBeGreaterThan(0); // the IPv6 past the bound, added up
    for (const r of ranges) expect(r.summarised!.cidr).toMatch(/^2001:db8:[abc]:.*\/(48|64)$/);
    expect(listed.find((a) => a.address === '203.0.113.9')?.total).toBe(ATTACKER_FAILURES);
    expect(json.blocks.map((b) => b.cidr)).toContain('203.0.113.9/32');
  });

  it('scan: the header counts addresses, a line says what is past the bound, and a range is shown by its CIDR', () => {
    const json = scanJson();
    const listed = json.addresses.filter((a) => a.summarised === undefined);
    const { code, stdout } = runBin(['scan', '--top', '0', ...flags, ...NOW]);
    expect(code).toBe(0);
    const lines = stdout.split('\n');
    expect(lines[0]).toBe(`${thousands(MAX_TRACKED)} addresses with ${thousands(listed.reduce((sum, a) => sum + a.total, 0))} events in all logs read (counting saslFailure + reject + recipientReject + messageReject).`);
    const { addresses, events, ranges } = json.summarised;
    expect(lines[1]).toBe(
      `Past --max-tracked ${MAX_TRACKED}: ${thousands(addresses)} more addresses with ${thousands(events)} events, not counted one by one: the IPv6 ones added up into ${ranges} ranges (listed by CIDR), the rest only counted. A flood of addresses; --json has each range's address count.`,
    );
    for (const r of json.addresses.filter((a) => a.summarised !== undefined)) expect(stdout).toMatch(new RegExp(`^${r.summarised!.cidr.replace(/[.]/g, '\\.')}\\s+0\\s+${r.total}\\s`, 'm'));
  });

  it('an IPv4 flood: the addresses past the bound are only counted, and scan says so', () => {
    const ipv4 = path.join(dir, 'ipv4.log');
    writeFileSync(ipv4, readFileSync(path.join(dir, 'mail.log'), 'latin1').split('\n').filter((l) => !l.includes('2001:db8')).join('\n'));
    const { code, stdout } = runBin(['scan', '--log', ipv4, '--window', 'all', '--no-state', '--max-tracked', String(MAX_TRACKED), ...NOW]);
    expect(code).toBe(0);
    // the attacker and the others up to the bound listed; the rest, one event each, past it
    const quiet = MAX_TRACKED - 1;
    expect(stdout.split('\n').slice(0, 2)).toEqual([
      `${thousands(MAX_TRACKED)} addresses with ${thousands(ATTACKER_FAILURES + quiet)} events in all logs read (counting saslFailure + reject + recipientReject + messageReject).`,
      `Past --max-tracked ${MAX_TRACKED}: ${thousands(IPV4 - quiet)} more addresses with ${thousands(IPV4 - quiet)} events, only counted (not one by one). A flood of addresses.`,
    ]);
  });

  it('run --dry-run says it in its first line, and its JSON has the same numbers as scan', () => {
    const { summarised } = scanJson();
    const clause = `, ${summarised.addresses} addresses past --max-tracked not counted one by one (IPv6 added up into ${summarised.ranges} ranges)`;
    expect(runBin(['run', '--dry-run', ...flags, ...NOW]).stdout.split('\n')[0]).toMatch(new RegExp(`^smtpguard run --dry-run: blocks: \\d+ \\(\\+\\d+ -0\\).*${clause.replace(/[()+]/g, '\\$&')}$`));
    expect((JSON.parse(runBin(['run', '--dry-run', '--json', ...flags, ...NOW]).stdout) as { summarised: unknown }).summarised).toEqual(summarised);
  });

  it('a block never names a range added up past the bound as one of its addresses: the access map rejects only clients the log named', () => {
    const listed = new Set(scanJson().addresses.filter((a) => a.summarised === undefined).map((a) => a.address));
    const plan = JSON.parse(runBin(['run', '--dry-run', '--json', ...flags, ...NOW]).stdout) as { blocks: Array<{ cidr: string; addresses: string[] }>; files: Array<{ path: string; content: string }> };
    expect(plan.blocks.some((b) => b.cidr.endsWith('/48'))).toBe(true);
    for (const b of plan.blocks) for (const a of b.addresses) expect(listed.has(a)).toBe(true);
    const map = plan.files.find((f) => f.path === path.join(dir, 'access'))!.content;
    const rejected = [...map.matchAll(/^(\S+) REJECT /gm)].map((m) => m[1]!);
    expect(rejected.length).toBeGreaterThan(0);
    for (const a of rejected) expect(listed.has(a)).toBe(true);
  });

  it('a range is never reported as an address: not in "never blocked", not by explain of its network address', () => {
    const ranges = scanJson().addresses.filter((a) => a.summarised !== undefined);
    const allowed = JSON.parse(runBin(['scan', '--json', ...flags, ...NOW, '--allow', '2001:db8::/32']).stdout) as { ignored: Array<{ address: string; total: number }> };
    const named = allowed.ignored.filter((i) => i.address.startsWith('2001:db8:'));
    expect(named.length).toBeGreaterThan(0);
    for (const i of named) expect(ranges.find((r) => r.summarised!.cidr === i.address)?.total).toBe(i.total); // a range's total, under its CIDR
    const range = ranges.find((r) => r.summarised!.cidr.endsWith('/48'))!;
    const explained = JSON.parse(runBin(['explain', range.address, '--json', ...flags, ...NOW]).stdout) as { events: number; counts: { total: number } };
    expect(explained).toMatchObject({ events: 0, counts: { total: 0 } }); // no log line named it
  });

  it('the cron line says it, again when nothing changed; so do status and the metric', () => {
    const { summarised } = scanJson();
    const clause = `, ${summarised.addresses} addresses past --max-tracked not counted one by one (IPv6 added up into ${summarised.ranges} ranges)`;
    const prom = path.join(dir, 'smtpguard.prom');
    const first = runBin(['run', ...flags, ...NOW, '--metrics-file', prom]);
    expect(first.code).toBe(0);
    expect(first.stdout.trimEnd().endsWith(clause)).toBe(true);
    const again = runBin(['run', ...flags, ...NOW, '--metrics-file', prom]);
    expect(again.stdout).toMatch(/^blocks: \d+ \(\+0 -0\)/);
    expect(again.stdout.endsWith(`${clause}, nothing changed\n`)).toBe(true);
    // with --json, the same news as JSON, not as the cron line's text
    expect((JSON.parse(runBin(['run', '--json', ...flags, ...NOW]).stdout) as { summarised: unknown }).summarised).toEqual(summarised);
    expect(readFileSync(prom, 'utf8')).toMatch(new RegExp(`^smtpguard_addresses_summarised ${summarised.addresses}$`, 'm'));
    const status = runBin(['status', ...flags, ...NOW]);
    expect(status.code).toBe(0);
    expect(status.stdout).toContain(`${summarised.addresses} addresses past --max-tracked ${MAX_TRACKED} were not counted one by one`);
  });

  it('ranges with no counted event are said, not listed (a greylisted flood of IPv6)', () => {
    const log = path.join(dir, 'uncounted.log');
    let text = '';
    for (let i = 0; i < 1100; i++) text += reject(`11.1.${Math.floor(i / 250)}.${1 + (i % 250)}`, i);
    for (let i = 0; i < 600; i++) text += tempReject(`2001:db8:d:${(i + 1).toString(16)}::1`, i);
    writeFileSync(log, text);
    const args = ['--log', log, '--window', 'all', '--no-state', '--max-tracked', String(MAX_TRACKED), ...NOW];
    const json = JSON.parse(runBin(['scan', '--json', ...args]).stdout) as ScanJson;
    // the 1,000 listed are IPv4 (counted); past the bound: 100 IPv4 and the 600 IPv6, these added up into ranges of no counted event
    expect(json.summarised).toMatchObject({ addresses: 700, events: 100 });
    expect(json.summarised.ranges).toBeGreaterThan(0);
    expect(json.addresses.filter((a) => a.summarised !== undefined)).toEqual([]);
    expect(runBin(['scan', ...args]).stdout.split('\n')[1]).toBe(
      `Past --max-tracked ${MAX_TRACKED}: 700 more addresses with 100 events, not counted one by one: the IPv6 ones added up into ${json.summarised.ranges} ranges (not listed: none has a counted event), the rest only counted. A flood of addresses.`,
    );
  });

  it('a window that ends before the log: the addresses the tally folded are still said, though their last events lie past it', () => {
    // 6,000 /64s with a reject at minute m (in the window) and m + 30 (past it), then 6,000 more at
    // minute 59: past 10 x --max-tracked the tally folds the first ones, each counted in its newest minute
    const log = path.join(dir, 'late.log');
    let text = '';
    for (let i = 0; i < 6000; i++) text += reject(`2001:db8:e:${(i + 1).toString(16)}::1`, i % 30);
    for (let i = 0; i < 6000; i++) text += reject(`2001:db8:e:${(i + 1).toString(16)}::1`, (i % 30) + 30);
    for (let i = 0; i < 6000; i++) text += reject(`2001:db8:f:${(i + 1).toString(16)}::1`, 59);
    writeFileSync(log, text);
    const args = ['--log', log, '--window', '30m', '--now', '2026-11-22T11:29:30Z', '--no-state', '--max-tracked', String(MAX_TRACKED)];
    const json = JSON.parse(runBin(['scan', '--json', ...args]).stdout) as ScanJson;
    const listed = json.addresses.filter((a) => a.summarised === undefined);
    expect(listed.reduce((sum, a) => sum + a.total, 0) + json.summarised.events).toBe(6000); // the window's events, every one
    expect(json.summarised.events).toBeGreaterThan(0);
    expect(json.summarised.addresses).toBeGreaterThan(0);
    expect(runBin(['scan', ...args]).stdout.split('\n')[1]).toMatch(new RegExp(`^Past --max-tracked ${MAX_TRACKED}: [\\d,]+ more address(es)? with ${thousands(json.summarised.events)} events, `));
  });
});
