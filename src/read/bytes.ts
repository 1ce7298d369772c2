/** Byte helpers for the parts of the parser that read log bytes in place (latin1: one byte a character). Pure. */

/** `text` as bytes, one per character (its characters are all latin1). */
export const latin1Bytes = (text: string): Uint8Array => Buffer.from(text, 'latin1');

export const isDigit = (c: number | undefined): boolean => c !== undefined && c >= 48 && c <= 57;

/** Whether `b[at..end)` starts with `pattern`. */
export function bytesAt(b: Uint8Array, at: number, end: number, pattern: Uint8Array): boolean {
  if (at + pattern.length > end) return false;
  for (let k = 0; k < pattern.length; k++) if (b[at + k] !== pattern[k]) return false;
  return true;
}

/** Where `pattern` first starts in `b[from..end)`, or -1. */
export function indexOfBytes(b: Uint8Array, from: number, end: number, pattern: Uint8Array): number {
  const first = pattern[0]!;
  const last = end - pattern.length;
  for (let i = from; i <= last; i++) {
    if (b[i] !== first) continue;
    let k = 1;
    while (k < pattern.length && b[i + k] === pattern[k]) k++;
    if (k === pattern.length) return i;
  }
  return -1;
}
