/** The simulated server: its processes, the population it talks to, and the pieces every session's lines are made of. */
import type { EventKind } from '../../src/read/kinds.js';
import type { Attacker, Client, User } from './addresses.js';
import { PidPool, Pids, type Line } from './line.js';
import { buildAttackers, buildServers, buildUsers, shuffle } from './population.js';
import { mixSeed, Random, Weighted } from './random.js';
import { traditionalStamp } from './timestamps.js';
import { BASE64, HEX, LOCAL_USERS, LOWER_HEX, MY_DOMAIN, QUEUE_ID_ALPHABET } from './vocabulary.js';

export type Service = 'smtpd' | 'submission' | 'smtps';
const SERVICE_TAG: Readonly<Record<Service, string>> = {
  smtpd: 'postfix/smtpd',
  submission: 'postfix/submission/smtpd',
  smtps: 'postfix/smtps/smtpd',
};
export const SERVICE_NAME: Readonly<Record<Service, string>> = { smtpd: 'smtp', submission: 'submission', smtps: 'smtps' };

export type Builder = (world: World, t: number) => void;

export class World {
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

export function isoCompact(t: number): string {
  return new Date(Math.floor(t / 1000)).toISOString().replace(/[-:T]/g, '').slice(0, 14);
}
