/** An address flood: many distinct clients with a reject or two each, hiding a few real attackers. */
import { open } from 'node:fs/promises';
import { formatIpv6 } from './addresses.js';
import { mixSeed, Random } from './random.js';
import { StampFormatter } from './timestamps.js';
import { addEvent, type GroundTruth } from './truth.js';
import { ALNUM, ATTACK_LOGINS } from './vocabulary.js';

export interface FloodOptions {
  /** Distinct flooding clients. */
  addresses: number;
  /** ipv4: distinct IPv4 addresses all over the unicast space; ipv6: each in a /64 of its own; ipv6-one64: all in one /64 (a host that rotates its address). */
  family: 'ipv4' | 'ipv6' | 'ipv6-one64';
  /** Rejects per flooding client: 0 (the default) for one or two at random; 6 makes each an offender (THRESHOLD6 is 5). */
  rejectsEach?: number;
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
  const each = options.rejectsEach ?? 0;
  const total = each > 0 ? options.addresses * each : Math.round(options.addresses * 1.5);
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
        if (options.family === 'ipv6-one64') {
          const low = [rng.int(0x10000), rng.int(0x10000), rng.int(0x10000), rng.range(1, 0xffff)];
          const key = `${low[0]}:${low[1]}:${low[2]}:${low[3]}`;
          if (seen.has(key)) continue;
          seen.add(key);
          return formatIpv6([0x2001, 0xdb8, 0x6464, 0x1, low[0]!, low[1]!, low[2]!, low[3]!]);
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
      const n = each > 0 ? each : rng.chance(0.5) ? 1 : 2;
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
