/**
 * What is never blocked, whatever the logs, the fleet or an admin's verb say. Pure: the
 * caller finds this host's addresses, mynetworks and ALLOW; this file adds the addresses no
 * client can have (a log line naming one is a forgery or a broken relay, and a rule for one
 * would drop packets that are not a client's) and puts every range in the form the checks
 * compare: IPv4-mapped IPv6 as IPv4.
 */
import { unmapRange } from '../address.js';
import type { NamedRange } from './policy.js';

/** Special addresses: never a client to block. */
export const SPECIAL_RANGES: readonly NamedRange[] = [
  { cidr: '0.0.0.0/8', source: 'unspecified' },
  { cidr: '127.0.0.0/8', source: 'loopback' },
  { cidr: '224.0.0.0/4', source: 'multicast' },
  { cidr: '255.255.255.255/32', source: 'broadcast' },
  { cidr: '::/128', source: 'unspecified' },
  { cidr: '::1/128', source: 'loopback' },
  { cidr: 'ff00::/8', source: 'multicast' },
];

/** Link-local: a neighbour on the same link (a router, a misconfigured host), never blocked unless BLOCK_LINK_LOCAL=yes. */
export const LINK_LOCAL_RANGES: readonly NamedRange[] = [
  { cidr: '169.254.0.0/16', source: 'link-local' },
  { cidr: 'fe80::/10', source: 'link-local' },
];

export interface NeverBlockSources {
  /** Every address of this host. */
  own: readonly NamedRange[];
  mynetworks: readonly NamedRange[];
  allow: readonly string[];
  blockLinkLocal: boolean;
}

/** Everything that is never blocked, each range as the checks compare it (IPv4-mapped IPv6 as IPv4). */
export function neverBlockRanges(sources: NeverBlockSources): NamedRange[] {
  return [
    ...SPECIAL_RANGES,
    ...(sources.blockLinkLocal ? [] : LINK_LOCAL_RANGES),
    ...sources.own,
    ...sources.mynetworks,
    ...sources.allow.map((cidr) => ({ cidr, source: 'allow' })),
  ].map((r) => ({ ...r, cidr: unmapRange(r.cidr) }));
}
