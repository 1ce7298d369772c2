/**
 * Addresses and ranges: parsing, normalising, ordering. Pure; all CIDR work is
 * ipaddr.js's.
 */
import ipaddr from 'ipaddr.js';

export type Ip = ipaddr.IPv4 | ipaddr.IPv6;
export type Range = [Ip, number];

const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const IPV6_CHARS = /^[0-9A-Fa-f:.]+$/;

/**
 * A canonical dotted quad -> its 32 bits (unsigned), or null. The fast path of the helpers
 * below: 100,000 fleet blocks were parsed by ipaddr.js several times each per run.
 */
export function ipv4Bits(text: string): number | null {
  // by hand, one pass: no leading zeros, four parts of 0-255 (what IPV4 accepts)
  let bits = 0;
  let part = 0;
  let digits = 0;
  let parts = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = i === text.length ? 46 : text.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || part > 255 || ++parts > 4) return null;
      bits = bits * 256 + part;
      part = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits === 1 && part === 0) return null; // a leading zero
      part = part * 10 + (c - 48);
      if (++digits > 3) return null;
    } else return null;
  }
  return parts === 4 ? bits : null;
}

const ipv4Text = (bits: number): string => `${bits >>> 24}.${(bits >>> 16) & 255}.${(bits >>> 8) & 255}.${bits & 255}`;
const ipv4Mask = (length: number): number => (length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0);

/** `192.0.2.7` -> `192.0.2.7/32` (`/128` for IPv6); a CIDR stays as it is. */
export const withLength = (cidr: string): string => (cidr.includes('/') ? cidr : `${cidr}/${cidr.includes(':') ? 128 : 32}`);

/** `192.0.2.0/24` -> [bits, 24] for canonical IPv4 CIDR text (a length 0-32 in decimal), else null. */
export function ipv4Cidr(cidr: string): [number, number] | null {
  const slash = cidr.indexOf('/');
  const bits = ipv4Bits(slash === -1 ? cidr : cidr.slice(0, slash));
  if (bits === null) return null;
  if (slash === -1) return [bits, 32];
  const length = cidr.slice(slash + 1);
  if (!/^(?:[12]?\d|3[0-2])$/.test(length)) return null;
  return [bits, Number(length)];
}

/**
 * A client address as Postfix logged it -> canonical text, or null for anything
 * that is not one address (`unknown`, `999.1.2.3`, `192.0.2.1.5`, `1.2.3`).
 * IPv4-mapped IPv6 becomes IPv4 (Postfix treats it so); IPv6 is RFC 5952 text;
 * a zone index is dropped from a link-local address (`fe80::1%eth0`), and refused on any other.
 */
export function normaliseAddress(raw: string): string | null {
  if (isCanonicalAddress(raw)) return raw;
  const percent = raw.indexOf('%');
  if (readIpv6(percent === -1 ? raw : raw.slice(0, percent)) === NOT_IPV6) return null;
  // a zone index only names the link of a link-local address (fe80::/10); on any other it is not Postfix's text
  if (percent !== -1 && (GROUPS[0]! & 0xffc0) !== 0xfe80) return null;
  // IPv4-mapped (::ffff:a.b.c.d) is IPv4; IPv4-compatible (::a.b.c.d, deprecated) stays IPv6
  if (isMapped(GROUPS)) return ipv4Text(GROUPS[6]! * 65536 + GROUPS[7]!);
  return ipv6Text(GROUPS);
}

/**
 * Whether `text` is an address just as normaliseAddress gives it (then it is its own canonical
 * text): a dotted quad, or IPv6 already in RFC 5952 form and not IPv4-mapped. What Postfix
 * logs nearly always is; this check makes no string and no array.
 */
export function isCanonicalAddress(text: string): boolean {
  return ipv4Bits(text) !== null || (readIpv6(text) === CANONICAL && !isMapped(GROUPS));
}

const isMapped = (g: Uint16Array): boolean => g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff;

/**
 * IPv6 text -> its eight 16-bit groups, or null: hex groups of 1-4 digits, at most one `::`
 * (standing for one or more zero groups), an optional dotted quad as the last 32 bits.
 */
