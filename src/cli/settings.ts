/**
 * Settings: every one has a flag, a config-file key and an environment variable.
 * Precedence: flag > environment (SMTPGUARD_KEY) > file (/etc/smtpguard/smtpguard.conf) > default;
 * ALLOW alone is joined from all three (an allowlist only grows).
 * The config file is KEY=value lines with # comments, like /etc/default/ufw (grammar: config-file.ts).
 * Pure: the caller reads the file and the environment and passes them in.
 */
import { parseAdminRange, rangeWord } from '../address.js';
import { controlCharacterProblem } from '../text.js';
import { formatWindow, OFF_WORDS, parseDuration, parseWindow } from '../duration.js';
import { parseConfigText, renderConfigLine, splitWords, type ConfigEntry } from './config-file.js';
import { ExitCode, SmtpguardError } from '../errors.js';
import { DEFAULT_COUNTED_KINDS, EVENT_KINDS, isEventKind, type EventKind } from '../read/kinds.js';
import { MAP_TYPES, rejectTextProblem, type MapType } from '../write/access-map.js';
import { chainNameProblem } from '../write/firewall/ufw.js';
import { BACKENDS, FIREWALL_MODES } from '../write/firewall/registry.js';

export const DEFAULT_CONFIG_FILE = '/etc/smtpguard/smtpguard.conf';
export const DEFAULT_LOGS: readonly string[] = ['/var/log/mail.log*', '/var/log/mail.warn*'];

export interface Settings {
  log: string[];
  window: number;
  kinds: EventKind[];
  threshold: number;
  threshold6: number;
  ipv6Prefix: number;
  /** IPv6 networks above the prefix (48) are blocked whole when `ipv6SubnetPrefixes` of their prefixes offend. */
  ipv6Subnet: number;
  ipv6SubnetPrefixes: number;
  subnetHosts: number;
  allow: string[];
  maxBlocks: number;
  /** Addresses where someone logged in that a range blocked whole keeps as exceptions; more: the range is not blocked whole. */
  maxExceptions: number;
  ufwRules: string;
  ufw6Rules: string;
  ufwChain: string;
  ufw6Chain: string;
  /** How blocks reach the kernel: a backend of write/firewall/registry.ts (rules, ipset, ...). */
  firewall: string;
  /** The TCP ports a block closes, where the backend renders them itself (nftables). */
  smtpPorts: number[];
  accessMap: string;
  /** null: ask `postconf -h default_database_type` (hash when there is no postconf). */
  mapType: MapType | null;
  rejectText: string;
  postfixConfigDir: string | null;
  lockFile: string;
  stateDir: string;
  reload: boolean;
  state: boolean;
  /** Read Postfix's journal: yes, no, or auto (when no mail log exists on the default paths). */
  journal: 'yes' | 'no' | 'auto';
  /** journalctl --directory: a journal directory instead of the system journal. */
  journalDirectory: string | null;
  /** The systemd unit(s) Postfix runs as (journalctl --unit pattern). */
  journalUnit: string;
  /** A run that takes longer stops (ms; Infinity: never). */
  timeout: number;
  /** `follow`: the shortest time between two applies that reload something (postmap + postfix reload; ufw reload with the rules backend). */
  reloadInterval: number;
  /** `follow`: how often the fleet's decisions are pulled from CrowdSec's Local API. */
  pullInterval: number;
  /** SASL usernames that do not exist here: one failure naming one makes the client an offender. */
  trapUsers: string[];
  /** Link-local clients (169.254.0.0/16, fe80::/10) may be blocked: off by default, they are neighbours on the link. */
  blockLinkLocal: boolean;
  /** After ufw reloads, close the open SMTP sessions of new blocks (ss -K). */
  cutSessions: boolean;
  /** Ban times (bans.ts), ms; Infinity: forever. */
  banTime: number;
  banFactor: number;
  banTimeMax: number;
  recidiveWindow: number;
  /** Addresses listed one by one in a window; past it, those farthest from their threshold are added up (count/summary.ts summariseBounded). */
  maxTracked: number;
  /** CrowdSec Local API (several servers, one memory): its URL, or null. */
  crowdsecUrl: string | null;
  /** Push: the machine id and the file with its password. */
  crowdsecMachine: string | null;
  crowdsecPasswordFile: string | null;
  /** Pull: the file with the bouncer key. */
  crowdsecBouncerKeyFile: string | null;
  /** Pulled decisions taken: scenarios starting with one of these, or one of the origins. */
  crowdsecScenarios: string[];
  crowdsecOrigins: string[];
  /** The widest pulled range taken (prefix length): IPv4, IPv6. A wider one is refused and reported. */
  crowdsecWidest: number;
  crowdsecWidest6: number;
  /** node_exporter's textfile collector: the metrics of each run, written here (null: none). */
  metricsFile: string | null;
}

