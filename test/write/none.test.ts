/**
 * The null backend (--firewall none): nothing in the kernel, the access map alone; a switch to it
 * takes out what a firewall backend still has.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildPlan, type PlanOptions } from '../../src/write/plan.js';
import type { TargetFile } from '../../src/write/change.js';
import type { Decision } from '../../src/decide/policy.js';
import { renderNftSave } from '../../src/write/firewall/nftables.js';
import { FIXTURES } from '../helpers.js';

const decision: Decision = { blocks: [{ cidr: '192.0.2.7/32', family: 4, addresses: ['192.0.2.7'], addressCount: 1, total: 5, reason: 'host' }], spared: [], ignored: [], overLimit: [] } as unknown as Decision;
const options: PlanOptions = { ufwChain: 'ufw-smtpguard', ufw6Chain: 'ufw6-smtpguard', mapType: 'cidr', rejectText: 'no', postfixConfigDir: null, reload: true, stateDir: '/s', firewall: 'none', cutSessions: false };
const map: TargetFile = { role: 'map', path: '/m', text: '# BEGIN smtpguard\n# END smtpguard\n' };

describe('--firewall none', () => {
  it('on a host with no firewall piece of smtpguard: the access map alone, and postfix reload', () => {
    const plan = buildPlan(decision, [map], options);
    expect(plan.firewall.map((p) => [p.mode, p.changes.length, p.commands.length])).toEqual([['none', 0, 0]]);
    expect(plan.changes.map((c) => c.role)).toEqual(['map']);
    expect(plan.commands).toEqual([['postfix', 'reload']]);
    expect(plan.summary.added).toBe(1);
  });

  it('a switch to it takes the blocks out of ufw\'s section and deletes the nftables table', () => {
    const rules = readFileSync(path.join(FIXTURES, 'debian12-before.rules'), 'utf8')
      .replace('# End required lines\n', '# End required lines\n:ufw-smtpguard - [0:0]\n:ufw-smtpguard-log - [0:0]\n')
      .replace(/(-A ufw-before-input -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n)/, '$1# BEGIN smtpguard\n-A ufw-smtpguard -s 192.0.2.7/32 -j ufw-smtpguard-log\n# END smtpguard\n');
    const targets: TargetFile[] = [map, { role: 'ufw4', path: '/u4', text: rules }, { role: 'nft', path: '/s/nftables.save', text: renderNftSave(decision.blocks, [25]) }];
    const plan = buildPlan(decision, targets, options);
    expect(plan.firewall.map((p) => [p.mode, p.active])).toEqual([['none', true], ['rules', false], ['nftables', false]]);
    expect(plan.commands.filter((c) => c[0] !== 'postfix')).toEqual([['ufw', 'reload'], ['nft', 'delete', 'table', 'inet', 'smtpguard']]);
    expect(plan.changes.find((c) => c.role === 'ufw4')!.after).toContain('# BEGIN smtpguard\n# END smtpguard\n');
    expect(plan.summary.added).toBe(0); // it was in force, through ufw and nftables
  });
});