export function ipv6Groups(text: string): Uint16Array | null {
  return readIpv6(text) === NOT_IPV6 ? null : GROUPS.slice();
}

/** readIpv6's answers. */
const NOT_IPV6 = 0;
const CANONICAL = 1;
const VALID = 2;
/** readIpv6's groups: the last text it read, when that was IPv6. */
const GROUPS = new Uint16Array(8);

/**
 * Reads IPv6 text into GROUPS (as ipv6Groups describes) and says whether it was IPv6, and if
 * so whether in RFC 5952 form as ipv6Text writes it (lower case, no leading zeros, the first
 * longest run of two or more zero groups as `::`, no dotted quad). By hand and into one shared
 * array: a flood of a million distinct addresses spent seconds in ipaddr.js, then in garbage.
 */
function readIpv6(text: string): number {
  // the parser checks a client's text and the tally then takes its words: read once
  if (text === lastRead) return lastAnswer;
  lastRead = null;
  lastAnswer = readIpv6Text(text);
  if (lastAnswer !== NOT_IPV6) lastRead = text;
  return lastAnswer;
}

/** The last IPv6 text readIpv6 read into GROUPS (null: GROUPS holds no whole address), and its answer. */
let lastRead: string | null = null;
let lastAnswer = NOT_IPV6;

function readIpv6Text(text: string): number {
  const n = text.length;
  if (n < 2 || n > 45) return NOT_IPV6;
  let count = 0; // groups read
  let gapAt = -1; // groups before the `::`
  let canonical = true;
  let i = 0;
  if (text.charCodeAt(0) === 58 /* : */) {
    if (text.charCodeAt(1) !== 58) return NOT_IPV6;
    gapAt = 0;
    i = 2;
  }
  while (i < n) {
    // one group (or a dotted quad at the end)
    let value = 0;
    let digits = 0;
    let j = i;
    for (; j < n; j++) {
      const c = text.charCodeAt(j);
      let d: number;
      if (c >= 48 && c <= 57) d = c - 48;
      else if (c >= 97 && c <= 102) d = c - 87;
      else if (c >= 65 && c <= 70) {
        d = c - 55;
        canonical = false;
      } else break;
      value = value * 16 + d;
      digits++;
    }
    if (j < n && text.charCodeAt(j) === 46 /* . */) {
      const v4 = ipv4Bits(text.slice(i));
      if (v4 === null || count > 6) return NOT_IPV6;
      GROUPS[count++] = v4 >>> 16;
      GROUPS[count++] = v4 & 0xffff;
      canonical = false;
      break;
    }
    if (digits === 0 || digits > 4 || count === 8) return NOT_IPV6;
    if (digits > 1 && text.charCodeAt(i) === 48) canonical = false; // a leading zero
    GROUPS[count++] = value;
    if (j === n) break;
    if (text.charCodeAt(j) !== 58) return NOT_IPV6;
    if (j + 1 < n && text.charCodeAt(j + 1) === 58) {
      if (gapAt !== -1) return NOT_IPV6;
      gapAt = count;
      i = j + 2;
    } else {
      i = j + 1;
      if (i === n) return NOT_IPV6; // a single trailing colon
    }
  }
  return settleGroups(count, gapAt, canonical);
}

/** The end of reading IPv6 into GROUPS: `count` groups read, the `::` after `gapAt` of them (-1: none). */
function settleGroups(count: number, gapAt: number, canonical: boolean): number {
  if (gapAt === -1 ? count !== 8 : count > 7) return NOT_IPV6;
  if (gapAt !== -1) {
    // the groups after the gap move to the end; the gap is zeros
    const tail = count - gapAt;
    GROUPS.copyWithin(8 - tail, gapAt, count);
    GROUPS.fill(0, gapAt, 8 - tail);
  }
  if (!canonical) return VALID;
  // the form ipv6Text writes: the `::` (if any) is the first longest run of two or more zeros
  const [runAt, runLength] = longestZeroRun(GROUPS);
  return (gapAt === -1 ? runAt === -1 : runAt === gapAt && runLength === 8 - count) ? CANONICAL : VALID;
}

