/**
 * The metrics of a run in Prometheus' text format, for node_exporter's textfile collector. Pure.
 * Names follow Prometheus' rules: base units (seconds), `_total` for counters, timestamps rather
 * than ages (the log lag is the one age asked for), no label per address.
 */
import type { MetricGauges } from '../store/metrics.js';

export interface MetricsSnapshot {
  /** When the run started and ended (ms since the epoch). */
  started: number;
  ended: number;
  /** Whether the run did all it had to. */
  ok: boolean;
  /** Counters kept across runs (store/metrics.ts). */
  eventsRead: Readonly<Record<string, number>>;
  errors: Readonly<Record<string, number>>;
  alertsSent: number;
  lastSuccess: number | null;
  /** What the last successful run left in force (a failed run repeats them). */
  gauges: MetricGauges | null;
}


interface Family {
  name: string;
  type: 'gauge' | 'counter';
  help: string;
  samples: Array<{ labels?: Record<string, string>; value: number }>;
}

const seconds = (ms: number) => Math.round(ms) / 1000;
const familyLabel = (family: 4 | 6) => (family === 4 ? 'ipv4' : 'ipv6');
const escapeLabel = (value: string) => value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

export function renderMetrics(m: MetricsSnapshot): string {
  const families: Family[] = [
    { name: 'smtpguard_last_run_timestamp_seconds', type: 'gauge', help: 'When the last run ended.', samples: [{ value: seconds(m.ended) }] },
    { name: 'smtpguard_last_run_success', type: 'gauge', help: 'Whether the last run did all it had to (1) or failed (0).', samples: [{ value: m.ok ? 1 : 0 }] },
    { name: 'smtpguard_last_success_timestamp_seconds', type: 'gauge', help: 'When the last run that did all it had to ended.', samples: m.lastSuccess === null ? [] : [{ value: seconds(m.lastSuccess) }] },
    { name: 'smtpguard_run_duration_seconds', type: 'gauge', help: 'How long the last run took.', samples: [{ value: seconds(m.ended - m.started) }] },
    { name: 'smtpguard_events_read_total', type: 'counter', help: 'Events read from the mail log, per kind (each line once, as it is first read).', samples: Object.entries(m.eventsRead).sort().map(([kind, value]) => ({ labels: { kind }, value })) },
    { name: 'smtpguard_errors_total', type: 'counter', help: 'Runs that failed, per stage; and faults talking to CrowdSec (stage fleet), which do not stop a run.', samples: Object.entries(m.errors).sort().map(([stage, value]) => ({ labels: { stage }, value })) },
  ];
  const g = m.gauges;
  if (g !== null) {
    families.push(
      { name: 'smtpguard_blocks', type: 'gauge', help: 'Blocks in force, per reason and address family.', samples: g.blocks.map((b) => ({ labels: { reason: b.reason, family: familyLabel(b.family) }, value: b.count })) },
      { name: 'smtpguard_bans_active', type: 'gauge', help: 'Bans still running (ban memory).', samples: [{ value: g.bansActive }] },
      { name: 'smtpguard_blocks_left_out', type: 'gauge', help: 'Offenders left unblocked by --max-blocks.', samples: [{ value: g.leftOut }] },
      { name: 'smtpguard_addresses_summarised', type: 'gauge', help: 'Addresses past --max-tracked, counted by prefix instead of one by one (a flood).', samples: [{ value: g.summarised }] },
      { name: 'smtpguard_firewall_dropped_packets_total', type: 'counter', help: 'Packets the firewall dropped from blocked clients since ufw loaded the rules.', samples: g.dropped.map((d) => ({ labels: { family: familyLabel(d.family) }, value: d.packets })) },
      { name: 'smtpguard_reload_owed', type: 'gauge', help: 'A reload is owed: the files and the running firewall or Postfix differ.', samples: [{ labels: { target: 'ufw' }, value: g.reloadOwed.ufw ? 1 : 0 }, { labels: { target: 'postfix' }, value: g.reloadOwed.postfix ? 1 : 0 }] },
    );
    if (g.newestEvent !== null) {
      families.push(
        { name: 'smtpguard_log_newest_event_timestamp_seconds', type: 'gauge', help: 'The time of the newest event in the mail log.', samples: [{ value: seconds(g.newestEvent) }] },
        { name: 'smtpguard_log_lag_seconds', type: 'gauge', help: "How far the mail log's newest event lies behind the end of the run.", samples: [{ value: Math.max(0, seconds(m.ended - g.newestEvent)) }] },
      );
    }
    if (g.fleet !== null) {
      families.push(
        { name: 'smtpguard_fleet_decisions', type: 'gauge', help: 'Decisions pulled from the CrowdSec Local API and in force.', samples: g.fleet.decisions === null ? [] : [{ value: g.fleet.decisions }] },
        { name: 'smtpguard_fleet_alerts_queued', type: 'gauge', help: 'Alerts waiting to be sent to the CrowdSec Local API.', samples: [{ value: g.fleet.queued }] },
      );
    }
  }
  families.push({ name: 'smtpguard_fleet_alerts_sent_total', type: 'counter', help: 'Alerts sent to the CrowdSec Local API.', samples: [{ value: m.alertsSent }] });
  const lines: string[] = [];
  for (const f of families) {
    if (f.samples.length === 0) continue;
    lines.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) {
      const labels = s.labels === undefined ? '' : `{${Object.entries(s.labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}`;
      lines.push(`${f.name}${labels} ${Number.isFinite(s.value) ? s.value : 0}`);
    }
  }
  return `${lines.join('\n')}\n`;
}
