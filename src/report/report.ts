/**
 * Render what a scan found: the JSON object (`--json`) and the table. Pure.
 */
import type { SourceReport } from '../scan/collect.js';
import { formatWindow } from '../duration.js';
import type { EventKind } from '../read/kinds.js';
import type { Block, Decision, Ignored, Spared } from '../decide/policy.js';
import { renderDecision } from './plan-report.js';
import type { AddressSummary, Summarised } from '../count/summary.js';

export interface ScanResult {
  /** The window: its end (`now`) and length in ms (Infinity for all). */
  now: Date;
  windowMs: number;
  countedKinds: readonly EventKind[];
  /** Every address with events in the window, worst first (past --max-tracked, ranges added up: `summarised`). */
  summaries: readonly AddressSummary[];
  /** The addresses past --max-tracked, not listed one by one (a flood), and the setting. */
  summarised: Summarised;
  maxTracked: number;
  /** What `run` would block with the same settings. */
  decision: Decision;
  sources: readonly SourceReport[];
  elapsedMs: number;
}

export interface ScanJson {
  addresses: Array<{
    address: string;
    events: Record<EventKind, number>;
    total: number;
    firstSeen: string;
    lastSeen: string;
    /** Past --max-tracked: not one address but the IPv6 addresses of `cidr` added up (`address` is its network address). */
    summarised?: { cidr: string; addresses: number };
  }>;
  blocks: Block[];
  spared: Spared[];
  ignored: Ignored[];
  sources: SourceReport[];
  window: { from: string | null; to: string; length: string };
  countedKinds: EventKind[];
  /** The addresses past --max-tracked, not listed one by one: how many, their counted events, the IPv6 ranges in `addresses` they were added up into. */
  summarised: Summarised;
}

/** `addresses` holds every address with at least one event of a counted kind in the window. */
export function buildScanJson(result: ScanResult): ScanJson {
  return {
    addresses: offenders(result).map((s) => ({
      address: s.address,
      events: s.events,
      total: s.total,
      firstSeen: new Date(s.firstSeen).toISOString(),
      lastSeen: new Date(s.lastSeen).toISOString(),
      ...(s.summarised === undefined ? {} : { summarised: s.summarised }),
    })),
    blocks: result.decision.blocks,
    spared: result.decision.spared,
    ignored: result.decision.ignored,
    sources: [...result.sources],
    window: {
      from: result.windowMs === Infinity ? null : new Date(result.now.getTime() - result.windowMs).toISOString(),
      to: result.now.toISOString(),
      length: formatWindow(result.windowMs),
    },
    countedKinds: [...result.countedKinds],
    summarised: { ...result.summarised },
  };
}

const offenders = (result: ScanResult): AddressSummary[] => result.summaries.filter((s) => s.total > 0);

/** The readable report: top offenders, then what was read. `top` 0 shows every address. */
export function renderScanTable(result: ScanResult, top: number): string {
  const rows = offenders(result);
  const counted = result.countedKinds.join(' + ');
  const span = result.windowMs === Infinity ? 'in all logs read' : `in the last ${formatWindow(result.windowMs)}`;
  const lines: string[] = [];
  // past --max-tracked (a flood), the rest of the addresses are said, not left out of the count
  const past = pastMaxTracked(result);
  if (rows.length === 0) {
    lines.push(`No offenders ${span} (counting ${counted}).`);
    if (past !== null) lines.push(past);
  } else {
    // the ranges added up past --max-tracked are rows too, but not addresses: counted in `past`
    const addresses = rows.filter((r) => r.summarised === undefined);
    const events = addresses.reduce((sum, r) => sum + r.total, 0);
    lines.push(`${plural(addresses.length, 'address', 'addresses')} with ${plural(events, 'event')} ${span} (counting ${counted})${past === null ? ':' : '.'}`);
    if (past !== null) lines.push(past);
    lines.push('');
    const shown = top > 0 ? rows.slice(0, top) : rows;
    const table = [
      ['ADDRESS', 'SASL FAIL', 'REJECT', 'OTHER', 'LOGINS', 'TOTAL', 'FIRST SEEN', 'LAST SEEN'],
      ...shown.map((r) => [
        r.summarised?.cidr ?? r.address,
        String(r.events.saslFailure),
        String(rejects(r)),
        String(otherEvents(r)),
        String(r.events.saslSuccess),
        String(r.total),
        localTime(r.firstSeen),
        localTime(r.lastSeen),
      ]),
    ];
    for (const line of formatColumns(table, [false, true, true, true, true, true, false, false])) lines.push(line);
    if (shown.length < rows.length) lines.push(`... and ${rows.length - shown.length} more (--top 0 shows all, --json gives everything)`);
  }
  lines.push('');
  for (const l of renderDecision(result.decision)) lines.push(l.startsWith('Blocks') ? `smtpguard run would apply: ${l}` : l);
  lines.push('', describeRead(result));
  return lines.join('\n') + '\n';
}

