/** The words of the simulated server: its own names and addresses, domains, users, logins, alphabets, TLS lines. */

/** The server's own address (never a client here). */
export const SERVER_V4 = '192.0.2.25';
export const SERVER_V6 = '2001:db8::25';
export const MY_DOMAIN = 'example.org';
export const MY_HOSTNAME = 'mx.example.org';
/** Host numbers never given to generated clients in the documentation /24s (the server, network and broadcast). */
export const RESERVED_HOSTS = new Set([0, 1, 25, 255]);

export const DOMAINS = [
  'example.com', 'example.net', 'mail.example', 'news.example', 'shop.example', 'bank.example',
  'lists.example', 'cloud.example', 'travel.example', 'social.example', 'forum.example', 'invoice.example',
];
export const SERVER_PREFIXES = ['mail', 'smtp', 'mx', 'out', 'mta', 'o', 'bounce', 'relay', 'mail-out', 'smtp-out'];
export const LOCAL_USERS = [
  'alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan', 'judy', 'mallory', 'niaj',
  'olivia', 'peggy', 'rupert', 'sybil', 'trent', 'victor', 'walter', 'info', 'sales', 'support',
];
export const ATTACK_LOGINS = [
  'admin', 'info', 'test', 'user', 'sales', 'office', 'contact', 'support', 'postmaster', 'webmaster',
  'noreply', 'marketing', 'root', 'guest', 'scanner', 'backup', 'mail', 'john', 'test1', 'abc', 'a',
  'info@example.org', 'admin@example.org', 'sales@example.org', 'alice@example.org', 'hr@example.org',
  'accounting@example.org', 'newsletter@example.org', 'office@example.org', 'bob@example.org', 'ceo@example.org',
  'info@mx.example.org', 'test@example.org', 'postmaster@example.org', 'user1@example.org', 'admin@mx.example.org',
];
export const BOT_HELOS = [
  'User', 'ylmf-pc', 'WIN-CLJ1B0GQ6JP', 'localhost', 'example.com', 'win7', 'mail.example.org', 'ADMIN', 'desktop',
];
export const SPAM_SENDERS = [
  'info', 'news', 'promo', 'offer', 'support', 'billing', 'security', 'noreply', 'admin', 'service',
];
export const HEX = '0123456789ABCDEF';
export const LOWER_HEX = '0123456789abcdef';
export const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
export const BASE64 = `${ALNUM}+/`;
/** Postfix long queue IDs: base 52 (seconds, microseconds), 'z', base 51 (inode). */
export const QUEUE_ID_ALPHABET = '0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz';

export const TLS_IN = [
  'TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256',
  'TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256',
  'TLSv1.3 with cipher TLS_AES_128_GCM_SHA256 (128/128 bits) key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256',
  'TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)',
  'TLSv1.2 with cipher ECDHE-RSA-AES128-GCM-SHA256 (128/128 bits)',
];
export const TLS_OUT = [
  'TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature ECDSA (P-256) server-digest SHA256',
  'TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256',
  'TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)',
];
