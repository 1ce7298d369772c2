import { describe, expect, it } from 'vitest';
import { unmapRange, normaliseAddress } from '../src/address.js';
import { neverBlockRanges } from '../src/decide/never-block.js';
import { decideBlocks } from '../src/decide/policy.js';
import { EVENT_KINDS } from '../src/read/kinds.js';
import type { AddressSummary } from '../src/count/summary.js';

const failures = (address: string, n: number): AddressSummary => ({
  address,
  events: Object.fromEntries(EVENT_KINDS.map((k) => [k, k === 'saslFailure' ? n : 0])) as AddressSummary['events'],
  total: n,
  firstSeen: 0,
  lastSeen: 0,
  unnamedRecipientRejects: 0,
  unnamedMessageRejects: 0,
});
const decide = (summaries: AddressSummary[], allow: string[], mynetworks: string[] = []) =>
  decideBlocks(summaries, {
    threshold: 5,
    threshold6: 3,
    countedKinds: ['saslFailure'],
    ipv6Prefix: 64,
    ipv6Subnet: 48,
    ipv6SubnetPrefixes: 5,
    subnetHosts: 5,
    maxBlocks: 0,
    neverBlock: neverBlockRanges({ own: [], mynetworks: mynetworks.map((cidr) => ({ cidr, source: 'mynetworks' })), allow, blockLinkLocal: false }),
  });

describe('never-block: special addresses, IPv4-mapped ranges', () => {
  it.each([
    ['::ffff:10.0.0.0/104', '10.0.0.0/8'],
    ['::ffff:10.108.80.3', '10.108.80.3/32'],
    ['::ffff:0:0/96', '0.0.0.0/0'],
    ['2001:db8::/32', '2001:db8::/32'],
    ['::ffff:0:0/95', '::ffff:0:0/95'],
    ['192.0.2.0/24', '192.0.2.0/24'],
  ])('unmapRange(%s) = %s', (input, expected) => expect(unmapRange(input)).toBe(expected));

  it('an IPv4-mapped allow or mynetworks entry spares the IPv4 address (finding 4)', () => {
    expect(decide([failures('10.108.80.3', 9)], ['::ffff:10.108.80.3']).blocks).toEqual([]);
    expect(decide([failures('10.1.2.3', 9)], [], ['::ffff:10.0.0.0/104']).ignored).toMatchObject([{ address: '10.1.2.3', reason: 'mynetworks 10.0.0.0/8' }]);
  });

  it.each(['0.0.0.0', '0.1.2.3', '255.255.255.255', '224.0.0.1', '239.1.2.3', '127.0.0.2', '::', '::1', 'ff02::1', '169.254.1.1', 'fe80::1'])('%s is never blocked', (address) => {
    const d = decide([failures(address, 9)], []);
    expect(d.blocks).toEqual([]);
    expect(d.ignored).toHaveLength(1);
  });

  it('a zone index is taken only on a link-local address', () => {
    expect(normaliseAddress('fe80::1%eth0')).toBe('fe80::1');
    expect(normaliseAddress('2001:db8::1%eth0')).toBeNull();
  });
});
