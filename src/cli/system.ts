/**
 * What the host says about itself (edge): Postfix settings through postconf, and the
 * addresses of this machine. Everything here may be missing; callers get a fallback
 * and a warning, never a crash.
 */
import { networkInterfaces } from 'node:os';
import { execFile } from 'node:child_process';
import { isValidRange } from '../address.js';
import type { NamedRange } from '../decide/policy.js';
import { MAP_TYPES, type MapType } from '../write/access-map.js';
import type { Warn } from '../read/sources.js';

const TIMEOUT_MS = 60_000;

export interface QueryResult {
  ok: boolean;
  /** stdout (trimmed) when ok, else what went wrong (stderr, or why it did not start). */
  output: string;
}

/**
 * A read-only command (postconf, iptables -L, journalctl -k): node's execFile, not execa,
 * whose loading alone costs more than such a query on every cron run.
 */
export function query(command: string, args: readonly string[]): Promise<QueryResult> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: TIMEOUT_MS, maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      resolve(error === null ? { ok: true, output: stdout.trim() } : { ok: false, output: (stderr.trim() || error.message).trim() });
    });
  });
}

/** postconf [-c DIR] ARGS: values from stdout only (its warnings go to stderr). */
export function postconf(args: readonly string[], configDir: string | null): Promise<QueryResult> {
  return query('postconf', [...(configDir === null ? [] : ['-c', configDir]), ...args]);
}

/** `postconf -h default_database_type`, or hash where Postfix is not installed. */
export async function findDefaultMapType(configDir: string | null): Promise<MapType> {
  const { ok, output } = await postconf(['-h', 'default_database_type'], configDir);
  return ok && (MAP_TYPES as readonly string[]).includes(output) ? (output as MapType) : 'hash';
}

/**
 * Postfix's mynetworks as ranges. Entries that are not addresses (a hostname, a
 * `type:table` or `/file` lookup, a negation) cannot be checked here: warned about.
 */
export async function findMynetworks(configDir: string | null, warn: Warn): Promise<NamedRange[]> {
  const { ok, output } = await postconf(['-h', 'mynetworks'], configDir);
  if (!ok) {
    warn(`cannot ask Postfix for mynetworks (postconf: ${output}); only loopback, this host and --allow are exempt`);
    return [];
  }
  return parseMynetworks(output, warn);
}

export function parseMynetworks(value: string, warn: Warn): NamedRange[] {
  const ranges: NamedRange[] = [];
  for (const entry of value.split(/[\s,]+/).filter((e) => e !== '')) {
    const cidr = entry.replace(/^\[([^\]]+)\]/, '$1'); // [::1]/128 -> ::1/128
    if (isValidRange(cidr)) ranges.push({ cidr, source: 'mynetworks' });
    else warn(`mynetworks entry ${entry} is not an address or range; smtpguard cannot exempt what it names (add --allow for it)`);
  }
  return ranges;
}

/** Every address of this host's interfaces, each as a host range. */
export function findOwnAddresses(): NamedRange[] {
  const ranges: NamedRange[] = [];
  for (const addresses of Object.values(networkInterfaces())) {
    for (const a of addresses ?? []) {
      const address = a.address.replace(/%.*$/, '');
      if (isValidRange(address)) ranges.push({ cidr: address, source: 'this host' });
    }
  }
  return ranges;
}

export const LOOPBACK: readonly NamedRange[] = [
  { cidr: '127.0.0.0/8', source: 'loopback' },
  { cidr: '::1/128', source: 'loopback' },
];

/** Everything that is never blocked: loopback, this host, mynetworks, --allow. */
export async function findNeverBlock(allow: readonly string[], postfixConfigDir: string | null, warn: Warn): Promise<NamedRange[]> {
  return [
    ...LOOPBACK,
    ...findOwnAddresses(),
    ...(await findMynetworks(postfixConfigDir, warn)),
    ...allow.map((cidr) => ({ cidr, source: 'allow' })),
  ];
}
