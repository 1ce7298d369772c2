/**
 * A deterministic, realistic Debian 12 mail.log generator, with ground truth.
 *
 * Writes what a Debian 12 mail server logs (Postfix 3.7 with postscreen, submission
 * and smtps, Dovecot, opendkim, amavis, postgrey): about 90% ordinary traffic and
 * 10% attacks, from a Zipf-like population of attackers (a few busy /24 networks,
 * many lone hosts, IPv6 /64s, IPv4-mapped clients), plus the traps a careless
 * parser falls for (addresses inside SASL usernames, helo= and from=, unknown[unknown],
 * reject_warning, other programs quoting Postfix text).
 *
 * The ground truth is counted here, line by line, as each line is handed out: every
 * event the parser must find, per normalised client address and kind. It never comes
 * from parsing the output.
 *
 * Library: generateLines(), writeLog(). CLI (after `tsc -p tsconfig.bench.json`):
 *   node dist-bench/bench/generate.js --lines N --seed S --out FILE [--truth FILE.json]
 *     [--format rfc3339|traditional|maillog] [--start ISO] [--end ISO] [--attack-share 0.1] [--host mx]
 * Timestamps are written in UTC (RFC 3339 with +00:00; the year-less forms are UTC
 * wall-clock time, so scan those with TZ=UTC).
 */