/**
 * Address text as latin1 bytes `b[from..to)` (a client field read in place: parse-bytes.ts) -> its
 * four words in `into` (as addressWords), when it is an address normaliseAddress keeps as it is: a
 * dotted quad, or RFC 5952 IPv6 that is not IPv4-mapped; false for any other text, which the text
 * functions then judge. ipv4Bits and readIpv6Text read the same forms from a string.
 */
export function canonicalAddressWords(b: Uint8Array, from: number, to: number, into: Int32Array): boolean {
  const v4 = ipv4BitsOfBytes(b, from, to);
  if (v4 === null) return canonicalIpv6Words(b, from, to, into);
  into[0] = 0;
  into[1] = 0;
  into[2] = 0xffff;
  into[3] = v4 | 0;
  return true;
}

/** ipv4Bits for bytes: a canonical dotted quad -> its 32 bits, or null. */
function ipv4BitsOfBytes(b: Uint8Array, from: number, to: number): number | null {
  let bits = 0;
  let part = 0;
  let digits = 0;
  let parts = 0;
  for (let i = from; i <= to; i++) {
    const c = i === to ? 46 : b[i]!;
    if (c === 46) {
      if (digits === 0 || part > 255 || ++parts > 4) return null;
      bits = bits * 256 + part;
      part = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits === 1 && part === 0) return null; // a leading zero
      part = part * 10 + (c - 48);
      if (++digits > 3) return null;
    } else return null;
  }
  return parts === 4 ? bits : null;
}

/** canonicalAddressWords for IPv6. */
export function canonicalIpv6Words(b: Uint8Array, from: number, to: number, into: Int32Array): boolean {
  if (to - from < 2 || to - from > 39) return false;
  lastRead = null; // GROUPS is about to change
  let count = 0;
  let gapAt = -1;
  let i = from;
  if (b[i] === 58 /* : */) {
    if (b[i + 1] !== 58) return false;
    gapAt = 0;
    i += 2;
  }
  while (i < to) {
    // one group: 1-4 lower-case hex digits, no leading zero
    const start = i;
    let value = 0;
    for (; i < to && i - start < 5; i++) {
      const c = b[i]!;
      if (c >= 48 && c <= 57) value = value * 16 + c - 48;
      else if (c >= 97 && c <= 102) value = value * 16 + c - 87;
      else break;
    }
    const digits = i - start;
    if (digits === 0 || digits > 4 || count === 8 || (digits > 1 && b[start] === 48)) return false;
    GROUPS[count++] = value;
    if (i === to) break;
    if (b[i] !== 58) return false; // a dotted quad, a zone, upper case: the text functions
    if (i + 1 < to && b[i + 1] === 58) {
      if (gapAt !== -1) return false;
      gapAt = count;
      i += 2;
    } else if (++i === to) return false; // a single trailing colon
  }
  if (settleGroups(count, gapAt, true) !== CANONICAL || isMapped(GROUPS)) return false;
  groupsInto(into, 0);
  return true;
}

/** GROUPS (the last IPv6 read) as four 32-bit words at `into[at..at+3]`. */
function groupsInto(into: Int32Array, at: number): void {
  for (let k = 0; k < 4; k++) into[at + k] = (GROUPS[2 * k]! << 16) | GROUPS[2 * k + 1]!;
}

/** The first longest run of two or more zero groups: [where, how long], or [-1, 1] for none. */
function longestZeroRun(groups: Uint16Array): [number, number] {
  let bestAt = -1;
  let bestLength = 1;
  for (let k = 0; k < 8; ) {
    if (groups[k] !== 0) {
      k++;
      continue;
    }
    let end = k;
    while (end < 8 && groups[end] === 0) end++;
    if (end - k > bestLength) {
      bestAt = k;
      bestLength = end - k;
    }
    k = end;
  }
  return [bestAt, bestLength];
}

/**
 * Canonical address text -> four 32-bit words at `into[at..at+3]` (IPv4 as ::ffff:a.b.c.d, which
 * normaliseAddress never gives for IPv6), for tables keyed by number instead of by string;
 * false when it is not an address.
 */
