/** Ordinary traffic: no events, except successful SASL logins (and greylisted senders). */
import type { Client, User } from './addresses.js';
import { Weighted } from './random.js';
import { ALNUM, BASE64, DOMAINS, HEX, LOCAL_USERS, MY_DOMAIN, MY_HOSTNAME, SERVER_V4, SERVER_V6, SPAM_SENDERS, TLS_IN, TLS_OUT } from './vocabulary.js';
import { isoCompact, type Builder, type Service, type World } from './world.js';

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

export const ORDINARY = new Weighted<Builder>([
  [inbound, 52],
  [submission, 14],
  [userTypo, 0.25],
  [imap, 14],
  [localMail, 5],
  [anvil, 3],
  [deferred, 3],
]);
