/**
 * The Postfix output: blocks -> the lines of the access map's generated section. Pure and
 * deterministic: the same blocks always give the same bytes, sorted by address.
 */
import { sortByCidr } from '../address.js';
import type { Block } from '../decide/policy.js';

export const MAP_TYPES = ['hash', 'lmdb', 'btree', 'cdb', 'cidr'] as const;
export type MapType = (typeof MAP_TYPES)[number];

/** Suffix postmap adds for each indexed map type. */
export const INDEX_SUFFIX: Readonly<Record<Exclude<MapType, 'cidr'>, string>> = { hash: '.db', btree: '.db', lmdb: '.lmdb', cdb: '.cdb' };
/** The new map is built beside the live one, then renamed over it (FIELD-NOTES §3). */
export const NEW_MAP_SUFFIX = '.smtpguard-new';

/**
 * `KEY REJECT TEXT` lines for a Postfix client access map.
 * cidr maps take the blocks as they are. Indexed maps (hash, lmdb, btree, cdb) are
 * looked up with the client address and then with it cut at its last `.` or `:`, so a
 * /24 is its three-octet key (`192.0.2`); an IPv6 prefix cannot be written there, so
 * the offending addresses a block names (at most MAX_BLOCK_ADDRESSES, the worst) are
 * written as Postfix logs them: the firewall blocks the whole prefix.
 */
export function renderAccessMap(blocks: readonly Block[], mapType: MapType, rejectText: string): string[] {
  const lines: string[] = [];
  const keys = new Set<string>();
  const add = (key: string, line: string) => {
    if (keys.has(key)) return;
    keys.add(key);
    lines.push(line);
  };
  for (const b of sortBlocks(blocks)) {
    // exceptions (addresses where someone logged in): DUNNO stops the lookup of an indexed map
    // before it tries the /24's key; a cidr map takes the first match, so they come first
    const exception = (e: string) => {
      const key = mapType === 'cidr' ? e : e.slice(0, e.indexOf('/')); // the key a REJECT of it would have: never both
      add(key, `${key} DUNNO`);
    };
    if (mapType === 'cidr') {
      for (const e of b.exceptions ?? []) exception(e);
      add(b.cidr, `${b.cidr} REJECT ${rejectText}`);
    } else if (b.family === 4 && b.cidr.endsWith('/24')) {
      for (const e of b.exceptions ?? []) exception(e);
      const key = b.cidr.slice(0, b.cidr.lastIndexOf('.'));
      add(key, `${key} REJECT ${rejectText}`);
    } else {
      for (const address of b.addresses) add(address, `${address} REJECT ${rejectText}`); // hosts; and the worst offenders of an IPv6 prefix
    }
  }
  return lines;
}

/** Addresses inside IPv6 range blocks that an indexed map does not get (the firewall still blocks them). */
export function addressesLeftOutOfMap(blocks: readonly Block[], mapType: MapType): number {
  if (mapType === 'cidr') return 0;
  let left = 0;
  for (const b of blocks) if (b.family === 6 && !b.cidr.endsWith('/128')) left += b.addressCount - b.addresses.length;
  return left;
}

export function sortBlocks(blocks: readonly Block[]): Block[] {
  return sortByCidr(blocks, (b) => b.cidr);
}

/** Text Postfix may send back in a 554 reply: printable ASCII, no client-chosen strings. */
export function rejectTextProblem(text: string): string | null {
  return /^[\x21-\x7e][\x20-\x7e]{0,199}$/.test(text) ? null : 'use 1 to 200 printable ASCII characters, not starting with a space';
}
