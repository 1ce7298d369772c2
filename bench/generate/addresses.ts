/** Client addresses: RFC 5952 text, and the clients, attackers and users of the simulated server. */

/** IPv6 groups -> RFC 5952 text (lower case, no leading zeros, the first longest run of 2+ zero groups as ::). */
export function formatIpv6(groups: readonly number[]): string {
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

/** A client as Postfix shows it. */
export interface Client {
  /** Normalised address: what the truth is counted under. */
  address: string;
  /** The address as logged (`::ffff:192.0.2.7` for an IPv4-mapped client). */
  shown: string;
  /** Reverse-DNS name, or `unknown`. */
  name: string;
}

export type Profile = 'sasl' | 'spam' | 'postscreen' | 'scanner';

export interface Attacker extends Client {
  profile: Profile;
  /** Also logged as ::ffff:a.b.c.d in some sessions (IPv4 clients only). */
  sometimesMapped: boolean;
}

export interface User {
  login: string;
  clients: Client[];
}
