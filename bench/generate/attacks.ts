/** Attacks: the sessions of each attacker profile (SASL brute force, spam, postscreen, scanners) and the traps. */
import type { Attacker, Client, Profile } from './addresses.js';
import { Weighted, type Random } from './random.js';
import { ATTACK_LOGINS, BASE64, BOT_HELOS, DOMAINS, LOCAL_USERS, MY_DOMAIN, SERVER_V4, SERVER_V6, SPAM_SENDERS, TLS_IN } from './vocabulary.js';
import { SERVICE_NAME, type Service, type World } from './world.js';

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
export const BY_PROFILE: Readonly<Record<Profile, Weighted<(w: World, a: Attacker, t: number) => void>>> = {
  sasl: SASL_SESSIONS,
  spam: SPAM_SESSIONS,
  postscreen: POSTSCREEN_SESSIONS,
  scanner: SCANNER_SESSIONS,
};