/**
 * `Past --max-tracked 20000: 980,005 more addresses with 1,460,789 events, not counted one by
 * one: ...`: what a flood's addresses past the bound add up to, in the words of the cron line
 * (trackedClause); null: none. A range with no counted event is no row of the table (nor of
 * --json's `addresses`), so the line says how many of the ranges are listed.
 */
function pastMaxTracked(result: ScanResult): string | null {
  const { addresses, events, ranges } = result.summarised;
  if (addresses === 0) return null;
  let listed = 0;
  let inRanges = 0;
  for (const s of result.summaries) {
    if (s.summarised === undefined) continue;
    inRanges += s.summarised.addresses;
    if (s.total > 0) listed++;
  }
  const more = `Past --max-tracked ${result.maxTracked}: ${plural(addresses, 'more address', 'more addresses')} with ${events === 0 ? 'no counted event' : plural(events, 'event')}`;
  if (ranges === 0) return `${more}, only counted (not one by one). A flood of addresses.`;
  const shown = listed === ranges ? 'listed by CIDR' : listed === 0 ? 'not listed: none has a counted event' : `${plural(listed, 'listed', 'listed')} by CIDR; the others have no counted event`;
  const rest = inRanges < addresses ? ', the rest only counted' : '';
  const json = listed > 0 ? "; --json has each range's address count" : '';
  return `${more}, not counted one by one: the IPv6 ones added up into ${plural(ranges, 'range')} (${shown})${rest}. A flood of addresses${json}.`;
}

/** REJECT: every 5xx reject, about the client or about the message (`reject`, `recipientReject`, `messageReject`). */
const rejects = (s: AddressSummary): number => s.events.reject + s.events.recipientReject + s.events.messageReject;

/**
 * OTHER: everything else seen from the address but logins and accepted mail: the failed AUTH
 * commands of session summaries (authDisconnect, which repeat each SASL failure), 4xx rejects,
 * lost connections, timeouts, postscreen's findings. Shown; counted only when --kinds names them.
 */
function otherEvents(summary: AddressSummary): number {
  let other = 0;
  for (const [kind, n] of Object.entries(summary.events)) {
    if (!['saslFailure', 'reject', 'recipientReject', 'messageReject', 'saslSuccess', 'accepted'].includes(kind)) other += n;
  }
  return other;
}

function describeRead(result: ScanResult): string {
  const bytes = result.sources.reduce((sum, s) => sum + s.bytes, 0);
  const lines = result.sources.reduce((sum, s) => sum + s.lines, 0);
  const seconds = result.elapsedMs / 1000;
  const rate = seconds >= 0.05 ? ` (${(bytes / 1e6 / seconds).toFixed(0)} MB/s)` : '';
  const names = result.sources.map((s) => s.path).join(', ');
  return `Read ${plural(result.sources.length, 'file')} (${names}): ${formatBytes(bytes)}, ${plural(lines, 'line')} in ${seconds.toFixed(2)} s${rate}.`;
}

/** Rows as aligned columns, two spaces apart. */
export function formatColumns(rows: string[][], rightAligned: boolean[]): string[] {
  const widths = rows[0]!.map((_, col) => rows.reduce((w, row) => Math.max(w, row[col]!.length), 0));
  return rows.map((row) =>
    row
      .map((cell, col) => (rightAligned[col] ? cell.padStart(widths[col]!) : cell.padEnd(widths[col]!)))
      .join('  ')
      .trimEnd(),
  );
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${String(n).replace(/\B(?=(\d{3})+$)/g, ',')} ${n === 1 ? one : many}`;
}

function formatBytes(bytes: number): string {
  if (bytes < 1e3) return `${bytes} B`;
  if (bytes < 1e6) return `${(bytes / 1e3).toFixed(1)} kB`;
  if (bytes < 1e9) return `${(bytes / 1e6).toFixed(1)} MB`;
  return `${(bytes / 1e9).toFixed(2)} GB`;
}

/** "2026-11-22 12:33:04" in the local time zone, like the logs themselves. */
export function localTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}
