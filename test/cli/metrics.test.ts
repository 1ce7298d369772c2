/**
 * --metrics-file: the built CLI's runs write node_exporter's textfile, which promtool accepts and a
 * real prometheus-node-exporter (on 127.0.0.1) serves; counters survive runs; a failed run says where.
 */
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultMetricsFile } from '../../src/cli/commands/install.js';
import { installPaths, makeServerDir, runBin, saslLines, serverFlags } from '../helpers.js';

let dir: string;
let flags: string[];
let prom: string;
const NOW = ['--now', '2026-11-22T12:00:00Z'];

beforeAll(() => {
  dir = makeServerDir('smtpguard-metrics-');
  flags = serverFlags(dir);
  expect(runBin(['install', ...flags, ...installPaths(dir)]).code).toBe(0);
  mkdirSync(path.join(dir, 'textfile'));
  prom = path.join(dir, 'textfile', 'smtpguard.prom');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sample = (text: string, series: string): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

function promtool(text: string): { code: number | null; out: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('--metrics-file', () => {
  it('a run writes it atomically, promtool accepts it, counters go on across runs, a failed run says where it failed', () => {
    writeFileSync(path.join(dir, 'mail.log'), saslLines('203.0.113.5', 12) + saslLines('2001:db8:9::1', 6));
    const run = (...extra: string[]) => runBin(['run', ...flags, ...NOW, '--metrics-file', prom, ...extra]);
    expect(run().code).toBe(0);
    let text = readFileSync(prom, 'utf8');
    expect(statSync(prom).mode & 0o777).toBe(0o644);
    expect(readdirSync(path.join(dir, 'textfile'))).toEqual(['smtpguard.prom']); // no temp file left
    expect(promtool(text)).toMatchObject({ code: 0 });
    expect(sample(text, 'smtpguard_last_run_success')).toBe(1);
    expect(sample(text, 'smtpguard_events_read_total{kind="saslFailure"}')).toBe(18);
    expect(sample(text, 'smtpguard_blocks{reason="host",family="ipv4"}')).toBe(1);
    expect(sample(text, 'smtpguard_blocks{reason="prefix",family="ipv6"}')).toBe(1);
    expect(sample(text, 'smtpguard_bans_active')).toBe(2);
    expect(sample(text, 'smtpguard_reload_owed{target="ufw"}')).toBe(1); // --no-reload: the files wait for a reload
    expect(sample(text, 'smtpguard_log_newest_event_timestamp_seconds')).toBe(Date.parse('2026-11-22T11:37:32Z') / 1000);
    const success = sample(text, 'smtpguard_last_success_timestamp_seconds')!;
    expect(Math.abs(success - Date.now() / 1000)).toBeLessThan(120);

    // five more failures: the counter goes on from 18, not from 0
    appendFileSync(path.join(dir, 'mail.log'), saslLines('203.0.113.5', 5));
    expect(run().code).toBe(0);
    text = readFileSync(prom, 'utf8');
    expect(sample(text, 'smtpguard_events_read_total{kind="saslFailure"}')).toBe(23);
    const lastSuccess = sample(text, 'smtpguard_last_success_timestamp_seconds')!;
    expect(lastSuccess).toBeGreaterThanOrEqual(success);

    // a log that is gone: exit 3 in the scan; the counters and the last success stay, the blocks too
    const failed = runBin(['run', ...flags.filter((f) => !f.endsWith('mail.log')).filter((_, i, all) => all[i - 1] !== '--log'), '--log', path.join(dir, 'gone.log'), ...NOW, '--metrics-file', prom]);
    expect(failed.code).toBe(3);
    text = readFileSync(prom, 'utf8');
    expect(promtool(text)).toMatchObject({ code: 0 });
    expect(sample(text, 'smtpguard_last_run_success')).toBe(0);
    expect(sample(text, 'smtpguard_errors_total{stage="scan"}')).toBe(1);
    expect(sample(text, 'smtpguard_last_success_timestamp_seconds')).toBe(lastSuccess);
    expect(sample(text, 'smtpguard_events_read_total{kind="saslFailure"}')).toBe(23);
    expect(sample(text, 'smtpguard_blocks{reason="host",family="ipv4"}')).toBe(1);
  });

  it('a dry run writes no metrics', () => {
    const other = path.join(dir, 'textfile', 'dry.prom');
    expect(runBin(['run', '--dry-run', ...flags, ...NOW, '--metrics-file', other]).code).toBe(0);
    expect(() => statSync(other)).toThrow();
  });

  it('a real prometheus-node-exporter on 127.0.0.1 serves the series from its textfile directory', async () => {
    const port = await freePort();
    const exporter = spawn('prometheus-node-exporter', [`--web.listen-address=127.0.0.1:${port}`, '--collector.disable-defaults', '--collector.textfile', `--collector.textfile.directory=${path.join(dir, 'textfile')}`], { stdio: 'ignore' });
    try {
      let body = '';
      for (let i = 0; i < 100 && !body.includes('smtpguard_'); i++) {
        body = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text(), () => '');
        if (!body.includes('smtpguard_')) await new Promise((r) => setTimeout(r, 100));
      }
      expect(body).toMatch(/^smtpguard_blocks\{family="ipv4",reason="host"\} 1$/m);
      expect(body).toMatch(/^smtpguard_events_read_total\{kind="saslFailure"\} 23$/m);
      expect(body).toMatch(/^node_textfile_scrape_error 0$/m);
    } finally {
      exporter.kill();
    }
  });

  it('the example alert rules load in Prometheus (promtool check rules)', () => {
    const r = spawnSync('promtool', ['check', 'rules', 'examples/prometheus/smtpguard-alerts.yml'], { encoding: 'utf8' });
    expect(`${r.stdout}${r.stderr}`).toMatch(/SUCCESS: 6 rules found/);
    expect(r.status).toBe(0);
  });

  it('install sets it on a server whose node_exporter textfile directory exists, and only there', async () => {
    const textfile = path.join(dir, 'textfile');
    expect(await defaultMetricsFile('/etc/smtpguard/smtpguard.conf', null, new Map(), textfile)).toBe(path.join(textfile, 'smtpguard.prom'));
    expect(await defaultMetricsFile('/etc/smtpguard/smtpguard.conf', null, new Map(), path.join(dir, 'none'))).toBeNull();
    expect(await defaultMetricsFile('/etc/smtpguard/smtpguard.conf', 'METRICS_FILE=\n', new Map(), textfile)).toBeNull(); // the admin's own word, even "none"
    expect(await defaultMetricsFile('/etc/smtpguard/smtpguard.conf', null, new Map([['METRICS_FILE', ['/x.prom']]]), textfile)).toBeNull();
    expect(await defaultMetricsFile(path.join(dir, 'smtpguard.conf'), null, new Map(), textfile)).toBeNull(); // a test's or a second install's config
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}
