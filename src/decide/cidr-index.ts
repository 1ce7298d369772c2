/**
 * CIDRs found by containment without comparing each with each. A range holds another when
 * the other's network, cut to the first one's length, is the first one: so the entries that
 * hold a CIDR are a few Map lookups (one per prefix length in use: /32, /24, /128, /64, /48,
 * an admin's /16), and the entries inside a CIDR are one lookup in an index by network at
 * that length, built the first time that length is asked for. Ten thousand blocks against
 * ten thousand ban records was 10^8 range comparisons; this is about 10^5 lookups. Pure.
 *
 * Keys are canonical CIDRs with their length (`192.0.2.7/32`, `2001:db8:1:2::/64`), as
 * networkOf writes them.
 */
import { networkOf } from '../address.js';

export class CidrIndex<T> {
  private readonly entries = new Map<string, T>();
  /** Per family: the prefix lengths in use, and how many entries have each. */
  private readonly lengths: Record<4 | 6, Map<number, number>> = { 4: new Map(), 6: new Map() };
  /** `family/L` -> network at /L -> the entries of length >= L inside it. */
  private readonly byNetwork = new Map<string, Map<string, Set<string>>>();

  constructor(entries: Iterable<readonly [string, T]> = []) {
    for (const [cidr, value] of entries) this.set(cidr, value);
  }

  get size(): number {
    return this.entries.size;
  }

  get(cidr: string): T | undefined {
    return this.entries.get(cidr);
  }

  has(cidr: string): boolean {
    return this.entries.has(cidr);
  }

  values(): IterableIterator<T> {
    return this.entries.values();
  }

  [Symbol.iterator](): IterableIterator<[string, T]> {
    return this.entries[Symbol.iterator]();
  }

  set(cidr: string, value: T): this {
    if (!this.entries.has(cidr)) {
      const { family, address, bits } = split(cidr);
      const lengths = this.lengths[family];
      lengths.set(bits, (lengths.get(bits) ?? 0) + 1);
      for (const [key, index] of this.byNetwork) {
        const [f, l] = key.split('/').map(Number) as [number, number];
        if (f === family && l <= bits) add(index, l === bits ? cidr : networkOf(address, l), cidr);
      }
    }
    this.entries.set(cidr, value);
    return this;
  }

  delete(cidr: string): boolean {
    if (!this.entries.delete(cidr)) return false;
    const { family, address, bits } = split(cidr);
    const lengths = this.lengths[family];
    const left = (lengths.get(bits) ?? 1) - 1;
    if (left === 0) lengths.delete(bits);
    else lengths.set(bits, left);
    for (const [key, index] of this.byNetwork) {
      const [f, l] = key.split('/').map(Number) as [number, number];
      if (f === family && l <= bits) index.get(l === bits ? cidr : networkOf(address, l))?.delete(cidr);
    }
    return true;
  }

  /** The entries whose range holds `cidr`'s (an entry equal to it included). */
  containing(cidr: string): Array<[string, T]> {
    const { family, address, bits } = split(cidr);
    const out: Array<[string, T]> = [];
    for (const length of this.lengths[family].keys()) {
      if (length > bits) continue;
      const key = length === bits ? cidr : networkOf(address, length);
      const value = this.entries.get(key);
      if (value !== undefined || this.entries.has(key)) out.push([key, value as T]);
    }
    return out;
  }

  /** The entries inside `cidr`'s range (an entry equal to it included). */
  inside(cidr: string): Array<[string, T]> {
    const { family, bits } = split(cidr);
    const key = `${family}/${bits}`;
    let index = this.byNetwork.get(key);
    if (index === undefined) {
      index = new Map();
      for (const entry of this.entries.keys()) {
        const e = split(entry);
        if (e.family === family && e.bits >= bits) add(index, e.bits === bits ? entry : networkOf(e.address, bits), entry);
      }
      this.byNetwork.set(key, index);
    }
    return [...(index.get(cidr) ?? [])].map((c) => [c, this.entries.get(c) as T]);
  }
}

function split(cidr: string): { family: 4 | 6; address: string; bits: number } {
  const slash = cidr.lastIndexOf('/');
  return { family: cidr.includes(':') ? 6 : 4, address: cidr.slice(0, slash), bits: Number(cidr.slice(slash + 1)) };
}

function add(index: Map<string, Set<string>>, network: string, cidr: string): void {
  const members = index.get(network);
  if (members === undefined) index.set(network, new Set([cidr]));
  else members.add(cidr);
}