export function addressWords(text: string, into: Int32Array, at: number): boolean {
  const v4 = ipv4Bits(text);
  if (v4 !== null) {
    into[at] = 0;
    into[at + 1] = 0;
    into[at + 2] = 0xffff;
    into[at + 3] = v4 | 0;
    return true;
  }
  if (readIpv6(text) === NOT_IPV6) return false;
  groupsInto(into, at);
  return true;
}

/** The inverse of addressWords: canonical text. */
export function wordsText(words: Int32Array, at: number): string {
  if (words[at] === 0 && words[at + 1] === 0 && words[at + 2] === 0xffff) return ipv4Text(words[at + 3]! >>> 0);
  const groups = new Uint16Array(8);
  for (let k = 0; k < 4; k++) {
    groups[2 * k] = words[at + k]! >>> 16;
    groups[2 * k + 1] = words[at + k]! & 0xffff;
  }
  return ipv6Text(groups);
}

/** Eight groups -> RFC 5952 text: lower case, no leading zeros, the first longest run of two or more zero groups as `::`. */
export function ipv6Text(groups: Uint16Array): string {
  const [bestAt, bestLength] = longestZeroRun(groups);
  let text = '';
  for (let k = 0; k < 8; k++) {
    if (k === bestAt) {
      text += '::';
      k += bestLength - 1;
      continue;
    }
    if (text !== '' && !text.endsWith(':')) text += ':';
    text += groups[k]!.toString(16);
  }
  return text;
}

/**
 * A canonical address (as normaliseAddress gives) -> ipaddr.js object. ipaddr.parse()
 * tries IPv6 first and is slow on IPv4 text; the family is plain to see.
 */
export function parseIp(address: string): Ip {
  return readIp(address) ?? (address.includes(':') ? ipaddr.IPv6.parse(address) : ipaddr.IPv4.parse(address));
}

/**
 * The ipaddr.js object of text that ipv4Bits or readIpv6 reads, built from their numbers, or null
 * (ipaddr.js's parser is regular expressions and garbage: a flood's 100,000 summaries spent 0.2 s
 * in it). IPv6 with a dotted quad is left to ipaddr.js: it reads `::a.b.c.d` as `::ffff:a.b.c.d`.
 */
function readIp(address: string): Ip | null {
  if (!address.includes(':')) {
    const v4 = ipv4Bits(address);
    return v4 === null ? null : new ipaddr.IPv4([v4 >>> 24, (v4 >>> 16) & 255, (v4 >>> 8) & 255, v4 & 255]);
  }
  if (!readsAsIpv6(address)) return null;
  const g = GROUPS; // (Array.from iterates, an object a group)
  return new ipaddr.IPv6([g[0]!, g[1]!, g[2]!, g[3]!, g[4]!, g[5]!, g[6]!, g[7]!]);
}

/** readIpv6 into GROUPS, for the forms ipaddr.js reads to the same groups: those without a dotted quad. */
const readsAsIpv6 = (text: string): boolean => !text.includes('.') && readIpv6(text) !== NOT_IPV6;

/** Sorts IPv4 before IPv6, then numerically (192.0.2.9 before 192.0.2.10): compare these strings. */
export function addressSortKey(address: string): string {
  if (!address.includes(':')) {
    const v4 = ipv4Bits(address);
    if (v4 !== null) return `4${hex32(v4)}`;
  } else if (readsAsIpv6(address)) {
    let key = '6';
    for (let k = 0; k < 8; k++) key += GROUPS[k]!.toString(16).padStart(4, '0');
    return key;
  }
  const bytes = parseIp(address).toByteArray();
  return (bytes.length === 4 ? '4' : '6') + Buffer.from(bytes).toString('hex');
}

/** addressSortKey of the address whose words are `words[at..at+3]` (addressWords), from the words: no text read. */
export function wordsSortKey(words: Int32Array, at: number): string {
  if (words[at] === 0 && words[at + 1] === 0 && words[at + 2] === 0xffff) return `4${hex32(words[at + 3]!)}`;
  return `6${wordsHex(words, at)}`;
}

/** The 128 bits of `words[at..at+3]` as 32 hex digits. */
function wordsHex(words: Int32Array, at: number): string {
  let hex = '';
  for (let k = 0; k < 4; k++) hex += hex32(words[at + k]!);
  return hex;
}