type Key = keyof Settings;

interface Definition<K extends Key> {
  key: K;
  /** Without the leading dashes; `reload` is `--reload` / `--no-reload`. */
  flag: string;
  arg: string | null;
  description: string;
  default: Settings[K];
  /** Text as given on the command line, in the environment or in the file -> value; throws a message. */
  parse: (text: string) => Settings[K];
  /** Back to the text form, for `smtpguard config`. */
  show: (value: Settings[K]) => string;
}

const def = <K extends Key>(d: Definition<K>): Definition<K> => d;

const words = (text: string): string[] => text.split(/[\s,]+/).filter((w) => w !== '');
const showWords = (list: readonly string[]): string => list.join(' ');

function wholeNumber(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (text: string): number => {
    if (!/^\d+$/.test(text.trim()) || Number(text) < min || Number(text) > max) {
      throw new Error(`expected a whole number from ${min}${max === Number.MAX_SAFE_INTEGER ? ' up' : ` to ${max}`}`);
    }
    return Number(text);
  };
}

function path(text: string): string {
  if (text.trim() === '' || text.includes('\n')) throw new Error('expected a path');
  return text.trim();
}

function yesNo(text: string): boolean {
  const value = text.trim().toLowerCase();
  if (['yes', 'true', '1', 'on'].includes(value)) return true;
  if (['no', 'false', '0', 'off'].includes(value)) return false;
  throw new Error('expected yes or no');
}

function journalMode(text: string): 'yes' | 'no' | 'auto' {
  const value = text.trim().toLowerCase();
  if (value === 'auto') return 'auto';
  return yesNo(value) ? 'yes' : 'no';
}

function kinds(text: string): EventKind[] {
  const list = words(text);
  for (const kind of list) if (!isEventKind(kind)) throw new Error(`unknown kind "${kind}" (kinds: ${EVENT_KINDS.join(', ')})`);
  if (list.length === 0) throw new Error('name at least one kind');
  return [...new Set(list)] as EventKind[]; // a kind named twice counts once
}

/** ALLOW: each word through the one reader of what an admin types (address.ts parseAdminRange). */
function cidrs(text: string): string[] {
  return words(text).map((word) => {
    const read = parseAdminRange(word);
    if ('problem' in read) throw new Error(read.problem);
    return rangeWord(read.cidr);
  });
}

const banLength = (text: string): number => parseDuration(text, OFF_WORDS.ban);

function factor(text: string): number {
  const value = text.trim();
  if (!/^\d+(?:\.\d+)?$/.test(value) || Number(value) < 1 || Number(value) > 100) throw new Error('expected a number from 1 to 100, e.g. 2 or 1.5');
  return Number(value);
}

const showLength = (v: number): string => (v === Infinity ? 'forever' : formatWindow(v));

function usernames(text: string): string[] {
  const list = words(text);
  for (const name of list) if (name.length > 128) throw new Error(`"${name.slice(0, 20)}..." is longer than 128 characters`);
  return list;
}

const timeLimit = (text: string): number => parseDuration(text, OFF_WORDS.timeout);

function valid(problem: (text: string) => string | null) {
  return (text: string): string => {
    const message = problem(text);
    if (message !== null) throw new Error(message);
    return text;
  };
}

