/** The ground truth: the events the parser must find, counted as each line is handed out. */
import { EVENT_KINDS, type EventKind } from '../../src/read/kinds.js';


/**
 * Events the parser must find, per normalised client address (IPv4 dotted quad;
 * IPv6 RFC 5952; IPv4-mapped IPv6 counted as the IPv4 address), by kind.
 */
export interface GroundTruth {
  [address: string]: Partial<Record<EventKind, number>>;
}

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