/** 32 bits (a word, signed or not) as 8 hex digits: the parts of every sort key here. */
function hex32(word: number): string {
  return (word >>> 0).toString(16).padStart(8, '0');
}

/** `2001:db8:1:2::77`, 64 -> `2001:db8:1:2::/64`; `192.0.2.7`, 24 -> `192.0.2.0/24`. */
export function networkOf(address: string, bits: number): string {
  const v4 = address.includes(':') ? null : ipv4Bits(address);
  if (v4 !== null && bits >= 0 && bits <= 32) return `${ipv4Text((v4 & ipv4Mask(bits)) >>> 0)}/${bits}`;
  const v6 = v4 === null && Number.isInteger(bits) && bits >= 0 && bits <= 128 ? ipv6Groups(address) : null;
  if (v6 !== null) {
    for (let k = 0; k < 8; k++) {
      const keep = Math.min(16, Math.max(0, bits - 16 * k));
      v6[k] = keep === 0 ? 0 : v6[k]! & (0xffff << (16 - keep));
    }
    return `${ipv6Text(v6)}/${bits}`;
  }
  const network =
    !address.includes(':')
      ? ipaddr.IPv4.networkAddressFromCIDR(`${address}/${bits}`).toString()
      : ipaddr.IPv6.networkAddressFromCIDR(`${address}/${bits}`).toRFC5952String();
  return `${network}/${bits}`;
}

/**
 * A range as every never-block check must see it: IPv4-mapped IPv6 (`::ffff:10.0.0.0/104`,
 * `::ffff:10.108.80.3`) as the IPv4 range it stands for (`10.0.0.0/8`, `10.108.80.3/32`),
 * which is how Postfix and the kernel see such a client; anything else as it is.
 */
export function unmapRange(cidr: string): string {
  if (!cidr.includes(':')) return cidr;
  const slash = cidr.indexOf('/');
  const groups = ipv6Groups(slash === -1 ? cidr : cidr.slice(0, slash));
  const length = slash === -1 ? 128 : Number(cidr.slice(slash + 1));
  if (groups === null || !(length >= 96 && length <= 128)) return cidr;
  for (let k = 0; k < 5; k++) if (groups[k] !== 0) return cidr;
  if (groups[5] !== 0xffff) return cidr;
  const bits = (groups[6]! * 65536 + groups[7]!) >>> 0;
  return `${ipv4Text((bits & ipv4Mask(length - 96)) >>> 0)}/${length - 96}`;
}

/** `192.0.2.7` (a host) or `192.0.2.0/24`; throws on anything else. */
export function parseRange(cidr: string): Range {
  const slash = cidr.indexOf('/');
  if (slash !== -1) {
    // a plain length, after an address readIp reads: built from the numbers; anything else is
    // parseCIDR's to accept or refuse
    const v6 = cidr.includes(':');
    const bits = plainLength(cidr, slash, v6 ? 128 : 32);
    const ip = bits === -1 ? null : readIp(cidr.slice(0, slash));
    if (ip === null) return v6 ? ipaddr.IPv6.parseCIDR(cidr) : ipaddr.IPv4.parseCIDR(cidr);
    return asCidr([ip, bits]);
  }
  const ip = parseIp(cidr);
  return [ip, ip.kind() === 'ipv4' ? 32 : 128];
}

/** The length after the `/` at `slash` when it is plain (1-3 decimal digits, which parseCIDR reads with parseInt) and at most `max`; else -1. */
function plainLength(cidr: string, slash: number, max: number): number {
  const text = cidr.slice(slash + 1);
  return /^\d{1,3}$/.test(text) && Number(text) <= max ? Number(text) : -1;
}

/** A range as ipaddr.js's parseCIDR gives it: its toString is `address/length`. */
function asCidr(range: Range): Range {
  Object.defineProperty(range, 'toString', {
    value: function (this: Range) {
      return this.join('/');
    },
  });
  return range;
}

/**
 * What is wrong with an address or range an admin wrote (--allow, ALLOW), or null. Only
 * the canonical forms: dotted quads without leading zeros (inet_aton would read `010.0.0.1`
 * as 8.0.0.1 and `10` as 0.0.0.10), valid IPv6, a decimal prefix length with no host bits set.
 */