export const DEFINITIONS = [
  def({ key: 'log', flag: 'log', arg: '<path-or-glob>', description: 'mail log to read, repeatable; - reads stdin', default: [...DEFAULT_LOGS], parse: (t) => t.split(/\s+/).filter((w) => w !== ''), show: showWords }),
  def({ key: 'window', flag: 'window', arg: '<duration|all>', description: 'count events in this window ending at --now (15m, 24h, 7d, all)', default: 24 * 3600e3, parse: parseWindow, show: formatWindow }),
  def({ key: 'kinds', flag: 'kinds', arg: '<list>', description: 'event kinds that count toward a client\'s total', default: [...DEFAULT_COUNTED_KINDS], parse: kinds, show: (v) => v.join(',') }),
  def({ key: 'threshold', flag: 'threshold', arg: '<n>', description: 'counted events in the window that make an IPv4 address an offender', default: 10, parse: wholeNumber(1), show: String }),
  def({ key: 'threshold6', flag: 'threshold6', arg: '<n>', description: 'counted events in the window that make an IPv6 prefix an offender', default: 5, parse: wholeNumber(1), show: String }),
  def({ key: 'ipv6Prefix', flag: 'ipv6-prefix', arg: '<len>', description: 'IPv6 addresses are counted and blocked per prefix of this length', default: 64, parse: wholeNumber(16, 128), show: String }),
  def({ key: 'ipv6Subnet', flag: 'ipv6-subnet', arg: '<len>', description: 'IPv6 network above the prefix that is blocked whole when enough of its prefixes offend', default: 48, parse: wholeNumber(16, 127), show: String }),
  def({ key: 'ipv6SubnetPrefixes', flag: 'ipv6-subnet-prefixes', arg: '<n>', description: 'this many offending prefixes in one --ipv6-subnet network, or this many times threshold6 events spread over it, block the network (0: never)', default: 5, parse: wholeNumber(0), show: String }),
  def({ key: 'subnetHosts', flag: 'subnet-hosts', arg: '<n>', description: 'this many IPv4 offenders in one /24 block the /24', default: 5, parse: wholeNumber(2, 256), show: String }),
  def({ key: 'allow', flag: 'allow', arg: '<cidr>', description: 'never block this address or range, repeatable', default: [], parse: cidrs, show: showWords }),
  def({ key: 'maxBlocks', flag: 'max-blocks', arg: '<n>', description: 'keep at most this many blocks, the worst offenders (0: no limit)', default: 10000, parse: wholeNumber(0), show: String }),
  def({ key: 'maxExceptions', flag: 'max-exceptions', arg: '<n>', description: 'a /24, IPv6 prefix or /48 to block whole keeps up to this many addresses where someone logged in as exceptions; with more it is a network of real users: only its offenders are blocked, at most 1% of --max-blocks', default: 16, parse: wholeNumber(0, 1000), show: String }),
  def({ key: 'ufwRules', flag: 'ufw-rules', arg: '<file>', description: 'ufw rules file for IPv4 blocks', default: '/etc/ufw/before.rules', parse: path, show: String }),
  def({ key: 'ufw6Rules', flag: 'ufw6-rules', arg: '<file>', description: 'ufw rules file for IPv6 blocks', default: '/etc/ufw/before6.rules', parse: path, show: String }),
  def({ key: 'ufwChain', flag: 'ufw-chain', arg: '<name>', description: 'chain of the IPv4 blocks (its log-and-drop chain is NAME-log)', default: 'ufw-smtpguard', parse: valid(chainNameProblem), show: String }),
  def({ key: 'ufw6Chain', flag: 'ufw6-chain', arg: '<name>', description: 'chain of the IPv6 blocks (its log-and-drop chain is NAME-log)', default: 'ufw6-smtpguard', parse: valid(chainNameProblem), show: String }),
  def({ key: 'firewall', flag: 'firewall', arg: `<${FIREWALL_MODES.join('|')}>`, description: `how blocks reach the kernel: ${BACKENDS.map((b) => `${b.summary} (${b.mode})`).join('; ')}; README "Large block lists" and "Hosts without ufw"`, default: 'rules', parse: firewallMode, show: String }),
  def({ key: 'smtpPorts', flag: 'smtp-ports', arg: '<list>', description: 'the TCP ports a block closes where smtpguard writes the firewall rule itself (--firewall nftables; ufw\'s are in its rules files since install)', default: [25, 465, 587], parse: ports, show: (v) => v.join(',') }),
  def({ key: 'accessMap', flag: 'access-map', arg: '<file>', description: 'Postfix client access map (the source file, not the .db)', default: '/etc/postfix/sender_access', parse: path, show: String }),
  def({ key: 'mapType', flag: 'map-type', arg: '<type>', description: `access map type: ${MAP_TYPES.join(', ')} (default: postconf default_database_type)`, default: null, parse: mapType, show: (v) => v ?? '' }),
  def({ key: 'rejectText', flag: 'reject-text', arg: '<text>', description: 'text after REJECT in the access map, sent to blocked clients', default: 'Access denied: too many failed logins or rejected commands (smtpguard)', parse: valid(rejectTextProblem), show: String }),
  def({ key: 'postfixConfigDir', flag: 'postfix-config-dir', arg: '<dir>', description: 'run postconf, postmap and postfix with -c DIR (another Postfix instance)', default: null, parse: path, show: (v) => v ?? '' }),
  def({ key: 'lockFile', flag: 'lock-file', arg: '<file>', description: 'one run at a time: the lock file', default: '/run/smtpguard.lock', parse: path, show: String }),
  def({ key: 'stateDir', flag: 'state-dir', arg: '<dir>', description: 'directory for what smtpguard keeps between runs', default: '/var/lib/smtpguard', parse: path, show: String }),
  def({ key: 'journal', flag: 'journal', arg: null, description: "read Postfix's entries in the journal (auto: when no mail log exists on the default paths)", default: 'auto', parse: journalMode, show: String }),
  def({ key: 'journalDirectory', flag: 'journal-directory', arg: '<dir>', description: 'read this journal directory (journalctl --directory) instead of the system journal', default: null, parse: path, show: (v) => v ?? '' }),
  def({ key: 'journalUnit', flag: 'journal-unit', arg: '<pattern>', description: 'the systemd unit Postfix runs as (journalctl --unit)', default: 'postfix*', parse: path, show: String }),
  def({ key: 'timeout', flag: 'timeout', arg: '<duration|none>', description: 'a run that takes longer stops, changes nothing it has not finished, and exits 8', default: 10 * 60e3, parse: timeLimit, show: (v) => (v === Infinity ? 'none' : formatWindow(v)) }),
  def({ key: 'reloadInterval', flag: 'reload-interval', arg: '<duration>', description: 'follow: at most one reload of Postfix (and of ufw with --firewall rules) per this time; a set backend puts new blocks in force at once', default: 10e3, parse: (t) => parseDuration(t, null), show: formatWindow }),
  def({ key: 'pullInterval', flag: 'pull-interval', arg: '<duration>', description: "follow: pull the fleet's decisions from CrowdSec's Local API this often", default: 10e3, parse: (t) => parseDuration(t, null), show: formatWindow }),
  def({ key: 'trapUsers', flag: 'trap-users', arg: '<list>', description: 'SASL usernames that do not exist here (e.g. admin,test): one failed login naming one makes the client an offender at once (a name without @ also matches NAME@any-domain)', default: [], parse: usernames, show: (v) => v.join(',') }),
  def({ key: 'cutSessions', flag: 'cut-sessions', arg: null, description: 'after ufw reloads, close the SMTP sessions new blocks still have open (ss -K), so a client blocked in the middle of an AUTH session stops at once', default: true, parse: yesNo, show: (v) => (v ? 'yes' : 'no') }),
  def({ key: 'blockLinkLocal', flag: 'block-link-local', arg: null, description: 'block link-local clients (169.254.0.0/16, fe80::/10) too; off: they are neighbours on the same link (a router), never blocked', default: false, parse: yesNo, show: (v) => (v ? 'yes' : 'no') }),
  def({ key: 'banTime', flag: 'ban-time', arg: '<duration|forever>', description: 'a block stays at least this long after the last event that made it (even when the window no longer shows it)', default: 24 * 3600e3, parse: banLength, show: showLength }),
  def({ key: 'banFactor', flag: 'ban-factor', arg: '<n>', description: 'a block decided again within --recidive-window of its end gets the previous ban time times this', default: 2, parse: factor, show: String }),
  def({ key: 'banTimeMax', flag: 'ban-time-max', arg: '<duration|forever>', description: 'the longest ban a repeat offender gets (forever: no limit)', default: 30 * 24 * 3600e3, parse: banLength, show: showLength }),
  def({ key: 'recidiveWindow', flag: 'recidive-window', arg: '<duration>', description: 'how long an ended ban is remembered: a block decided again within it counts as a repeat', default: 30 * 24 * 3600e3, parse: banLength, show: showLength }),
  def({ key: 'state', flag: 'state', arg: null, description: 'keep what each log gave in --state-dir, so a run reads only new log text (--no-state: read every log in full)', default: true, parse: yesNo, show: (v) => (v ? 'yes' : 'no') }),
  def({ key: 'reload', flag: 'reload', arg: null, description: 'run postmap, postfix reload and ufw reload after a change (--no-reload: only write)', default: true, parse: yesNo, show: (v) => (v ? 'yes' : 'no') }),
  def({ key: 'maxTracked', flag: 'max-tracked', arg: '<n>', description: 'addresses counted one by one in the window; past it, those farthest from the threshold are only counted (IPv4) or added up per IPv6 prefix; offenders are always kept', default: 20_000, parse: wholeNumber(1000), show: String }),
  def({ key: 'crowdsecUrl', flag: 'crowdsec-url', arg: '<url>', description: 'CrowdSec Local API shared by several servers, e.g. http://10.0.0.5:8080 (none: no sharing)', default: null, parse: lapiUrl, show: (v) => v ?? '' }),
  def({ key: 'crowdsecMachine', flag: 'crowdsec-machine', arg: '<id>', description: 'push new blocks as alerts as this CrowdSec machine (cscli machines add)', default: null, parse: machineId, show: (v) => v ?? '' }),
  def({ key: 'crowdsecPasswordFile', flag: 'crowdsec-password-file', arg: '<file>', description: "file with the machine's password, root's alone (mode 600)", default: null, parse: path, show: (v) => v ?? '' }),
  def({ key: 'crowdsecBouncerKeyFile', flag: 'crowdsec-bouncer-key-file', arg: '<file>', description: 'pull decisions as blocks (reason fleet) with this bouncer key file, root\'s alone (cscli bouncers add)', default: null, parse: path, show: (v) => v ?? '' }),
  def({ key: 'crowdsecScenarios', flag: 'crowdsec-scenarios', arg: '<list>', description: 'pull decisions whose scenario starts with one of these', default: ['smtpguard/'], parse: scenarioPrefixes, show: (v) => v.join(',') }),
  def({ key: 'crowdsecOrigins', flag: 'crowdsec-origins', arg: '<list>', description: 'pull the decisions of these origins too, whatever their scenario (e.g. CAPI,lists,cscli)', default: [], parse: originNames, show: (v) => v.join(',') }),
  def({ key: 'crowdsecWidest', flag: 'crowdsec-widest', arg: '<len>', description: 'the widest pulled IPv4 range applied (a /24 by default, our own widest); a wider decision is refused and reported', default: 24, parse: wholeNumber(8, 32), show: String }),
  def({ key: 'crowdsecWidest6', flag: 'crowdsec-widest6', arg: '<len>', description: 'the widest pulled IPv6 range applied (a /48 by default); a wider decision is refused and reported', default: 48, parse: wholeNumber(16, 128), show: String }),
  def({ key: 'metricsFile', flag: 'metrics-file', arg: '<file>', description: "write each run's metrics here for node_exporter's textfile collector, e.g. /var/lib/prometheus/node-exporter/smtpguard.prom (none: no metrics)", default: null, parse: optionalPath, show: (v) => v ?? '' }),
] as const;

