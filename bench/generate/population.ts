/** The population of the simulated server: attackers (networks, lone hosts, IPv6, IPv4-mapped), other mail servers, our users. */
import { formatIpv6, type Attacker, type Client, type Profile, type User } from './addresses.js';
import { Weighted, type Random } from './random.js';
import { DOMAINS, RESERVED_HOSTS, SERVER_PREFIXES } from './vocabulary.js';

export function shuffle<T>(rng: Random, items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

function attackerName(rng: Random, address: string, profile: Profile): string {
  if (address.includes(':') || rng.chance(profile === 'spam' ? 0.5 : 0.8)) return 'unknown';
  const dashed = address.replace(/\./g, '-');
  switch (rng.int(4)) {
    case 0:
      return `host-${dashed}.dynamic.example.net`;
    case 1:
      return `ip-${dashed}.cloud.example`;
    case 2:
      return `static.${address.split('.').reverse().join('.')}.clients.example.com`;
    default:
      return `${dashed}.broadband.example.net`;
  }
}

const PROFILE_PICK = new Weighted<Profile>([
  ['sasl', 50],
  ['spam', 25],
  ['postscreen', 20],
  ['scanner', 5],
]);

/** The attacker population: busy /24 networks, lone hosts, IPv6 /64s, IPv4-mapped clients. */
export function buildAttackers(rng: Random, scale: number, ipv6Lone: number): Attacker[] {
  const target = Math.max(80, Math.min(20000, Math.round(scale))) + ipv6Lone;
  const factor = Math.min(1, target / 400);
  const seen = new Set<string>();
  const out: Attacker[] = [];
  const add = (address: string, profile: Profile, sometimesMapped = false, mappedOnly = false) => {
    if (seen.has(address)) return;
    seen.add(address);
    out.push({
      address,
      shown: mappedOnly ? `::ffff:${address}` : address,
      name: mappedOnly ? 'unknown' : attackerName(rng, address, profile),
      profile,
      sometimesMapped,
    });
  };
  const network = (prefix: string, hosts: number, profile: Profile) => {
    for (let i = 0; i < hosts; i++) {
      let h = rng.range(2, 254);
      while (RESERVED_HOSTS.has(h)) h = rng.range(2, 254);
      add(`${prefix}.${h}`, rng.chance(0.85) ? profile : PROFILE_PICK.pick(rng));
    }
  };
  // the documentation /24s: botnets doing SASL, spam, postscreen noise
  network('192.0.2', Math.max(6, Math.round(45 * factor)), 'sasl');
  network('198.51.100', Math.max(6, Math.round(35 * factor)), 'spam');
  network('203.0.113', Math.max(6, Math.round(55 * factor)), 'sasl');
  for (let i = 0; i < 5; i++) {
    network(`10.${rng.range(1, 254)}.${rng.range(0, 255)}`, Math.max(5, Math.round(rng.range(8, 40) * factor)), PROFILE_PICK.pick(rng));
  }
  for (let i = 0; i < 3; i++) {
    network(`100.${64 + i}.${rng.range(0, 255)}`, Math.max(5, Math.round(rng.range(10, 30) * factor)), PROFILE_PICK.pick(rng));
  }
  // IPv6 /64s with several addresses each
  for (let i = 0; i < 4; i++) {
    const net = [0x2001, 0xdb8, rng.range(1, 0xfff), rng.range(0, 0xffff)];
    const profile: Profile = i < 2 ? 'sasl' : PROFILE_PICK.pick(rng);
    const hosts = rng.range(3, 8);
    for (let h = 0; h < hosts; h++) {
      const iid = rng.chance(0.5)
        ? [0, 0, 0, rng.range(1, 0x1ff)]
        : [rng.range(0, 0xffff) & 0xfdff, rng.range(0, 0xffff), rng.range(0, 0xffff), rng.range(1, 0xffff)];
      add(formatIpv6([...net, ...iid]), profile);
    }
  }
  // IPv4-mapped clients (dual-stack listener): always, or now and then
  for (let i = 0; i < 4; i++) add(`100.70.${rng.range(0, 255)}.${rng.range(1, 254)}`, PROFILE_PICK.pick(rng), false, true);
  for (let i = 0; i < 2; i++) add(`100.71.${rng.range(0, 255)}.${rng.range(1, 254)}`, 'sasl', true, false);
  // lone IPv6 hosts, one per /64, some with a PTR name
  for (let i = 0; i < ipv6Lone; i++) {
    const groups = [0x2001, 0xdb8, 0x1000 + rng.int(0xe000), rng.int(0x10000), 0, 0, 0, rng.range(1, 0xffff)];
    const address = formatIpv6(groups);
    const before = out.length;
    add(address, PROFILE_PICK.pick(rng));
    if (out.length > before && rng.chance(0.3)) out[out.length - 1]!.name = `host-${groups[2]!.toString(16)}-${groups[3]!.toString(16)}.v6.example.net`;
  }
  // lone hosts all over 10/8
  while (out.length < target) {
    add(`10.${rng.range(0, 255)}.${rng.range(0, 255)}.${rng.range(1, 254)}`, PROFILE_PICK.pick(rng));
  }
  return out;
}

/** Legitimate mail servers that send to us (and that we send to). */
export function buildServers(rng: Random, count: number): Client[] {
  const out: Client[] = [];
  const seen = new Set<string>();
  while (out.length < count) {
    const v6 = rng.chance(0.15);
    const address = v6
      ? formatIpv6([0x2001, 0xdb8, 0xe000 + rng.int(0x1000), rng.int(0x10000), 0, 0, 0, rng.range(1, 0xfff)])
      : `100.${rng.range(100, 127)}.${rng.range(0, 255)}.${rng.range(1, 254)}`;
    if (seen.has(address)) continue;
    seen.add(address);
    const name = rng.chance(0.04) ? 'unknown' : `${rng.pick(SERVER_PREFIXES)}${rng.range(1, 60)}.${rng.pick(DOMAINS)}`;
    out.push({ address, shown: address, name });
  }
  return out;
}

/** Our own users: their SASL logins, from home, phone and office. */
export function buildUsers(rng: Random): User[] {
  const logins = [
    'alice@example.org', 'bob@example.org', 'carol@example.org', 'dave@example.org', 'erin@example.org',
    'frank@example.org', 'grace@example.net', 'heidi@example.net', 'ivan', 'judy@example.org', 'olivia@example.org',
    'peggy@example.org',
  ];
  return logins.map((login, u) => {
    const clients: Client[] = [];
    const n = rng.range(1, 3);
    for (let i = 0; i < n; i++) {
      if (rng.chance(0.25)) {
        const address = formatIpv6([0x2001, 0xdb8, 0xa000 + u, rng.int(0x10000), rng.int(0x10000), rng.int(0x10000), rng.int(0x10000), rng.range(1, 0xffff)]);
        clients.push({ address, shown: address, name: 'unknown' });
      } else {
        const address = `100.${rng.range(80, 95)}.${rng.range(0, 255)}.${rng.range(1, 254)}`;
        const name = rng.chance(0.5) ? 'unknown' : `host-${address.replace(/\./g, '-')}.home.example.net`;
        clients.push({ address, shown: address, name });
      }
    }
    return { login, clients };
  });
}