export function canonicalRangeProblem(text: string): string | null {
  const slash = text.indexOf('/');
  const address = slash === -1 ? text : text.slice(0, slash);
  const v6 = address.includes(':');
  if (!v6 && !IPV4.test(address)) {
    return /^[0-9a-fA-FxX.]+$/.test(address)
      ? 'is not a dotted-quad IPv4 address (write four decimal numbers 0-255 without leading zeros, e.g. 10.0.0.1)'
      : 'is not an IPv4 or IPv6 address or CIDR range';
  }
  if (v6 && (!IPV6_CHARS.test(address) || !ipaddr.IPv6.isValid(address))) return 'is not a valid IPv6 address';
  if (slash === -1) return null;
  const length = text.slice(slash + 1);
  const v4 = v6 ? null : ipv4Cidr(text);
  if (v4 !== null && (v4[0] & ipv4Mask(v4[1])) >>> 0 === v4[0]) return null; // canonical: no host bits
  const max = v6 ? 128 : 32;
  if (!/^(?:0|[1-9]\d*)$/.test(length) || Number(length) > max) return `has a bad prefix length (use /0 to /${max})`;
  const network = networkOf(v6 ? ipaddr.IPv6.parse(address).toRFC5952String() : address, Number(length));
  if (parseIp(network.slice(0, network.indexOf('/'))).toString() !== parseIp(address).toString()) return `has host bits set: did you mean ${network}?`;
  return null;
}

/**
 * The one reader of an address or range an admin types (--allow, ALLOW, the verbs, explain):
 * the canonical CIDR (`10.0.0.1/32`, `10.0.0.0/8`, `2001:db8::/32`), or a message saying what is
 * wrong and what to write. Only canonical dotted quads (`010.0.0.1`, `10`, `127.1`, `0x7f.1` are
 * refused: inet_aton reads them as other addresses); IPv4-mapped IPv6 is the IPv4 address it
 * stands for; a zone index (`fe80::1%eth0`) is refused, it names a link, not an address.
 */
export function parseAdminRange(input: string): { cidr: string } | { problem: string } {
  const text = input.trim();
  if (text.includes('%')) {
    return { problem: `"${text}" has a zone index (%${text.slice(text.indexOf('%') + 1).split('/')[0]}): it names a network link, not an address; write the address without it (link-local clients are never blocked unless BLOCK_LINK_LOCAL=yes)` };
  }
  const problem = canonicalRangeProblem(text);
  if (problem !== null) return { problem: `"${text}" ${problem}` };
  const slash = text.indexOf('/');
  const address = slash === -1 ? text : text.slice(0, slash);
  const length = slash === -1 ? (address.includes(':') ? 128 : 32) : Number(text.slice(slash + 1));
  const canonical = address.includes(':') ? ipv6Text(ipv6Groups(address)!) : address;
  return { cidr: unmapRange(networkOf(canonical, length)) };
}

/** How a range is written back for the admin (ALLOW, messages): a host as its address, a range as its CIDR. */
export const rangeWord = (cidr: string): string => (cidr.endsWith(cidr.includes(':') ? '/128' : '/32') ? cidr.slice(0, cidr.lastIndexOf('/')) : cidr);

export function isValidRange(cidr: string): boolean {
  if (ipv4Cidr(cidr) !== null) return true;
  try {
    parseRange(cidr);
    return true;
  } catch {
    return false;
  }
}

/**
 * A range as numbers, for the checks the policy makes per candidate: its family, its address's
 * bits from the first word on (IPv4: its 32 bits in the first word), and its length. null for
 * text ipv4Cidr or readIp does not read (parseRange, through ipaddr.js, decides that).
 */
export interface WordRange {
  readonly v6: boolean;
  readonly words: Int32Array;
  readonly bits: number;
}

export function wordRange(cidr: string): WordRange | null {
  if (!cidr.includes(':')) {
    const v4 = ipv4Cidr(cidr);
    return v4 === null ? null : { v6: false, words: Int32Array.of(v4[0] | 0, 0, 0, 0), bits: v4[1] };
  }
  const slash = cidr.indexOf('/');
  const bits = slash === -1 ? 128 : plainLength(cidr, slash, 128);
  if (bits === -1 || !readsAsIpv6(slash === -1 ? cidr : cidr.slice(0, slash))) return null;
  const words = new Int32Array(4);
  groupsInto(words, 0);
  return { v6: true, words, bits };
}