function optionalPath(text: string): string | null {
  const value = text.trim();
  return value === '' || value.toLowerCase() === 'none' ? null : path(value);
}

function lapiUrl(text: string): string | null {
  const value = text.trim();
  if (value === '' || value.toLowerCase() === 'none') return null;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error('expected an http:// or https:// URL such as http://10.0.0.5:8080');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('expected an http:// or https:// URL');
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') throw new Error('give the address alone (no user, query or #): credentials go in their files');
  return value.replace(/\/+$/, '');
}

function machineId(text: string): string | null {
  const value = text.trim();
  if (value === '') return null;
  if (!/^[A-Za-z0-9._@-]{1,64}$/.test(value)) throw new Error('use letters, digits and . _ @ - (at most 64), as in cscli machines add');
  return value;
}

function scenarioPrefixes(text: string): string[] {
  const list = words(text);
  for (const w of list) if (!/^[A-Za-z0-9._/-]+$/.test(w)) throw new Error(`"${w}" is not a scenario name or prefix (e.g. smtpguard/, crowdsecurity/)`);
  return list;
}

function originNames(text: string): string[] {
  const list = words(text);
  for (const w of list) if (!/^[A-Za-z0-9._-]+$/.test(w)) throw new Error(`"${w}" is not an origin (e.g. CAPI, lists, cscli, crowdsec)`);
  return list;
}

function firewallMode(text: string): string {
  const value = text.trim();
  if (!FIREWALL_MODES.includes(value)) throw new Error(`expected one of ${FIREWALL_MODES.join(', ')}`);
  return value;
}

function ports(text: string): number[] {
  const list = words(text);
  if (list.length === 0) throw new Error('expected at least one port (e.g. 25,465,587)');
  const out: number[] = [];
  for (const w of list) {
    if (!/^\d{1,5}$/.test(w) || Number(w) < 1 || Number(w) > 65535) throw new Error(`"${w}" is not a TCP port (1-65535)`);
    if (!out.includes(Number(w))) out.push(Number(w));
  }
  return out;
}

function mapType(text: string): MapType {
  const value = text.trim();
  if (!(MAP_TYPES as readonly string[]).includes(value)) throw new Error(`expected one of ${MAP_TYPES.join(', ')}`);
  return value as MapType;
}

const FLAG_OF = new Map<string, string>(DEFINITIONS.map((d) => [d.key, d.flag]));
/** `ipv6Prefix` (flag --ipv6-prefix) -> `IPV6_PREFIX`. */
export const configKey = (key: Key): string => FLAG_OF.get(key)!.toUpperCase().replaceAll('-', '_');
export const envName = (key: Key): string => `SMTPGUARD_${configKey(key)}`;

export type Origin = { from: 'default' } | { from: 'flag' } | { from: 'env'; name: string } | { from: 'file'; file: string; line: number };

export interface Resolved {
  settings: Settings;
  origins: Record<Key, Origin>;
  /** ALLOW only grows: its entries from the file, the environment and the flags, each with where it came from. */
  allowFrom: Array<{ word: string; origin: Origin }>;
}

/** Flag values as commander gives them: strings (arrays for repeatable flags), booleans for --[no-]reload. */
export type FlagValues = Partial<Record<Key, string | string[] | boolean>>;

/** Settings that take several values (LOG, ALLOW): each flag, file word or environment word is one item. */
const isListKey = (key: Key): key is 'log' | 'allow' => key === 'log' || key === 'allow';

/**
 * Merges the four layers. `fileText` is the config file's content (null when there is
 * none); `file` names it in errors. Unknown keys and bad values are errors with file:line
 * (or the variable or flag that holds them). An empty value in the file or the
 * environment means the default.
 */
export function resolveSettings(flags: FlagValues, env: Readonly<Record<string, string | undefined>>, fileText: string | null, file: string): Resolved {
  const fromFile = fileText === null ? new Map<string, ConfigEntry>() : parseConfigFile(fileText, file);
  const settings = {} as Record<Key, unknown>;
  const origins = {} as Record<Key, Origin>;
  const allowFrom: Resolved['allowFrom'] = [];
  for (const d of DEFINITIONS as readonly Definition<Key>[]) {
    if (d.key === 'allow') {
      // an allowlist only grows: the file's, the environment's and the flags' entries are joined (an office
      // in the config file must not lose its exemption because someone added an address on the command line)
      const layers: Array<{ words: readonly string[]; origin: Origin }> = [];
      const fileEntry = fromFile.get(configKey(d.key));
      if (fileEntry !== undefined && fileEntry.words.length > 0) layers.push({ words: fileEntry.words, origin: { from: 'file', file, line: fileEntry.lines[0]! } });
      const envValue = env[envName(d.key)];
      if (envValue !== undefined && envValue.trim() !== '') {
        let words: string[];
        try {
          words = splitWords(envValue).words;
        } catch (error) {
          throw new SmtpguardError(`${envName(d.key)}=${envValue} in the environment: ${(error as Error).message}`, { hint: 'quote as in a shell' });
        }
        layers.push({ words, origin: { from: 'env', name: envName(d.key) } });
      }
      const flag = flags[d.key];
      if (flag !== undefined && typeof flag !== 'boolean') layers.push({ words: Array.isArray(flag) ? flag : [flag], origin: { from: 'flag' } });
      for (const layer of layers) {
        for (const word of parseWords(d, layer.words, layer.origin) as string[]) if (!allowFrom.some((a) => a.word === word)) allowFrom.push({ word, origin: layer.origin });
      }
      settings.allow = allowFrom.map((a) => a.word);
      origins.allow = layers.at(-1)?.origin ?? { from: 'default' };
      continue;
    }
    const flag = flags[d.key];
    const envValue = env[envName(d.key)];
    const fileEntry = fromFile.get(configKey(d.key));
    if (flag !== undefined) {
      origins[d.key] = { from: 'flag' };
      if (typeof flag === 'boolean') settings[d.key] = d.key === 'journal' ? (flag ? 'yes' : 'no') : flag;
      else settings[d.key] = parseWords(d, Array.isArray(flag) ? flag : [flag], origins[d.key]);
    } else if (envValue !== undefined && envValue.trim() !== '') {
      origins[d.key] = { from: 'env', name: envName(d.key) };
      let words: string[];
      try {
        words = isListKey(d.key) ? splitWords(envValue).words : [envValue];
      } catch (error) {
        throw new SmtpguardError(`${envName(d.key)}=${envValue} in the environment: ${(error as Error).message}`, { hint: 'quote as in a shell' });
      }
      settings[d.key] = parseWords(d, words, origins[d.key]);
    } else if (fileEntry !== undefined && fileEntry.words.length > 0) {
      origins[d.key] = { from: 'file', file, line: fileEntry.lines[0]! };
      settings[d.key] = parseWords(d, fileEntry.words, origins[d.key]);
    } else {
      settings[d.key] = Array.isArray(d.default) ? [...d.default] : d.default;
      origins[d.key] = { from: 'default' };
    }
  }
  const resolved = { settings: settings as unknown as Settings, origins, allowFrom };
  checkTogether(resolved, file);
  return resolved;
}

/**
 * Settings that depend on each other, checked together: each error names both settings and
 * where each came from.
 */
function checkTogether({ settings: s, origins }: Resolved, file: string): void {
  const where = (key: Key): string => {
    const o = origins[key];
    return o.from === 'flag' ? `--${FLAG_OF.get(key)}` : o.from === 'env' ? o.name : o.from === 'file' ? `${file}:${o.line}` : 'default';
  };
  const both = (a: Key, b: Key, problem: string, hint: string): never => {
    const flag = origins[a].from === 'flag' || origins[b].from === 'flag';
    const show = (k: Key) => `${configKey(k)}=${settingWords(k, s[k]).join(' ')} (${where(k)})`;
    throw new SmtpguardError(`${show(a)} and ${show(b)}: ${problem}`, { exitCode: flag ? ExitCode.usage : ExitCode.input, hint });
  };
  if (s.ipv6SubnetPrefixes > 0 && s.ipv6Subnet >= s.ipv6Prefix) {
    both('ipv6Subnet', 'ipv6Prefix', `the network above the prefix must be wider (a shorter length) than the prefix it adds up`, `e.g. IPV6_SUBNET=48 with IPV6_PREFIX=64, or IPV6_SUBNET_PREFIXES=0 to turn the network blocks off`);
  }
  if (s.banTime !== Infinity && s.banTimeMax < s.banTime) {
    both('banTimeMax', 'banTime', 'the longest ban is shorter than the first one', 'raise BAN_TIME_MAX to at least BAN_TIME (or forever)');
  }
}

/** List keys: each word is one item (a path may hold spaces); other keys: the words joined by a space. */
function parseWords<K extends Key>(d: Definition<K>, words: readonly string[], where: Origin): Settings[K] {
  if (d.key === 'log') return words.flatMap((w) => parseValue(d, w, where, (t) => [path(t)] as Settings[K]) as string[]) as Settings[K];
  if (d.key === 'allow') return words.flatMap((w) => parseValue(d, w, where) as string[]) as Settings[K];
  return parseValue(d, words.join(' '), where);
}

function parseValue<K extends Key>(d: Definition<K>, text: string, where: Origin, parse: (text: string) => Settings[K] = d.parse): Settings[K] {
  const control = controlCharacterProblem(text);
  try {
    if (control !== null) throw new Error(control);
    return parse(text);
  } catch (error) {
    const problem = (error as Error).message;
    const exitCode = control !== null ? ExitCode.usage : undefined;
    const hint = `see "smtpguard help run" for --${d.flag}`;
    const shown = JSON.stringify(text).slice(1, -1); // a control character is shown escaped, never written raw
    if (where.from === 'flag') throw new SmtpguardError(`--${d.flag} ${shown}: ${problem}`, { exitCode: ExitCode.usage, hint });
    if (where.from === 'env') throw new SmtpguardError(`${where.name}=${shown} in the environment: ${problem}`, { exitCode, hint });
    if (where.from === 'file') throw new SmtpguardError(`${where.file}:${where.line}: ${configKey(d.key)}=${shown}: ${problem}`, { exitCode, hint });
    throw error;
  }
}

export const KNOWN_KEYS: ReadonlySet<string> = new Set<string>(DEFINITIONS.map((d) => configKey(d.key)));

/** The config file's entries by key (grammar: config-file.ts). */
export function parseConfigFile(text: string, file: string): Map<string, ConfigEntry> {
  return parseConfigText(text, file, KNOWN_KEYS);
}

/** A setting's value as the words of a config line. */
export function settingWords(key: Key, value: Settings[Key]): string[] {
  if (isListKey(key)) return [...(value as string[])];
  const d = (DEFINITIONS as readonly Definition<Key>[]).find((x) => x.key === key)!;
  const shown = d.show(value);
  return shown === '' ? [] : [shown];
}

/** The keys given on the command line or in the environment, as config lines' words: what install keeps. */
export function givenSettings(resolved: Resolved): Map<string, string[]> {
  const given = new Map<string, string[]>();
  for (const d of DEFINITIONS as readonly Definition<Key>[]) {
    if (d.key === 'allow') continue; // added word by word: givenAllow()
    const from = resolved.origins[d.key].from;
    if (from === 'flag' || from === 'env') given.set(configKey(d.key), settingWords(d.key, resolved.settings[d.key]));
  }
  return given;
}

/** The ALLOW entries given on the command line or in the environment and not yet in the file: what install adds. */
export function givenAllow(resolved: Resolved): string[] {
  return resolved.allowFrom.filter((a) => a.origin.from === 'flag' || a.origin.from === 'env').map((a) => a.word);
}

/** The start of a new config file: what it is, and one commented line per key with its default. */
export function renderConfigHeader(): string {
  const lines = [
    '# smtpguard settings, read by every smtpguard command (man smtpguard, "smtpguard config").',
    '# Precedence: command-line flag > environment (SMTPGUARD_KEY) > this file > default.',
    '# KEY=value lines; quote as in a shell (KEY="two words"); "# ..." after a space is a comment.',
    '# LOG and ALLOW take several values, on one line or on several.',
    '# "smtpguard install" sets the keys it is given and keeps every other line of this file.',
    '# The defaults:',
  ];
  for (const d of DEFINITIONS as readonly Definition<Key>[]) {
    const words = settingWords(d.key, (Array.isArray(d.default) ? [...d.default] : d.default) as Settings[Key]);
    lines.push(`#${renderConfigLine(configKey(d.key), words)}`);
  }
  return lines.join('\n') + '\n';
}

export interface RenderSettingsContext {
  /** The config file read, and whether it exists. */
  file: string;
  fileExists: boolean;
  /** The map type Postfix reports, when MAP_TYPE is not set. */
  defaultMapType?: string;
}

/**
 * `smtpguard config`: every setting, its value and where it came from, as a config
 * file that reads back to the same values.
 */
export function renderSettings(resolved: Resolved, context: RenderSettingsContext): string {
  const lines = [
    '# smtpguard config: the settings in effect, written as a config file',
    `# ${context.fileExists ? `read ${context.file}` : `no config file at ${context.file}: none read`}`,
  ];
  for (const d of DEFINITIONS as readonly Definition<Key>[]) {
    if (d.key === 'allow' && resolved.allowFrom.length > 0) {
      // a line per place the entries came from: the list is joined, not replaced
      const groups = new Map<string, string[]>();
      for (const { word, origin } of resolved.allowFrom) {
        const where = describeOrigin(origin, d.flag);
        groups.set(where, [...(groups.get(where) ?? []), word]);
      }
      for (const [where, words] of groups) lines.push(`${renderConfigLine('ALLOW', words).padEnd(40)} # ${where}`);
      continue;
    }
    const origin = resolved.origins[d.key];
    let words = settingWords(d.key, resolved.settings[d.key]);
    let where = describeOrigin(origin, d.flag);
    if (d.key === 'mapType' && origin.from === 'default' && context.defaultMapType !== undefined) {
      words = [context.defaultMapType];
      where = 'from postconf default_database_type';
    } else if (words.length === 0) where += ' (none)';
    lines.push(`${renderConfigLine(configKey(d.key), words).padEnd(40)} # ${where}`);
  }
  return lines.join('\n') + '\n';
}

const describeOrigin = (origin: Origin, flag: string): string =>
  origin.from === 'file' ? `from ${origin.file}:${origin.line}` : origin.from === 'env' ? `from environment ${origin.name}` : origin.from === 'flag' ? `from --${flag}` : 'default';
