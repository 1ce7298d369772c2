import { describe, expect, it } from 'vitest';
import { renderStatus, sparkline, type Status } from '../src/report/status-report.js';

describe('sparkline', () => {
  it('is one character an hour, blank for nothing, the full bar for the busiest hour', () => {
    expect(sparkline([0, 1, 8, 0, 4])).toBe(' ▁█ ▄');
    expect(sparkline([0, 0])).toBe('  ');
    expect(sparkline(new Array(24).fill(3))).toBe('█'.repeat(24));
  });
});

describe('renderStatus', () => {
  const status: Status = {
    now: '2026-11-23T12:00:00.000Z',
    blocks: [
      {
        cidr: '198.51.100.0/24',
        family: 4,
        record: { cidr: '198.51.100.0/24', family: 4, reason: 'subnet', total: 60, addresses: ['198.51.100.1'], firstSeen: '2026-11-23T08:00:00.000Z', lastSeen: '2026-11-23T11:00:00.000Z', since: '2026-11-23T09:15:00.000Z' },
        packets: 17,
        logged: null,
      },
      { cidr: '2001:db8::/64', family: 6, record: null, packets: null, logged: null },
    ],
    nearMisses: [{ address: '192.0.2.30', total: 2, threshold: 3 }],
    perHour: [...new Array<number>(22).fill(0), 5, 10],
    leftOut: 0,
    notes: ['cannot read the ip6tables counters of ufw6-smtpguard (root only, and ufw must be loaded)'],
  };

  it('shows each block with why, since when and what it dropped, the near misses, the chart and what it could not read', () => {
    const text = renderStatus(status, ['saslFailure', 'reject']);
    expect(text).toContain('Blocked now: 2');
    expect(text).toMatch(/^ {2}198\.51\.100\.0\/24 +subnet +60 +2026-11-23 08:00 +2026-11-23 11:00 +2026-11-23 09:15 +- +- +17 +-$/m);
    expect(text).toMatch(/^ {2}2001:db8::\/64 +\? +\? +- +- +- +-$/m);
    expect(text).toMatch(/^ {2}192\.0\.2\.30 +2 of 3$/m);
    expect(text).toContain('per hour, last 24 hours: 15 in all, at most 10 in an hour');
    expect(text).toContain(`|${' '.repeat(22)}▄█|`);
    expect(text).toMatch(/^Note: cannot read the ip6tables counters/m);
  });

  it('says how many offenders --max-blocks leaves unblocked', () => {
    expect(renderStatus(status, ['saslFailure'])).not.toMatch(/left out/);
    expect(renderStatus({ ...status, leftOut: 2001 }, ['saslFailure'])).toMatch(/^ {2}and 2001 offenders NOT blocked: left out by --max-blocks \(raise it to block them\)$/m);
  });

  it('says so when nothing is blocked', () => {
    expect(renderStatus({ ...status, blocks: [], nearMisses: [], perHour: null, notes: [] }, ['saslFailure'])).toBe(
      'smtpguard status, 2026-11-23 12:00:00\n\nBlocked now: nothing.\n',
    );
  });
});