/** rangesOverlap for word ranges: same family, and the first bits of the shorter length alike. */
export function wordRangesOverlap(a: WordRange, b: WordRange): boolean {
  if (a.v6 !== b.v6) return false;
  const bits = Math.min(a.bits, b.bits);
  for (let k = 0; k < 4 && bits > 32 * k; k++) {
    const keep = bits - 32 * k;
    const mask = keep >= 32 ? -1 : -1 << (32 - keep);
    if (((a.words[k]! ^ b.words[k]!) & mask) !== 0) return false;
  }
  return true;
}

/** Whether the address lies in the range (never across IPv4 and IPv6). */
export function inRange(ip: Ip, range: Range): boolean {
  return ip.kind() === range[0].kind() && ip.match(range);
}

/** Whether two CIDRs (text) share an address; IPv4 by integers, the rest through ipaddr.js. */
export function cidrsOverlap(a: string, b: string): boolean {
  if (a.includes(':') !== b.includes(':')) return false;
  const [x, y] = [ipv4Cidr(a), ipv4Cidr(b)];
  if (x !== null && y !== null) return ipv4Overlap(x, y);
  return rangesOverlap(parseRange(a), parseRange(b));
}

/** Whether two IPv4 ranges as ipv4Cidr gives them share an address. */
export function ipv4Overlap(x: readonly [number, number], y: readonly [number, number]): boolean {
  const mask = ipv4Mask(Math.min(x[1], y[1]));
  return (x[0] & mask) >>> 0 === (y[0] & mask) >>> 0;
}

export function rangesOverlap(a: Range, b: Range): boolean {
  if (a[0].kind() !== b[0].kind()) return false;
  return a[0].match(b) || b[0].match(a);
}

export function compareIps(a: Ip, b: Ip): number {
  const ba = a.toByteArray();
  const bb = b.toByteArray();
  if (ba.length !== bb.length) return ba.length - bb.length;
  for (let i = 0; i < ba.length; i++) if (ba[i] !== bb[i]) return ba[i]! - bb[i]!;
  return 0;
}

/**
 * By address, then shorter prefix first; IPv4 before IPv6. Through a sort key parsed once per
 * CIDR and kept: sorting 100,000 blocks parsed each CIDR ~34 times.
 */
export function compareCidrs(a: string, b: string): number {
  const ka = cidrSortKey(a);
  const kb = cidrSortKey(b);
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

/** `items` sorted as compareCidrs sorts their CIDRs, each key looked up once (a new array). */
export function sortByCidr<T>(items: readonly T[], cidrOf: (item: T) => string): T[] {
  const keyed = items.map((item) => ({ key: cidrSortKey(cidrOf(item)), item }));
  keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return keyed.map((k) => k.item);
}

const sortKeys = new Map<string, string>();

/** `4c0000200024` for 192.0.2.0/24: family, address bytes in hex, prefix length; strings that sort as compareCidrs does. */
export function cidrSortKey(cidr: string): string {
  let key = sortKeys.get(cidr);
  if (key === undefined) {
    const v4 = ipv4Cidr(cidr);
    const v6 = v4 === null ? wordRange(cidr) : null; // (IPv6 as readIp reads it: from its numbers, not through ipaddr.js)
    if (v4 !== null) key = `4${hex32(v4[0])}${String(v4[1]).padStart(3, '0')}`;
    else if (v6 !== null && v6.v6) key = `6${wordsHex(v6.words, 0)}${String(v6.bits).padStart(3, '0')}`;
    else {
      const [ip, bits] = parseRange(cidr);
      key = (ip.kind() === 'ipv4' ? '4' : '6') + Buffer.from(ip.toByteArray()).toString('hex') + String(bits).padStart(3, '0');
    }
    if (sortKeys.size >= 1 << 20) sortKeys.clear(); // bounded: blocks, not a flood's addresses, come here
    sortKeys.set(cidr, key);
  }
  return key;
}