import { realpathSync } from 'node:fs';
import { open, writeFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { EVENT_KINDS, type EventKind } from '../src/read/kinds.js';

export type LogFormat = 'rfc3339' | 'traditional' | 'maillog';

export interface GenerateOptions {
  /** Lines to write. */
  lines: number;
  /** Same seed, same options: same lines, byte for byte. */
  seed: number;
  /** Time of the first line. */
  start: Date;
  /** Time the lines are spread up to (default: start + 7 days). */
  end?: Date;
  /** Share of the lines that come from attack sessions (default 0.1). */
  attackShare?: number;
  /**
   * rfc3339 (default, Debian 12 rsyslog): `2026-11-22T11:37:32.010856+00:00 mx postfix/smtpd[1234]: ...`;
   * traditional (syslog): `Nov  2 09:05:07 mx ...`; maillog (Postfix maillog_file): `Nov 02 09:05:07 mx ...`,
   * which holds Postfix's own lines only.
   */
  format?: LogFormat;
  /** Host name field (default `mx`). */
  host?: string;
  /** IPv4 attackers (default: lines / 250, at most 20,000, with a few IPv6 /64s). */
  attackers?: number;
  /** Lone IPv6 attackers on top of those (each in its own /64; default none). */
  ipv6Attackers?: number;
}

/**
 * The event-heavy shape of issue 11: 10% of the lines are counted events (SASL failures,
 * client rejects, recipient rejects), from a Zipf population of ~4,000 IPv4 and 300 IPv6
 * attackers, PTR names on a share, SASL usernames; spread over the days asked for.
 */
export const EVENT_HEAVY: Pick<GenerateOptions, 'attackShare' | 'attackers' | 'ipv6Attackers'> = { attackShare: 0.5, attackers: 4000, ipv6Attackers: 300 };

/**
 * Events the parser must find, per normalised client address (IPv4 dotted quad;
 * IPv6 RFC 5952; IPv4-mapped IPv6 counted as the IPv4 address), by kind.
 */
export interface GroundTruth {
  [address: string]: Partial<Record<EventKind, number>>;
}

const DAY_MS = 86_400_000;
export const DEFAULT_ATTACK_SHARE = 0.1;

/** Counts one event in `truth`. */
export function addEvent(truth: GroundTruth, address: string, kind: EventKind, count = 1): void {
  const counts = (truth[address] ??= {});
  counts[kind] = (counts[kind] ?? 0) + count;
}

/** Adds every count of `other` to `truth`. */
export function addTruth(truth: GroundTruth, other: GroundTruth): void {
  for (const [address, counts] of Object.entries(other)) {
    for (const kind of EVENT_KINDS) {
      const n = counts[kind];
      if (n !== undefined) for (let i = 0; i < n; i++) addEvent(truth, address, kind);
    }
  }
}

/** The same counts with addresses in numeric order (IPv4 first) and kinds in EVENT_KINDS order. */
export function sortTruth(truth: GroundTruth): GroundTruth {
  const sorted: GroundTruth = {};
  const addresses = Object.keys(truth).sort((a, b) => {
    const ka = addressKey(a);
    const kb = addressKey(b);
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  });
  for (const address of addresses) {
    const counts = truth[address]!;
    const ordered: Partial<Record<EventKind, number>> = {};
    for (const kind of EVENT_KINDS) if (counts[kind] !== undefined) ordered[kind] = counts[kind];
    sorted[address] = ordered;
  }
  return sorted;
}

function addressKey(address: string): string {
  if (!address.includes(':')) return `4${address.split('.').map((o) => Number(o).toString(16).padStart(2, '0')).join('')}`;
  const [head = '', tail] = address.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return `6${groups.map((g) => g.padStart(4, '0')).join('')}`;
}

// ---------------------------------------------------------------------------
// Randomness

/** mulberry32: a small, fast 32-bit PRNG; returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Any number -> a well-mixed 32-bit seed (so seeds 1 and 2 give unrelated streams). */
function mixSeed(seed: number, stream: number): number {
  let h = (Math.trunc(seed) ^ Math.imul(stream + 1, 0x9e3779b9)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

class Random {
  private readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  float(): number {
    return this.next();
  }
  /** 0 .. n-1 */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  /** lo .. hi, both included */
  range(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }
  /** n characters of `alphabet` */
  chars(alphabet: string, n: number): string {
    let s = '';
    for (let i = 0; i < n; i++) s += alphabet[Math.floor(this.next() * alphabet.length)];
    return s;
  }
  port(): number {
    return 1024 + Math.floor(this.next() * 64511);
  }
}

/** Picks items with given weights (cumulative table, binary search). */
class Weighted<T> {
  private readonly items: T[] = [];
  private readonly cumulative: number[] = [];
  private total = 0;
  constructor(entries: ReadonlyArray<readonly [T, number]>) {
    for (const [item, weight] of entries) {
      if (weight <= 0) continue;
      this.total += weight;
      this.items.push(item);
      this.cumulative.push(this.total);
    }
  }
  pick(rng: Random): T {
    const x = rng.float() * this.total;
    let lo = 0;
    let hi = this.cumulative.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.cumulative[mid]! > x) hi = mid;
      else lo = mid + 1;
    }
    return this.items[lo]!;
  }
}

// ---------------------------------------------------------------------------
// Addresses

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
interface Client {
  /** Normalised address: what the truth is counted under. */
  address: string;
  /** The address as logged (`::ffff:192.0.2.7` for an IPv4-mapped client). */
  shown: string;
  /** Reverse-DNS name, or `unknown`. */
  name: string;
}

type Profile = 'sasl' | 'spam' | 'postscreen' | 'scanner';

interface Attacker extends Client {
  profile: Profile;
  /** Also logged as ::ffff:a.b.c.d in some sessions (IPv4 clients only). */
  sometimesMapped: boolean;
}

interface User {
  login: string;
  clients: Client[];
}

/** The server's own address (never a client here). */
const SERVER_V4 = '192.0.2.25';
const SERVER_V6 = '2001:db8::25';
const MY_DOMAIN = 'example.org';
const MY_HOSTNAME = 'mx.example.org';
/** Host numbers never given to generated clients in the documentation /24s (the server, network and broadcast). */
const RESERVED_HOSTS = new Set([0, 1, 25, 255]);

const DOMAINS = [
  'example.com', 'example.net', 'mail.example', 'news.example', 'shop.example', 'bank.example',
  'lists.example', 'cloud.example', 'travel.example', 'social.example', 'forum.example', 'invoice.example',
];
const SERVER_PREFIXES = ['mail', 'smtp', 'mx', 'out', 'mta', 'o', 'bounce', 'relay', 'mail-out', 'smtp-out'];
const LOCAL_USERS = [
  'alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan', 'judy', 'mallory', 'niaj',
  'olivia', 'peggy', 'rupert', 'sybil', 'trent', 'victor', 'walter', 'info', 'sales', 'support',
];
const ATTACK_LOGINS = [
  'admin', 'info', 'test', 'user', 'sales', 'office', 'contact', 'support', 'postmaster', 'webmaster',
  'noreply', 'marketing', 'root', 'guest', 'scanner', 'backup', 'mail', 'john', 'test1', 'abc', 'a',
  'info@example.org', 'admin@example.org', 'sales@example.org', 'alice@example.org', 'hr@example.org',
  'accounting@example.org', 'newsletter@example.org', 'office@example.org', 'bob@example.org', 'ceo@example.org',
  'info@mx.example.org', 'test@example.org', 'postmaster@example.org', 'user1@example.org', 'admin@mx.example.org',
];
const BOT_HELOS = [
  'User', 'ylmf-pc', 'WIN-CLJ1B0GQ6JP', 'localhost', 'example.com', 'win7', 'mail.example.org', 'ADMIN', 'desktop',
];
const SPAM_SENDERS = [
  'info', 'news', 'promo', 'offer', 'support', 'billing', 'security', 'noreply', 'admin', 'service',
];
const HEX = '0123456789ABCDEF';
const LOWER_HEX = '0123456789abcdef';
const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const BASE64 = `${ALNUM}+/`;
/** Postfix long queue IDs: base 52 (seconds, microseconds), 'z', base 51 (inode). */
const QUEUE_ID_ALPHABET = '0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz';

const TLS_IN = [
  'TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256',
  'TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256',
  'TLSv1.3 with cipher TLS_AES_128_GCM_SHA256 (128/128 bits) key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256',
  'TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)',
  'TLSv1.2 with cipher ECDHE-RSA-AES128-GCM-SHA256 (128/128 bits)',
];
const TLS_OUT = [
  'TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature ECDSA (P-256) server-digest SHA256',
  'TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256',
  'TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)',
];

// ---------------------------------------------------------------------------
// One generated line, before its timestamp

interface Line {
  /** `postfix/smtpd[1234]: ...`: everything after `TIMESTAMP HOST `. */
  text: string;
  /** The event the parser must find in it, if any. */
  address: string | null;
  kind: EventKind | null;
  /** How many events of `kind` the line stands for (a disconnect line's failed AUTH count). */
  count: number;
  /** Written by a program other than Postfix (absent from a Postfix maillog_file). */
  foreign: boolean;
}

/** Long-lived and short-lived process IDs, growing the way a busy server's do. */
class Pids {
  private next: number;
  constructor(private readonly rng: Random) {
    this.next = rng.range(900, 30000);
  }
  fresh(): number {
    this.next += this.rng.range(1, 40);
    if (this.next > 4_194_304) this.next = this.rng.range(300, 3000);
    return this.next;
  }
}

/** A set of processes of one service: each session uses one; now and then one exits and another starts. */
class PidPool {
  private readonly pids: number[];
  constructor(
    private readonly pids_: Pids,
    private readonly rng: Random,
    size: number,
    private readonly churn: number,
  ) {
    this.pids = Array.from({ length: size }, () => pids_.fresh());
  }
  pick(): number {
    const i = this.rng.int(this.pids.length);
    if (this.rng.chance(this.churn)) this.pids[i] = this.pids_.fresh();
    return this.pids[i]!;
  }
}

// ---------------------------------------------------------------------------
// The simulated server and its population

type Service = 'smtpd' | 'submission' | 'smtps';
const SERVICE_TAG: Readonly<Record<Service, string>> = {
  smtpd: 'postfix/smtpd',
  submission: 'postfix/submission/smtpd',
  smtps: 'postfix/smtps/smtpd',
};
const SERVICE_NAME: Readonly<Record<Service, string>> = { smtpd: 'smtp', submission: 'submission', smtps: 'smtps' };

type Builder = (world: World, t: number) => void;

class World {
  readonly rng: Random;
  private readonly pids: Pids;
  private readonly smtpd: Record<Service, PidPool>;
  private readonly cleanup: PidPool;
  private readonly smtp: PidPool;
  private readonly lmtp: PidPool;
  private readonly local: PidPool;
  private readonly amavis: PidPool;
  private readonly dovecot: PidPool;
  private readonly pickup: PidPool;
  private readonly postgrey: PidPool;
  // long-lived daemons, restarted rarely
  private postscreenPid: number;
  private qmgrPid: number;
  private anvilPid: number;
  private readonly opendkimPid: number;
  private amavisChild = 1;

  private readonly attackers: Attacker[];
  private readonly attackerPick: Weighted<Attacker>;
  private readonly servers: Client[];
  private readonly serverPick: Weighted<Client>;
  private readonly users: User[];

  /** Lines of the session being built. */
  out: Line[] = [];

  constructor(seed: number, scale: number, ipv6Attackers = 0) {
    this.rng = new Random(mixSeed(seed, 1));
    const population = new Random(mixSeed(seed, 2));
    this.pids = new Pids(this.rng);
    const pool = (size: number, churn: number) => new PidPool(this.pids, this.rng, size, churn);
    this.postscreenPid = this.pids.fresh();
    this.qmgrPid = this.pids.fresh();
    this.anvilPid = this.pids.fresh();
    this.opendkimPid = this.pids.fresh();
    this.smtpd = { smtpd: pool(8, 0.01), submission: pool(3, 0.01), smtps: pool(2, 0.01) };
    this.cleanup = pool(3, 0.005);
    this.smtp = pool(5, 0.01);
    this.lmtp = pool(2, 0.01);
    this.local = pool(1, 0.02);
    this.amavis = pool(2, 0.001);
    this.dovecot = pool(6, 0.05);
    this.pickup = pool(1, 0.003);
    this.postgrey = pool(1, 0);

    this.attackers = buildAttackers(population, scale, ipv6Attackers);
    // Zipf: weight 1/rank^1.1 over a shuffled order, so a network's hosts land at scattered ranks.
    const order = shuffle(population, this.attackers.slice());
    this.attackerPick = new Weighted(order.map((a, rank) => [a, 1 / Math.pow(rank + 1, 1.1)] as const));
    this.servers = buildServers(population, Math.max(40, Math.min(4000, Math.round(scale / 4))));
    this.serverPick = new Weighted(shuffle(population, this.servers.slice()).map((s, rank) => [s, 1 / Math.pow(rank + 1, 0.8)] as const));
    this.users = buildUsers(population);
  }

  // --- output -------------------------------------------------------------

  emit(text: string): void {
    this.out.push({ text, address: null, kind: null, count: 0, foreign: false });
  }
  event(text: string, client: Client, kind: EventKind, count = 1): void {
    this.out.push({ text, address: client.address, kind, count, foreign: false });
  }
  /** A session summary: an authDisconnect event for its failed AUTH commands (`auth=OK/TRIED`), if any. */
  disconnect(text: string, client: Client): void {
    const auth = / auth=(\d+)\/(\d+)/.exec(text);
    if (auth === null || Number(auth[2]) <= Number(auth[1])) this.emit(text);
    else this.event(text, client, 'authDisconnect', Number(auth[2]) - Number(auth[1]));
  }
  foreign(text: string): void {
    this.out.push({ text, address: null, kind: null, count: 0, foreign: true });
  }

  // --- helpers ------------------------------------------------------------

  /** Restarts of long-lived daemons, very rarely. */
  tick(): void {
    if (this.rng.chance(0.00002)) this.postscreenPid = this.pids.fresh();
    if (this.rng.chance(0.00002)) this.qmgrPid = this.pids.fresh();
    if (this.rng.chance(0.0001)) this.anvilPid = this.pids.fresh();
  }

  smtpdTag(service: Service): string {
    return `${SERVICE_TAG[service]}[${this.smtpd[service].pick()}]`;
  }
  postscreenTag(): string {
    return `postfix/postscreen[${this.postscreenPid}]`;
  }
  qmgrTag(): string {
    return `postfix/qmgr[${this.qmgrPid}]`;
  }

  /** `NAME[ADDR]` or, with smtpd_client_port_logging, `NAME[ADDR]:PORT`. */
  namaddr(client: Client, withPort: boolean): string {
    return withPort ? `${client.name}[${client.shown}]:${this.rng.port()}` : `${client.name}[${client.shown}]`;
  }

  queueId(t: number): string {
    const micros = this.rng.int(1_000_000); // when cleanup created the queue file
    if (this.rng.chance(0.1)) {
      // enable_long_queue_ids = yes
      const seconds = Math.floor(t / 1_000_000);
      return `${base(seconds, 52, 6)}${base(micros, 52, 4)}z${base(this.rng.range(2000, 140000), 51, 0)}`;
    }
    return `${micros.toString(16).toUpperCase().padStart(5, '0')}${this.rng.range(0x10000, 0x3fffff).toString(16).toUpperCase()}`;
  }

  messageId(t: number, domain: string): string {
    switch (this.rng.int(4)) {
      case 0:
        return `<${isoCompact(t)}.${this.rng.chars(HEX, 10)}@${domain}>`;
      case 1:
        return `<CA+${this.rng.chars(BASE64, 40)}@mail.${domain}>`;
      case 2:
        return `<${this.rng.chars(LOWER_HEX, 8)}-${this.rng.chars(LOWER_HEX, 4)}-4${this.rng.chars(LOWER_HEX, 3)}-${this.rng.chars(LOWER_HEX, 4)}-${this.rng.chars(LOWER_HEX, 12)}@${domain}>`;
      default:
        return `<0100${this.rng.chars(LOWER_HEX, 12)}-${this.rng.chars(LOWER_HEX, 8)}-000000@email.${domain}>`;
    }
  }

  localRecipient(): string {
    return `${this.rng.pick(LOCAL_USERS)}@${MY_DOMAIN}`;
  }

  server(): Client {
    return this.serverPick.pick(this.rng);
  }
  attacker(): Attacker {
    return this.attackerPick.pick(this.rng);
  }
  user(): User {
    return this.rng.pick(this.users);
  }

  /** The client as this session shows it (a mapped one now and then). */
  attackerClient(a: Attacker): Client {
    return a.sometimesMapped && this.rng.chance(0.5) ? { ...a, shown: `::ffff:${a.address}` } : a;
  }

  /** An address a trap line quotes; the parser must not count it. */
  trapAddress(): string {
    return this.rng.chance(0.5) ? `198.51.100.${this.rng.range(2, 254)}` : `203.0.113.${this.rng.range(2, 254)}`;
  }

  delay(): string {
    const a = (this.rng.float() * 0.4).toFixed(2);
    const b = (this.rng.float() * 0.05).toFixed(2);
    const c = (this.rng.float() * 0.3).toFixed(2);
    const d = (this.rng.float() * 0.8).toFixed(2);
    return `delay=${(Number(a) + Number(b) + Number(c) + Number(d)).toFixed(2)}, delays=${a}/${b}/${c}/${d}`;
  }

  size(): number {
    return this.rng.range(900, 90000);
  }

  stamp(t: number): string {
    // anvil's own "at" time: traditional, server local time (UTC here)
    return traditionalStamp(new Date(Math.floor(t / 1000)), false);
  }

  amavisId(): string {
    return `${this.amavis.pick()}-${String(this.amavisChild++ % 100).padStart(2, '0')}`;
  }

  // --- pids for the other services -------------------------------------------
  cleanupTag(): string {
    return `postfix/cleanup[${this.cleanup.pick()}]`;
  }
  smtpTag(): string {
    return `postfix/smtp[${this.smtp.pick()}]`;
  }
  lmtpTag(): string {
    return `postfix/lmtp[${this.lmtp.pick()}]`;
  }
  localTag(): string {
    return `postfix/local[${this.local.pick()}]`;
  }
  pickupTag(): string {
    return `postfix/pickup[${this.pickup.pick()}]`;
  }
  dovecotPid(): number {
    return this.dovecot.pick();
  }
  anvilTag(): string {
    return `postfix/anvil[${this.anvilPid}]`;
  }
  opendkimTag(): string {
    return `opendkim[${this.opendkimPid}]`;
  }
  postgreyTag(): string {
    return `postgrey[${this.postgrey.pick()}]`;
  }
}

function base(n: number, radix: number, pad: number): string {
  let s = '';
  let v = Math.floor(n);
  do {
    s = QUEUE_ID_ALPHABET[v % radix]! + s;
    v = Math.floor(v / radix);
  } while (v > 0);
  return s.padStart(pad, '0');
}

function isoCompact(t: number): string {
  return new Date(Math.floor(t / 1000)).toISOString().replace(/[-:T]/g, '').slice(0, 14);
}

function shuffle<T>(rng: Random, items: T[]): T[] {
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
function buildAttackers(rng: Random, scale: number, ipv6Lone: number): Attacker[] {
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
function buildServers(rng: Random, count: number): Client[] {
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
function buildUsers(rng: Random): User[] {
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

// ---------------------------------------------------------------------------
// Ordinary traffic: no events, except successful SASL logins (and greylisted senders)

/** A message from another server, through postscreen and smtpd, to a local mailbox. */
const inbound: Builder = (w, t) => {
  const rng = w.rng;
  const c = w.server();
  const server = c.address.includes(':') ? SERVER_V6 : SERVER_V4;
  const port = rng.port();
  const ps = w.postscreenTag();
  w.emit(`${ps}: CONNECT from [${c.shown}]:${port} to [${server}]:25`);
  const roll = rng.float();
  if (roll < 0.8) w.emit(`${ps}: PASS OLD [${c.shown}]:${port}`);
  else if (roll < 0.95) w.emit(`${ps}: PASS NEW [${c.shown}]:${port}`);
  else w.emit(`${ps}: ALLOWLISTED [${c.shown}]:${port}`);
  const tag = w.smtpdTag('smtpd');
  let client = c;
  if (c.name !== 'unknown' && rng.chance(0.04)) {
    w.event(`${tag}: warning: hostname ${c.name} does not resolve to address ${c.shown}: Name or service not known`, c, 'hostnameMismatch');
    client = { ...c, name: 'unknown' };
  } else if (c.name !== 'unknown' && rng.chance(0.01)) {
    w.event(`${tag}: warning: hostname ${c.name} does not resolve to address ${c.shown}`, c, 'hostnameMismatch');
    client = { ...c, name: 'unknown' };
  }
  const who = w.namaddr(client, false);
  const helo = c.name === 'unknown' ? `mail.${rng.pick(DOMAINS)}` : c.name;
  const sender = `${rng.pick(SPAM_SENDERS)}@${rng.pick(DOMAINS)}`;
  const rcpt = w.localRecipient();
  w.emit(`${tag}: connect from ${who}`);
  const tls = rng.chance(0.8);
  if (tls) w.emit(`${tag}: Anonymous TLS connection established from ${who}: ${rng.pick(TLS_IN)}`);
  const ehlo = tls ? 'ehlo=2 starttls=1 ' : 'ehlo=1 ';
  const commands = tls ? 7 : 5;
  if (rng.chance(0.03)) {
    // greylisted: a 4xx a real server retries after (a tempReject event for a legitimate client)
    w.foreign(`${w.postgreyTag()}: action=greylist, reason=new, client_name=${client.name}, client_address=${c.shown}, sender=${sender}, recipient=${rcpt}`);
    w.event(
      `${tag}: NOQUEUE: reject: RCPT from ${who}: 450 4.2.0 <${rcpt}>: Recipient address rejected: Greylisted, see https://postgrey.schweikert.ch/help/${MY_DOMAIN}.html; from=<${sender}> to=<${rcpt}> proto=ESMTP helo=<${helo}>`,
      c,
      'tempReject',
    );
    w.emit(`${tag}: disconnect from ${who} ${ehlo}mail=1 rcpt=0/1 quit=1 commands=${commands - 2}/${commands - 1}`);
    return;
  }
  const qid = w.queueId(t);
  w.event(`${tag}: ${qid}: client=${who}`, c, 'accepted');
  const cleanup = w.cleanupTag();
  w.emit(`${cleanup}: ${qid}: message-id=${w.messageId(t, rng.pick(DOMAINS))}`);
  if (rng.chance(0.02)) {
    // header_checks: logged by cleanup, not an smtpd event
    w.emit(`${cleanup}: ${qid}: reject: header Subject: Invoice ${rng.range(1000, 9999)} overdue from ${who}; from=<${sender}> to=<${rcpt}> proto=ESMTP helo=<${helo}>: 5.7.1 Message content rejected`);
    w.emit(`${tag}: disconnect from ${who} ${ehlo}mail=1 rcpt=1 data=0/1 quit=1 commands=${commands - 1}/${commands}`);
    return;
  }
  const dkim = w.opendkimTag();
  if (rng.chance(0.7)) w.foreign(`${dkim}: ${qid}: DKIM verification successful`);
  else w.foreign(`${dkim}: ${qid}: no signature data`);
  const size = w.size();
  const q = w.qmgrTag();
  w.emit(`${q}: ${qid}: from=<${sender}>, size=${size}, nrcpt=1 (queue active)`);
  w.emit(`${tag}: disconnect from ${who} ${ehlo}mail=1 rcpt=1 data=1 quit=1 commands=${commands}`);
  if (rng.chance(0.5)) {
    const id = w.amavisId();
    w.foreign(
      `amavis[${id.split('-')[0]}]: (${id}) Passed CLEAN {RelayedInbound}, [${c.shown}]:${port} [${c.shown}] <${sender}> -> <${rcpt}>, Queue-ID: ${qid}, Message-ID: ${w.messageId(t, rng.pick(DOMAINS))}, mail_id: ${rng.chars(ALNUM, 12)}, Hits: ${(rng.float() * 4 - 2).toFixed(3)}, size: ${size}, ${rng.range(200, 3000)} ms`,
    );
  }
  const session = rng.chars(BASE64.slice(0, 62), 22);
  w.emit(`${w.lmtpTag()}: ${qid}: to=<${rcpt}>, relay=${MY_HOSTNAME}[private/dovecot-lmtp], ${w.delay()}, dsn=2.0.0, status=sent (250 2.0.0 <${rcpt}> ${session} Saved)`);
  w.foreign(`dovecot: lmtp(${rcpt})<${w.dovecotPid()}><${session}>: msgid=${w.messageId(t, rng.pick(DOMAINS))}: saved mail to INBOX`);
  w.emit(`${q}: ${qid}: removed`);
};

/** One of our users sends a message through submission (or smtps): a saslSuccess event. */
function sendAsUser(w: World, t: number, user: User, c: Client, service: Service): void {
  const rng = w.rng;
  const tag = w.smtpdTag(service);
  const who = w.namaddr(c, false);
  w.emit(`${tag}: connect from ${who}`);
  w.emit(`${tag}: Anonymous TLS connection established from ${who}: ${rng.pick(TLS_IN)}`);
  const qid = w.queueId(t);
  const method = rng.chance(0.8) ? 'PLAIN' : 'LOGIN';
  w.event(`${tag}: ${qid}: client=${who}, sasl_method=${method}, sasl_username=${user.login}`, c, 'saslSuccess');
  w.emit(`${w.cleanupTag()}: ${qid}: message-id=${w.messageId(t, MY_DOMAIN)}`);
  w.foreign(`${w.opendkimTag()}: ${qid}: DKIM-Signature field added (s=mail, d=${MY_DOMAIN})`);
  const from = user.login.includes('@') ? user.login : `${user.login}@${MY_DOMAIN}`;
  const q = w.qmgrTag();
  w.emit(`${q}: ${qid}: from=<${from}>, size=${w.size()}, nrcpt=1 (queue active)`);
  const starttls = service === 'submission' ? 'ehlo=2 starttls=1 ' : 'ehlo=1 ';
  const commands = service === 'submission' ? 8 : 6;
  w.emit(`${tag}: disconnect from ${who} ${starttls}auth=1 mail=1 rcpt=1 data=1 quit=1 commands=${commands}`);
  const peer = w.server();
  const relay = `${peer.name === 'unknown' ? `mx.${rng.pick(DOMAINS)}` : peer.name}[${peer.shown}]`;
  const smtp = w.smtpTag();
  const rcpt = `${rng.pick(LOCAL_USERS)}@${rng.pick(DOMAINS)}`;
  if (rng.chance(0.05)) {
    w.emit(`${smtp}: ${qid}: to=<${rcpt}>, relay=none, ${w.delay()}, dsn=4.4.1, status=deferred (connect to ${relay}:25: Connection timed out)`);
    return;
  }
  w.emit(`${smtp}: Trusted TLS connection established to ${relay}:25: ${rng.pick(TLS_OUT)}`);
  w.emit(`${smtp}: ${qid}: to=<${rcpt}>, relay=${relay}:25, ${w.delay()}, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as ${rng.chars(HEX, 11)})`);
  w.emit(`${q}: ${qid}: removed`);
}

const submission: Builder = (w, t) => {
  const user = w.user();
  sendAsUser(w, t, user, w.rng.pick(user.clients), w.rng.chance(0.8) ? 'submission' : 'smtps');
};

/** A user mistypes the password 1-3 times, then gets it right, from the same address. */
const userTypo: Builder = (w, t) => {
  const rng = w.rng;
  const user = w.user();
  const c = rng.pick(user.clients);
  const service: Service = rng.chance(0.8) ? 'submission' : 'smtps';
  const failures = rng.range(1, 3);
  for (let i = 0; i < failures; i++) {
    const tag = w.smtpdTag(service);
    const who = w.namaddr(c, false);
    w.emit(`${tag}: connect from ${who}`);
    w.emit(`${tag}: Anonymous TLS connection established from ${who}: ${rng.pick(TLS_IN)}`);
    w.event(`${tag}: warning: ${who}: SASL PLAIN authentication failed: (reason unavailable), sasl_username=${user.login}`, c, 'saslFailure');
    w.disconnect(`${tag}: disconnect from ${who} ${service === 'submission' ? 'ehlo=2 starttls=1 auth=0/1 quit=1 commands=4/5' : 'ehlo=1 auth=0/1 quit=1 commands=2/3'}`, c);
  }
  sendAsUser(w, t, user, c, service);
};

/** IMAP: Dovecot's own lines, one of which quotes the client address (not a Postfix event). */
const imap: Builder = (w) => {
  const rng = w.rng;
  const user = w.user();
  const c = rng.pick(user.clients);
  const pid = w.dovecotPid();
  const session = rng.chars(BASE64, 16);
  const login = user.login.includes('@') ? user.login : `${user.login}@${MY_DOMAIN}`;
  w.foreign(`dovecot: imap-login: Login: user=<${login}>, method=PLAIN, rip=${c.shown}, lip=${c.address.includes(':') ? SERVER_V6 : SERVER_V4}, mpid=${pid}, TLS, session=<${session}>`);
  w.foreign(`dovecot: imap(${login})<${pid}><${session}>: Logged out in=${rng.range(50, 5000)} out=${rng.range(500, 900000)} deleted=0 expunged=0 trashed=0 hdr_count=0 hdr_bytes=0 body_count=0 body_bytes=0`);
};

/** A local message (cron, logcheck) to root. */
const localMail: Builder = (w, t) => {
  const qid = w.queueId(t);
  w.emit(`${w.pickupTag()}: ${qid}: uid=0 from=<root>`);
  w.emit(`${w.cleanupTag()}: ${qid}: message-id=<${isoCompact(t)}.${qid}@${MY_HOSTNAME}>`);
  const q = w.qmgrTag();
  w.emit(`${q}: ${qid}: from=<root@${MY_HOSTNAME}>, size=${w.rng.range(400, 6000)}, nrcpt=1 (queue active)`);
  w.emit(`${w.localTag()}: ${qid}: to=<root@${MY_HOSTNAME}>, orig_to=<root>, relay=local, ${w.delay()}, dsn=2.0.0, status=sent (delivered to mailbox)`);
  w.emit(`${q}: ${qid}: removed`);
};

/** anvil's periodic statistics: they name clients, and are no event. */
const anvil: Builder = (w, t) => {
  const rng = w.rng;
  const c: Client = rng.chance(0.5) ? w.attacker() : w.server();
  const tag = w.anvilTag();
  const at = w.stamp(t - rng.range(1, 500) * 1_000_000);
  w.emit(`${tag}: statistics: max connection rate ${rng.range(1, 40)}/60s for (smtp:${c.shown}) at ${at}`);
  w.emit(`${tag}: statistics: max connection count ${rng.range(1, 10)} for (smtp:${c.shown}) at ${at}`);
  w.emit(`${tag}: statistics: max cache size ${rng.range(1, 60)} at ${at}`);
};

/** A message of ours that cannot be delivered yet: quotes a remote address, no event. */
const deferred: Builder = (w, t) => {
  const rng = w.rng;
  const qid = w.queueId(t);
  const peer = `mx${rng.range(1, 9)}.${rng.pick(DOMAINS)}[${rng.chance(0.5) ? w.trapAddress() : w.server().shown}]`;
  const rcpt = `${rng.pick(LOCAL_USERS)}@${rng.pick(DOMAINS)}`;
  const line = rng.chance(0.5)
    ? `relay=none, ${w.delay()}, dsn=4.4.1, status=deferred (connect to ${peer}:25: Connection timed out)`
    : `relay=${peer}:25, ${w.delay()}, dsn=4.7.1, status=deferred (host ${peer} said: 450 4.7.1 <${rcpt}>: Recipient address rejected: Greylisted (in reply to RCPT TO command))`;
  w.emit(`${w.smtpTag()}: ${qid}: to=<${rcpt}>, ${line}`);
};

const ORDINARY = new Weighted<Builder>([
  [inbound, 52],
  [submission, 14],
  [userTypo, 0.25],
  [imap, 14],
  [localMail, 5],
  [anvil, 3],
  [deferred, 3],
]);

// ---------------------------------------------------------------------------
// Attacks

type Mechanism = 'LOGIN' | 'PLAIN' | 'login';

function saslReason(rng: Random, mech: Mechanism): string {
  const r = rng.float();
  if (mech !== 'PLAIN' && r < 0.45) return 'UGFzc3dvcmQ6'; // Dovecot, Postfix <= 3.7.10: base64 "Password:"
  if (r < 0.75) return 'authentication failure'; // Cyrus
  if (r < 0.97) return '(reason unavailable)'; // Dovecot, Postfix 3.7.11
  return ''; // empty reason
}

/** What a brute-forcer sends as its user name; now and then one that quotes an address. */
function attackLogin(w: World): string {
  const rng = w.rng;
  if (!rng.chance(0.04)) return rng.pick(ATTACK_LOGINS);
  const a = w.trapAddress();
  switch (rng.int(5)) {
    case 0:
      return `x[${a}]`;
    case 1:
      return `unknown[${a}]`;
    case 2:
      return `admin@[${a}]`;
    case 3:
      return `]: SASL LOGIN authentication failed: unknown[${a}]`;
    default:
      return `unknown[${a}]: SASL PLAIN authentication failed: x`;
  }
}

/** One SASL failure line (the client field comes from `who`). */
function saslFailureText(w: World, tag: string, who: string): string {
  const rng = w.rng;
  const mech: Mechanism = rng.chance(0.03) ? 'login' : rng.chance(0.62) ? 'LOGIN' : 'PLAIN';
  const reason = saslReason(rng, mech);
  const withUser = reason !== '' && rng.chance(0.85); // sasl_username= since 3.7.8
  return `${tag}: warning: ${who}: SASL ${mech} authentication failed: ${reason}${withUser ? `, sasl_username=${attackLogin(w)}` : ''}`;
}

function pickService(rng: Random): Service {
  const r = rng.float();
  return r < 0.3 ? 'smtpd' : r < 0.8 ? 'submission' : 'smtps';
}

/** SASL brute force: one to three failures per connection. */
function saslBrute(w: World, a: Attacker): void {
  const rng = w.rng;
  const c = w.attackerClient(a);
  const service = pickService(rng);
  const tag = w.smtpdTag(service);
  const port = rng.chance(0.15);
  const who = w.namaddr(c, port);
  w.emit(`${tag}: connect from ${who}`);
  // submission requires STARTTLS (Debian's master.cf), smtps is TLS from the start, port 25 offers it
  const tls = service !== 'smtpd' || rng.chance(0.3);
  if (tls) w.emit(`${tag}: Anonymous TLS connection established from ${who}: ${rng.pick(TLS_IN)}`);
  const cyrus = rng.chance(0.25);
  const n = rng.chance(0.8) ? 1 : rng.range(2, 3);
  for (let i = 0; i < n; i++) {
    if (cyrus) w.emit(`${tag}: warning: SASL authentication failure: Password verification failed`);
    w.event(saslFailureText(w, tag, who), c, 'saslFailure');
  }
  const starttls = tls && service !== 'smtps';
  const ehlo = starttls ? 'ehlo=2 starttls=1' : 'ehlo=1';
  const good = starttls ? 3 : 1;
  const r = rng.float();
  if (r < 0.7) {
    w.disconnect(`${tag}: disconnect from ${who} ${ehlo} auth=0/${n} quit=1 commands=${good + 1}/${good + n + 1}`, c);
  } else if (r < 0.92) {
    w.event(`${tag}: lost connection after AUTH from ${who}`, c, 'authLost');
    w.disconnect(`${tag}: disconnect from ${who} ${ehlo} auth=0/${n} commands=${good}/${good + n}`, c);
  } else {
    w.event(`${tag}: too many errors after AUTH from ${who}`, c, 'authErrors');
    w.disconnect(`${tag}: disconnect from ${who} ${ehlo} auth=0/${n} commands=${good}/${good + n}`, c);
  }
}

function spamRcpt(w: World): string {
  return w.rng.chance(0.5) ? w.localRecipient() : `${w.rng.pick(LOCAL_USERS)}@${w.rng.pick(DOMAINS)}`;
}

/** helo= and from= are the client's words: sometimes an address in brackets. */
function spamHelo(w: World, c: Client): string {
  const rng = w.rng;
  if (rng.chance(0.05)) return `[${w.trapAddress()}]`;
  if (rng.chance(0.01)) return `unknown[${w.trapAddress()}]`;
  if (c.name !== 'unknown' && rng.chance(0.5)) return c.name;
  return rng.pick(BOT_HELOS);
}
function spamSender(w: World): string {
  const rng = w.rng;
  if (rng.chance(0.04)) return `${rng.pick(SPAM_SENDERS)}@[${w.trapAddress()}]`;
  return `${rng.pick(SPAM_SENDERS)}${rng.range(1, 999)}@${rng.pick(DOMAINS)}`;
}

/** smtpd rejects: relay attempts, unknown users, RBL hits, HELO checks (5xx); greylisting and DNS trouble (4xx). */
function smtpReject(w: World, a: Attacker, temporary: boolean): void {
  const rng = w.rng;
  const c = w.attackerClient(a);
  const port = rng.port();
  if (rng.chance(0.5)) {
    const ps = w.postscreenTag();
    w.emit(`${ps}: CONNECT from [${c.shown}]:${port} to [${c.address.includes(':') ? SERVER_V6 : SERVER_V4}]:25`);
    w.emit(`${ps}: PASS NEW [${c.shown}]:${port}`);
  }
  const service: Service = rng.chance(0.9) ? 'smtpd' : 'submission';
  const tag = w.smtpdTag(service);
  const who = w.namaddr(c, rng.chance(0.1));
  const helo = spamHelo(w, c);
  const from = spamSender(w);
  w.emit(`${tag}: connect from ${who}`);
  if (!temporary && rng.chance(0.05)) {
    // smtpd_delay_reject = no on this service: rejected at CONNECT
    w.event(`${tag}: NOQUEUE: reject: CONNECT from ${who}: 554 5.7.1 <${c.name}[${c.shown}]>: Client host rejected: Access denied; proto=SMTP`, c, 'reject');
    w.emit(`${tag}: disconnect from ${who} commands=0/0`);
    return;
  }
  if (rng.chance(0.05)) w.event(`${tag}: improper command pipelining after EHLO from ${who}: MAIL FROM:<${from}>\\r\\nRCPT TO:<${w.localRecipient()}>\\r\\n`, c, 'improperPipelining');
  const n = rng.chance(0.75) ? 1 : rng.range(2, 5);
  for (let i = 0; i < n; i++) {
    const rcpt = spamRcpt(w);
    const tail = `from=<${from}> to=<${rcpt}> proto=ESMTP helo=<${helo}>`;
    let reply: string;
    if (temporary) {
      const r = rng.float();
      reply =
        r < 0.6
          ? `450 4.2.0 <${rcpt}>: Recipient address rejected: Greylisted, see https://postgrey.schweikert.ch/help/${MY_DOMAIN}.html`
          : r < 0.85
            ? `450 4.7.1 Client host rejected: cannot find your hostname, [${c.shown}]`
            : r < 0.95
              ? `450 4.7.1 <${helo}>: Helo command rejected: Host not found`
              : `451 4.3.0 <${rcpt}>: Temporary lookup failure`;
      if (rng.chance(0.3)) {
        w.foreign(`${w.postgreyTag()}: action=greylist, reason=new, client_name=${c.name}, client_address=${c.shown}, sender=${from}, recipient=${rcpt}`);
      }
    } else {
      const r = rng.float();
      reply =
        r < 0.35
          ? `554 5.7.1 <${rcpt}>: Relay access denied`
          : r < 0.6
            ? `550 5.1.1 <${rcpt}>: Recipient address rejected: User unknown in virtual mailbox table`
            : r < 0.8
              ? `554 5.7.1 Service unavailable; Client host [${c.shown}] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/${c.shown}`
              : r < 0.88
                ? `504 5.5.2 <${helo}>: Helo command rejected: need fully-qualified hostname`
                : r < 0.94
                  ? `550 5.7.23 <${rcpt}>: Recipient address rejected: Message rejected due to: SPF fail - not authorized. Please see http://www.open-spf.org/Why;id=${from};ip=${c.shown};r=<UNKNOWN>`
                  : `553 5.7.1 <${from}>: Sender address rejected: not logged in`;
    }
    if (!temporary && rng.chance(0.03)) {
      // warn_if_reject: logged, not rejected: no event
      w.emit(`${tag}: NOQUEUE: reject_warning: RCPT from ${who}: ${reply}; ${tail}`);
    } else {
      // relay, sender and recipient-policy rejects are about the message (src/read/reject-classes.ts)
      const kind = temporary ? 'tempReject' : reply.includes(' 5.1.1 ') ? 'recipientReject' : /Relay access denied|Sender address rejected|Recipient address rejected/.test(reply) ? 'messageReject' : 'reject';
      w.event(`${tag}: NOQUEUE: reject: RCPT from ${who}: ${reply}; ${tail}`, c, kind);
    }
  }
  if (rng.chance(0.7)) {
    w.emit(`${tag}: disconnect from ${who} ehlo=1 mail=1 rcpt=0/${n} quit=1 commands=3/${n + 3}`);
  } else {
    w.event(`${tag}: lost connection after RCPT from ${who}`, c, 'lostConnection');
    w.emit(`${tag}: disconnect from ${who} ehlo=1 mail=1 rcpt=0/${n} commands=2/${n + 2}`);
  }
}

/** A message that got in and was refused by a milter at end of data. */
function milterReject(w: World, a: Attacker, t: number): void {
  const rng = w.rng;
  const c = w.attackerClient(a);
  const tag = w.smtpdTag('smtpd');
  const who = w.namaddr(c, false);
  const helo = spamHelo(w, c);
  const from = spamSender(w);
  const rcpt = w.localRecipient();
  w.emit(`${tag}: connect from ${who}`);
  const qid = w.queueId(t);
  w.event(`${tag}: ${qid}: client=${who}`, c, 'accepted');
  w.emit(`${w.cleanupTag()}: ${qid}: message-id=${w.messageId(t, rng.pick(DOMAINS))}`);
  const reason = rng.chance(0.5) ? '5.7.1 Spam message rejected' : '5.7.1 Rejected by DMARC policy for example.com';
  w.event(`${tag}: ${qid}: milter-reject: END-OF-MESSAGE from ${who}: ${reason}; from=<${from}> to=<${rcpt}> proto=ESMTP helo=<${helo}>`, c, 'messageReject');
  w.emit(`${tag}: disconnect from ${who} ehlo=1 mail=1 rcpt=1 data=0/1 quit=1 commands=4/5`);
}

type PostscreenTest =
  | 'pregreet' | 'dnsbl' | 'hangup' | 'pipelining' | 'nonSmtp' | 'bareNewline' | 'commandLimit' | 'psTemp' | 'tooMany' | 'busy' | 'denylisted';
const PS_PICK = new Weighted<PostscreenTest>([
  ['pregreet', 25], ['dnsbl', 30], ['hangup', 15], ['pipelining', 6], ['nonSmtp', 4], ['bareNewline', 3],
  ['commandLimit', 4], ['psTemp', 5], ['tooMany', 4], ['busy', 1], ['denylisted', 3],
]);

/** postscreen: bots caught before they reach smtpd. The client is [ADDR]:PORT. */
function postscreen(w: World, a: Attacker): void {
  const rng = w.rng;
  const c = w.attackerClient(a);
  const ps = w.postscreenTag();
  const port = rng.port();
  const at = `[${c.shown}]:${port}`;
  const helo = spamHelo(w, c);
  const psTail = () => `from=<${spamSender(w)}>, to=<${spamRcpt(w)}>, proto=ESMTP, helo=<${helo}>`;
  w.emit(`${ps}: CONNECT from ${at} to [${c.address.includes(':') ? SERVER_V6 : SERVER_V4}]:25`);
  const test = PS_PICK.pick(rng);
  switch (test) {
    case 'pregreet': {
      const greeting = rng.chance(0.1) ? `EHLO [${w.trapAddress()}]\\r\\n` : `EHLO ${rng.pick(BOT_HELOS)}\\r\\n`;
      w.event(`${ps}: PREGREET ${greeting.length - 2} after ${(rng.float() * 0.5).toFixed(2)} from ${at}: ${greeting}`, c, 'pregreet');
      if (rng.chance(0.4)) w.event(`${ps}: DNSBL rank ${rng.range(2, 8)} for ${at}`, c, 'dnsbl');
      if (rng.chance(0.3)) w.event(`${ps}: NOQUEUE: reject: RCPT from ${at}: 550 5.5.1 Protocol error; ${psTail()}`, c, 'reject');
      break;
    }
    case 'dnsbl':
      w.event(`${ps}: DNSBL rank ${rng.range(3, 12)} for ${at}`, c, 'dnsbl');
      if (rng.chance(0.7)) {
        w.event(`${ps}: NOQUEUE: reject: RCPT from ${at}: 550 5.7.1 Service unavailable; client [${c.shown}] blocked using zen.spamhaus.org; ${psTail()}`, c, 'reject');
      } else {
        w.event(`${ps}: HANGUP after ${(rng.float() * 5).toFixed(1)} from ${at} in tests after SMTP handshake`, c, 'hangup');
      }
      break;
    case 'hangup':
      w.event(`${ps}: HANGUP after ${(rng.float() * 3).toFixed(2)} from ${at} in tests before SMTP handshake`, c, 'hangup');
      break;
    case 'pipelining':
      w.event(`${ps}: COMMAND PIPELINING from ${at} after EHLO: MAIL FROM:<${spamSender(w)}>\\r\\n`, c, 'pipelining');
      w.event(`${ps}: NOQUEUE: reject: RCPT from ${at}: 550 5.5.1 Protocol error; ${psTail()}`, c, 'reject');
      break;
    case 'nonSmtp':
      w.event(`${ps}: NON-SMTP COMMAND from ${at} after CONNECT: GET / HTTP/1.1`, c, 'nonSmtp');
      break;
    case 'bareNewline':
      w.event(`${ps}: BARE NEWLINE from ${at} after ${rng.pick(['RCPT', 'DATA', 'EHLO'])}`, c, 'bareNewline');
      break;
    case 'commandLimit':
      w.event(`${ps}: COMMAND ${rng.pick(['TIME', 'COUNT', 'LENGTH'])} LIMIT from ${at} after ${rng.pick(['RCPT', 'DATA', 'EHLO'])}`, c, 'commandLimit');
      break;
    case 'psTemp':
      w.event(`${ps}: NOQUEUE: reject: RCPT from ${at}: 450 4.3.2 Service currently unavailable; ${psTail()}`, c, 'tempReject');
      break;
    case 'tooMany':
      w.event(`${ps}: NOQUEUE: reject: CONNECT from ${at}: too many connections`, c, 'rateLimit');
      return; // no DISCONNECT: the connection was never taken
    case 'busy':
      // the server is busy: not the client's fault
      w.emit(`${ps}: NOQUEUE: reject: CONNECT from ${at}: all server ports busy`);
      return;
    case 'denylisted':
      w.emit(`${ps}: DENYLISTED ${at}`);
      break;
  }
  w.emit(`${ps}: DISCONNECT ${at}`);
}

/** Connects and gives up at AUTH: an authLost event. */
function authLost(w: World, a: Attacker): void {
  const rng = w.rng;
  const c = w.attackerClient(a);
  const service = pickService(rng);
  const tag = w.smtpdTag(service);
  const who = w.namaddr(c, rng.chance(0.15));
  w.emit(`${tag}: connect from ${who}`);
  w.event(`${tag}: lost connection after AUTH from ${who}`, c, 'authLost');
  w.disconnect(`${tag}: disconnect from ${who} ehlo=1 auth=0/1 commands=1/2`, c);
}

/** Too many connections (or AUTH commands) too fast: anvil limits, a rateLimit event. */
function rateLimit(w: World, a: Attacker): void {
  const rng = w.rng;
  const c = w.attackerClient(a);
  const service = pickService(rng);
  const tag = w.smtpdTag(service);
  const who = w.namaddr(c, rng.chance(0.1));
  w.emit(`${tag}: connect from ${who}`);
  const r = rng.float();
  const what = r < 0.6 ? 'Connection rate' : r < 0.85 ? 'Connection concurrency' : 'AUTH command rate';
  const n = what === 'Connection concurrency' ? rng.range(11, 60) : rng.range(31, 400);
  w.event(`${tag}: warning: ${what} limit exceeded: ${n} from ${who} for service ${SERVICE_NAME[service]}`, c, 'rateLimit');
  w.emit(`${tag}: disconnect from ${who} commands=0/0`);
}

/** Scanners and broken clients: lines that name the client but are no event. */
function scannerNoise(w: World, a: Attacker): void {
  const rng = w.rng;
  const c = w.attackerClient(a);
  const r = rng.float();
  if (r < 0.35) {
    const tag = w.smtpdTag('smtps');
    const who = w.namaddr(c, false);
    w.emit(`${tag}: connect from ${who}`);
    w.emit(`${tag}: SSL_accept error from ${who}: -1`);
    w.emit(`${tag}: warning: TLS library problem: error:0A000102:SSL routines::unsupported protocol:../ssl/statem/statem_srvr.c:1685:`);
    w.event(`${tag}: lost connection after CONNECT from ${who}`, c, 'lostConnection');
    w.emit(`${tag}: disconnect from ${who} commands=0/0`);
  } else if (r < 0.6) {
    const tag = w.smtpdTag('smtpd');
    const who = w.namaddr(c, false);
    w.emit(`${tag}: connect from ${who}`);
    w.event(`${tag}: warning: non-SMTP command from ${who}: GET / HTTP/1.1`, c, 'nonSmtp');
    w.emit(`${tag}: disconnect from ${who} unknown=0/1 commands=0/1`);
  } else if (r < 0.85) {
    const service = pickService(rng);
    const tag = w.smtpdTag(service);
    const who = w.namaddr(c, false);
    w.emit(`${tag}: connect from ${who}`);
    w.event(`${tag}: lost connection after ${rng.pick(['CONNECT', 'EHLO', 'STARTTLS'])} from ${who}`, c, 'lostConnection');
    w.emit(`${tag}: disconnect from ${who} ehlo=1 commands=1`);
  } else {
    const service = pickService(rng);
    const tag = w.smtpdTag(service);
    const who = w.namaddr(c, false);
    w.emit(`${tag}: connect from ${who}`);
    w.event(`${tag}: timeout after AUTH from ${who}`, c, 'timeout');
    w.disconnect(`${tag}: disconnect from ${who} ehlo=1 auth=0/1 commands=1/2`, c);
  }
}

/** Lines that must give no event for the addresses they quote. */
function trap(w: World, a: Attacker): void {
  const rng = w.rng;
  const c = w.attackerClient(a);
  const r = rng.float();
  if (r < 0.3) {
    // no address for the client
    const tag = w.smtpdTag(pickService(rng));
    w.emit(`${tag}: connect from unknown[unknown]`);
    if (rng.chance(0.5)) {
      w.emit(`${tag}: warning: unknown[unknown]: SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username=${rng.pick(ATTACK_LOGINS)}`);
      w.emit(`${tag}: lost connection after AUTH from unknown[unknown]`);
    } else {
      w.emit(`${tag}: NOQUEUE: reject: RCPT from unknown[unknown]: 554 5.7.1 <${spamRcpt(w)}>: Relay access denied; from=<${rng.pick(SPAM_SENDERS)}@[${w.trapAddress()}]> to=<${spamRcpt(w)}> proto=ESMTP helo=<[${w.trapAddress()}]>`);
    }
    w.emit(`${tag}: disconnect from unknown[unknown] ehlo=1 auth=0/1 commands=1/2`);
  } else if (r < 0.5) {
    // the auth backend went away: the server's fault, not the client's (a real user's client, too)
    const user = w.user();
    const u = rng.pick(user.clients);
    const tag = w.smtpdTag('submission');
    const who = w.namaddr(u, false);
    w.emit(`${tag}: connect from ${who}`);
    w.emit(`${tag}: warning: SASL: Connect to private/auth failed: Connection refused`);
    w.emit(`${tag}: warning: ${who}: SASL ${rng.pick(['LOGIN', 'PLAIN'])} authentication failed: Connection lost to authentication server${rng.chance(0.5) ? `, sasl_username=${user.login}` : ''}`);
    w.disconnect(`${tag}: disconnect from ${who} ehlo=2 starttls=1 auth=0/1 quit=1 commands=4/5`, u);
  } else if (r < 0.65) {
    // other programs quoting Postfix text: the address in them is no client of smtpd
    const a2 = w.trapAddress();
    const quoted = `postfix/smtpd[${rng.range(1000, 9999)}]: warning: unknown[${a2}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username=${rng.pick(ATTACK_LOGINS)}`;
    const who = rng.float();
    if (who < 0.4) w.foreign(`root: ${quoted}`);
    else if (who < 0.7) w.foreign(`dovecot: auth: ${quoted}`);
    else w.foreign(`logcheck[${rng.range(1000, 99999)}]: ${quoted}`);
  } else if (r < 0.8) {
    // Dovecot's own auth failures (IMAP): not Postfix events
    w.foreign(`dovecot: auth: passwd-file(${rng.pick(ATTACK_LOGINS)},${c.shown}): unknown user`);
    w.foreign(`dovecot: imap-login: Disconnected: Connection closed (auth failed, 1 attempts in 2 secs): user=<${rng.pick(ATTACK_LOGINS)}>, method=PLAIN, rip=${c.shown}, lip=${c.address.includes(':') ? SERVER_V6 : SERVER_V4}, TLS, session=<${rng.chars(BASE64, 16)}>`);
  } else {
    // a real client whose line quotes other addresses: only the client counts
    const tag = w.smtpdTag('smtpd');
    const who = w.namaddr(c, false);
    const a2 = w.trapAddress();
    w.emit(`${tag}: connect from ${who}`);
    w.event(
      `${tag}: NOQUEUE: reject: MAIL from ${who}: 553 5.7.1 <x@[${a2}]>: Sender address rejected: not logged in; from=<x@[${a2}]> proto=ESMTP helo=<[${w.trapAddress()}]>`,
      c,
      'messageReject',
    );
    w.emit(`${tag}: disconnect from ${who} ehlo=1 mail=0/1 quit=1 commands=2/3`);
  }
}

const SASL_SESSIONS = new Weighted<(w: World, a: Attacker, t: number) => void>([
  [saslBrute, 85], [authLost, 6], [rateLimit, 4], [scannerNoise, 3], [trap, 2],
]);
const SPAM_SESSIONS = new Weighted<(w: World, a: Attacker, t: number) => void>([
  [(w, a) => smtpReject(w, a, false), 55], [(w, a) => smtpReject(w, a, true), 18], [milterReject, 8], [postscreen, 12], [trap, 5],
  [saslBrute, 2],
]);
const POSTSCREEN_SESSIONS = new Weighted<(w: World, a: Attacker, t: number) => void>([
  [postscreen, 90], [(w, a) => smtpReject(w, a, false), 5], [trap, 3], [rateLimit, 2],
]);
const SCANNER_SESSIONS = new Weighted<(w: World, a: Attacker, t: number) => void>([
  [scannerNoise, 50], [authLost, 20], [rateLimit, 12], [saslBrute, 10], [trap, 8],
]);
const BY_PROFILE: Readonly<Record<Profile, Weighted<(w: World, a: Attacker, t: number) => void>>> = {
  sasl: SASL_SESSIONS,
  spam: SPAM_SESSIONS,
  postscreen: POSTSCREEN_SESSIONS,
  scanner: SCANNER_SESSIONS,
};

// ---------------------------------------------------------------------------
// Timestamps

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const p2 = (n: number) => (n < 10 ? `0${n}` : String(n));

/** `Nov  2 09:05:07` (syslog) or `Nov 02 09:05:07` (Postfix maillog_file), UTC. */
function traditionalStamp(d: Date, zeroPad: boolean): string {
  const day = d.getUTCDate();
  const dd = day < 10 ? (zeroPad ? `0${day}` : ` ${day}`) : String(day);
  return `${MONTHS[d.getUTCMonth()]} ${dd} ${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}:${p2(d.getUTCSeconds())}`;
}

/**
 * `TIMESTAMP HOST ` for a time in microseconds since the epoch, in UTC. Caches the
 * date part per day and the whole prefix per second: consecutive lines share them.
 */
export class StampFormatter {
  private day = NaN;
  private dayText = '';
  private second = NaN;
  private prefix = '';
  private readonly suffix: string;
  constructor(
    private readonly style: LogFormat = 'rfc3339',
    host = 'mx',
  ) {
    this.suffix = style === 'rfc3339' ? `+00:00 ${host} ` : ` ${host} `;
  }

  format(micros: number): string {
    const second = Math.floor(micros / 1_000_000);
    if (second !== this.second) {
      this.second = second;
      const day = Math.floor(second / 86_400);
      if (day !== this.day) {
        this.day = day;
        const d = new Date(day * DAY_MS);
        this.dayText = this.style === 'rfc3339' ? `${d.toISOString().slice(0, 10)}T` : traditionalStamp(d, this.style === 'maillog').slice(0, 7);
      }
      const s = second - day * 86_400;
      const clock = `${TWO_DIGITS[Math.floor(s / 3600)]}:${TWO_DIGITS[Math.floor(s / 60) % 60]}:${TWO_DIGITS[s % 60]}`;
      this.prefix = this.style === 'rfc3339' ? `${this.dayText}${clock}.` : `${this.dayText}${clock}${this.suffix}`;
    }
    if (this.style !== 'rfc3339') return this.prefix;
    const us = micros - second * 1_000_000;
    return `${this.prefix}${SIX_DIGITS_PAD.slice(0, 6 - digits(us))}${us}${this.suffix}`;
  }
}

const TWO_DIGITS = Array.from({ length: 60 }, (_, i) => p2(i));
const SIX_DIGITS_PAD = '000000';
const digits = (n: number): number => (n < 10 ? 1 : n < 100 ? 2 : n < 1000 ? 3 : n < 10_000 ? 4 : n < 100_000 ? 5 : 6);

// ---------------------------------------------------------------------------
// The generator

/** In-session spacing of lines: at most this many microseconds apart (sessions are short). */
const MAX_STEP_US = 150_000;

function validate(options: GenerateOptions): { startUs: number; spanUs: number; share: number } {
  const { lines, seed, start } = options;
  if (!Number.isInteger(lines) || lines < 0) throw new RangeError(`lines must be a whole number >= 0, got ${lines}`);
  if (!Number.isFinite(seed)) throw new RangeError(`seed must be a finite number, got ${seed}`);
  const startMs = start.getTime();
  if (Number.isNaN(startMs)) throw new RangeError('start is not a valid date');
  const endMs = options.end === undefined ? startMs + 7 * DAY_MS : options.end.getTime();
  if (Number.isNaN(endMs) || endMs < startMs) throw new RangeError('end must be a valid date, not before start');
  const share = options.attackShare ?? DEFAULT_ATTACK_SHARE;
  if (!(share >= 0 && share <= 1)) throw new RangeError(`attackShare must lie in [0, 1], got ${share}`);
  return { startUs: startMs * 1000, spanUs: (endMs - startMs) * 1000, share };
}

/**
 * Yields `options.lines` log lines (no newline), timestamps non-decreasing from
 * `start` towards `end`, and counts in `truth` every event the parser must find in
 * each line, as that line is handed out.
 */
export function* generateLines(options: GenerateOptions, truth: GroundTruth): Generator<string> {
  const { startUs, spanUs, share } = validate(options);
  const n = options.lines;
  const format = options.format ?? 'rfc3339';
  const stamps = new StampFormatter(format, options.host ?? 'mx');
  const world = new World(options.seed, options.attackers ?? n / 250, options.ipv6Attackers ?? 0);
  const rng = world.rng;
  const postfixOnly = format === 'maillog';
  let emitted = 0;
  let attackLines = 0;
  while (emitted < n) {
    world.tick();
    const sessionStart = startUs + Math.floor((spanUs * emitted) / n);
    const attack = share >= 1 || (share > 0 && attackLines + rng.float() * 6 - 3 < share * emitted);
    world.out = [];
    if (attack) {
      const a = world.attacker();
      BY_PROFILE[a.profile].pick(rng)(world, a, sessionStart);
    } else {
      ORDINARY.pick(rng)(world, sessionStart);
    }
    const session = postfixOnly ? world.out.filter((line) => !line.foreign) : world.out;
    const k = Math.min(session.length, n - emitted); // the last session may be cut short
    if (k === 0) continue;
    // The session owns the time slot [sessionStart, sessionStart + span * k / n); it starts
    // somewhere in the room that its k lines (`step` apart at most) leave, and line j falls
    // in [j * step, (j + 0.9) * step) after that: times never go backwards.
    const step = Math.min(spanUs / n, MAX_STEP_US);
    const begin = sessionStart + Math.floor(rng.float() * ((spanUs * k) / n - step * k));
    for (let j = 0; j < k; j++) {
      const line = session[j]!;
      const t = begin + Math.floor(step * (j + rng.float() * 0.9));
      if (line.kind !== null) addEvent(truth, line.address!, line.kind, line.count);
      emitted++;
      if (attack) attackLines++;
      yield stamps.format(t) + line.text;
    }
  }
}

const WRITE_BYTES = 4 << 20;

/**
 * Writes the lines to `path` and returns the ground truth. Lines are copied into
 * 4 MiB buffers (they are ASCII); a full buffer is written while the next one fills,
 * so millions of lines take seconds.
 */
export async function writeLog(path: string, options: GenerateOptions): Promise<GroundTruth> {
  const truth: GroundTruth = {};
  const file = await open(path, 'w');
  let writing: Promise<unknown> = Promise.resolve();
  try {
    let buffers = [Buffer.allocUnsafe(WRITE_BYTES), Buffer.allocUnsafe(WRITE_BYTES)] as const;
    let buffer = buffers[0];
    let used = 0;
    const flush = async () => {
      await writing; // the other buffer is free again
      writing = file.write(buffer, 0, used);
      buffers = [buffers[1], buffers[0]];
      buffer = buffers[0];
      used = 0;
    };
    for (const line of generateLines(options, truth)) {
      if (used + line.length + 1 > buffer.length) {
        await flush();
        if (line.length + 1 > buffer.length) {
          buffers = [Buffer.allocUnsafe(line.length + 1), buffers[1]];
          buffer = buffers[0];
        }
      }
      used += buffer.write(line, used, 'latin1');
      buffer[used++] = 0x0a;
    }
    if (used > 0) await flush();
    await writing;
  } finally {
    await writing.catch(() => undefined);
    await file.close();
  }
  return truth;
}

export interface FloodOptions {
  /** Distinct flooding clients. */
  addresses: number;
  /** ipv4: distinct IPv4 addresses all over the unicast space; ipv6: each in a /64 of its own. */
  family: 'ipv4' | 'ipv6';
  seed: number;
  start: Date;
  end: Date;
}

/** The real attackers a flood hides: they must still be found and blocked. */
export const FLOOD_ATTACKERS = ['203.0.113.9', '203.0.113.10', '198.51.100.77', '2001:db8:77:1::9'] as const;

/**
 * An address flood: `addresses` distinct clients with one or two client rejects each
 * (client rejects, logged as `unknown[ADDR]`), and between them the few real
 * attackers of FLOOD_ATTACKERS with 30 SASL failures each. Returns the ground truth.
 */
export async function writeFlood(path: string, options: FloodOptions): Promise<GroundTruth> {
  const rng = new Random(mixSeed(options.seed, 3));
  const truth: GroundTruth = {};
  const seen = new Set<number | string>();
  const startMs = options.start.getTime();
  const spanMs = options.end.getTime() - startMs;
  const total = Math.round(options.addresses * 1.5);
  const stamps = new StampFormatter('rfc3339', 'mx');
  const attackEvery = Math.max(1, Math.floor(total / (30 * FLOOD_ATTACKERS.length)));
  const file = await open(path, 'w');
  try {
    let text = '';
    let line = 0;
    const put = (body: string) => {
      const t = (startMs + Math.floor((spanMs * line) / total)) * 1000 + rng.int(1000);
      text += `${stamps.format(t)}${body}\n`;
      line++;
    };
    const address = (): string => {
      for (;;) {
        if (options.family === 'ipv4') {
          const first = rng.range(1, 223);
          if (first === 10 || first === 127 || first === 100) continue;
          const n = first * 2 ** 24 + rng.int(2 ** 24);
          if (seen.has(n)) continue;
          seen.add(n);
          return `${first}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
        }
        const g2 = 0x3000 + rng.int(0xc000);
        const g3 = rng.int(0x10000);
        const key = g2 * 0x10000 + g3;
        if (seen.has(key)) continue;
        seen.add(key);
        return formatIpv6([0x2001, 0xdb8, g2, g3, rng.int(0x10000), rng.int(0x10000), rng.int(0x10000), rng.range(1, 0xffff)]);
      }
    };
    for (let i = 0; i < options.addresses; i++) {
      const a = address();
      const n = rng.chance(0.5) ? 1 : 2;
      for (let k = 0; k < n; k++) {
        put(`postfix/smtpd[${rng.range(1000, 60000)}]: NOQUEUE: reject: RCPT from unknown[${a}]: 554 5.7.1 <unknown[${a}]>: Client host rejected: Access denied; from=<spam@example.net> to=<info@example.org> proto=ESMTP helo=<${rng.chars(ALNUM, 8)}>`);
        addEvent(truth, a, 'reject');
        if (line % attackEvery === 0) {
          const attacker = FLOOD_ATTACKERS[(line / attackEvery) % FLOOD_ATTACKERS.length]!;
          put(`postfix/submission/smtpd[${rng.range(1000, 60000)}]: warning: unknown[${attacker}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username=${rng.pick(ATTACK_LOGINS)}`);
          addEvent(truth, attacker, 'saslFailure');
        }
      }
      if (text.length > 1 << 22) {
        await file.write(text, null, 'latin1');
        text = '';
      }
    }
    await file.write(text, null, 'latin1');
  } finally {
    await file.close();
  }
  return truth;
}

// ---------------------------------------------------------------------------
// CLI

const USAGE = `usage: node dist-bench/bench/generate.js --lines N --out FILE [--seed S] [--truth FILE.json]
       [--format rfc3339|traditional|maillog] [--start ISO] [--end ISO] [--attack-share 0.1] [--host mx]`;

/** Default --start: a fixed instant (output must not depend on the clock); with the default 7 days it ends 2026-11-23. */
export const DEFAULT_START = '2026-11-16T00:00:00Z';

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      lines: { type: 'string' },
      seed: { type: 'string', default: '1' },
      out: { type: 'string' },
      truth: { type: 'string' },
      format: { type: 'string', default: 'rfc3339' },
      start: { type: 'string', default: DEFAULT_START },
      end: { type: 'string' },
      'attack-share': { type: 'string' },
      host: { type: 'string', default: 'mx' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const number = (name: string, text: string | undefined): number => {
    const n = Number(text);
    if (text === undefined || text.trim() === '' || !Number.isFinite(n)) throw new Error(`--${name} needs a number, got ${String(text)}\n${USAGE}`);
    return n;
  };
  const date = (name: string, text: string): Date => {
    const d = new Date(text);
    if (Number.isNaN(d.getTime())) throw new Error(`--${name} needs an ISO 8601 date, got ${text}`);
    return d;
  };
  if (values.out === undefined) throw new Error(`--out is required\n${USAGE}`);
  const format = values.format;
  if (format !== 'rfc3339' && format !== 'traditional' && format !== 'maillog') {
    throw new Error(`--format must be rfc3339, traditional or maillog, got ${format}`);
  }
  const options: GenerateOptions = {
    lines: number('lines', values.lines),
    seed: number('seed', values.seed),
    start: date('start', values.start),
    format,
    host: values.host,
  };
  if (values.end !== undefined) options.end = date('end', values.end);
  if (values['attack-share'] !== undefined) options.attackShare = number('attack-share', values['attack-share']);

  const started = performance.now();
  const truth = await writeLog(values.out, options);
  const seconds = (performance.now() - started) / 1000;
  let events = 0;
  for (const counts of Object.values(truth)) for (const n of Object.values(counts)) events += n;
  if (values.truth !== undefined) await writeFile(values.truth, `${JSON.stringify(sortTruth(truth), null, 2)}\n`);
  process.stderr.write(
    `wrote ${options.lines} lines to ${values.out} in ${seconds.toFixed(2)} s (${Math.round(options.lines / seconds)} lines/s); ` +
      `${events} events from ${Object.keys(truth).length} addresses${values.truth === undefined ? '' : ` -> ${values.truth}`}\n`,
  );
}

function isMain(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(script)).href;
  } catch {
    return false;
  }
}

if (isMain()) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`generate: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  });
}
