/** status's near misses are the policy's: counted as it counts (spared events left out, an IPv6 prefix added up), on the real window. */
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installPaths, makeServerDir, runBin, saslLines, serverFlags } from '../helpers.js';

const STAMP = '2026-11-22T11:37:32.000000+00:00 mx';
const login = (address: string, user: string) => `${STAMP} postfix/submission/smtpd[2]: 4ABC123: client=phone[${address}], sasl_method=PLAIN, sasl_username=${user}\n`;

let dir: string;
let flags: string[];
beforeAll(() => {
  dir = makeServerDir('smtpguard-status-');
  flags = serverFlags(dir);
  expect(runBin(['install', ...flags, ...installPaths(dir)]).code).toBe(0);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('status near misses', () => {
  it('leave out a user whose failures a login spared, add up an IPv6 prefix, and follow --window', () => {
    const old = saslLines('198.51.100.50', 9).replaceAll('2026-11-22T11:37:32', '2026-11-21T01:00:00');
    const log = saslLines('192.0.2.200', 9, 'dave') + login('192.0.2.200', 'dave') + saslLines('2001:db8:9::1', 2) + saslLines('2001:db8:9::2', 2) + saslLines('203.0.113.8', 3) + old;
    writeFileSync(path.join(dir, 'mail.log'), log);
    const now = ['--now', '2026-11-22T12:00:00Z', '--threshold', '10', '--threshold6', '5'];
    const near = (window: string) => (JSON.parse(runBin(['status', '--json', ...flags, ...now, '--window', window]).stdout) as { nearMisses: unknown[] }).nearMisses;
    expect(near('2h')).toEqual([
      { address: '2001:db8:9::/64', total: 4, threshold: 5 },
      { address: '203.0.113.8', total: 3, threshold: 10 },
    ]);
    // a window of two days holds the older offender too (the chart reads 25 hours whatever the window)
    expect(near('2d')).toContainEqual({ address: '198.51.100.50', total: 9, threshold: 10 });
  });
});
