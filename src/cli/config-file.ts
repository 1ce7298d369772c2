/**
 * The config file's grammar, and its careful editing. Pure: text in, text out.
 *
 * - `KEY=value` lines; blank lines and lines starting with `#` are comments.
 * - A `#` at the start of a word that follows whitespace (outside quotes) starts an
 *   inline comment: `THRESHOLD=5   # stricter`.
 * - Quotes as in a shell assignment: '...' keeps everything; "..." keeps everything but
 *   `\"`, `\\`, `\$` and `` \` ``; outside quotes `\x` is `x`. Nothing is expanded.
 * - Multi-value keys (LOG, ALLOW) take the words split on unquoted whitespace, and
 *   repeated lines add up; any other key given twice is an error naming both lines.
 *
 * Editing (install, allow) changes only the lines of the keys it sets and keeps every
 * other byte, comments included.
 */
import { SmtpguardError } from '../errors.js';

/** Keys whose value is a list of words, one or more lines. */
export const MULTI_VALUE_KEYS: ReadonlySet<string> = new Set(['LOG', 'ALLOW']);

export interface ConfigEntry {
  key: string;
  /** The words of the value, quotes removed. */
  words: string[];
  /** 1-based line numbers that set it (more than one only for multi-value keys). */
  lines: number[];
}

interface ParsedLine {
  key: string;
  words: string[];
  /** The inline comment with its `#`, or null. */
  comment: string | null;
}

const LINE = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$/;

/** One line: null for a blank or comment line; throws a plain Error saying what is wrong. */
function parseLine(raw: string): ParsedLine | null {
  const line = raw.replace(/\r$/, '');
  if (line.trim() === '' || line.trimStart().startsWith('#')) return null;
  const m = LINE.exec(line);
  if (m === null) throw new Error(`expected KEY=value, found ${JSON.stringify(raw)}`);
  const { words, comment } = splitWords(m[2]!);
  return { key: m[1]!, words, comment };
}

/** Shell-like words of a value, and the inline comment after them. */
export function splitWords(value: string): { words: string[]; comment: string | null } {
  const words: string[] = [];
  let word: string | null = null;
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (c === ' ' || c === '\t') {
      if (word !== null) words.push(word);
      word = null;
    } else if (c === '#' && word === null && i > 0 && (value[i - 1] === ' ' || value[i - 1] === '\t')) {
      return { words, comment: value.slice(i) };
    } else if (c === "'") {
      const end = value.indexOf("'", i + 1);
      if (end === -1) throw new Error("a ' quote is not closed");
      word = (word ?? '') + value.slice(i + 1, end);
      i = end;
    } else if (c === '"') {
      let text = '';
      let j = i + 1;
      for (; j < value.length && value[j] !== '"'; j++) {
        if (value[j] === '\\' && j + 1 < value.length && '"\\$`'.includes(value[j + 1]!)) j++;
        text += value[j];
      }
      if (j >= value.length) throw new Error('a " quote is not closed');
      word = (word ?? '') + text;
      i = j;
    } else if (c === '\\' && i + 1 < value.length) {
      word = (word ?? '') + value[i + 1];
      i++;
    } else {
      word = (word ?? '') + c;
    }
  }
  if (word !== null) words.push(word);
  return { words, comment: null };
}

/**
 * The entries of a config file, by key. `known` tells which keys exist; an unknown key,
 * a line that is not KEY=value, an open quote or a repeated single-value key is an error
 * with file:line.
 */
export function parseConfigText(text: string, file: string, known: ReadonlySet<string>): Map<string, ConfigEntry> {
  const entries = new Map<string, ConfigEntry>();
  text.split('\n').forEach((raw, index) => {
    const n = index + 1;
    let parsed: ParsedLine | null;
    try {
      parsed = parseLine(raw);
    } catch (error) {
      throw new SmtpguardError(`${file}:${n}: ${(error as Error).message}`, { hint: 'fix or remove the line (values are quoted as in a shell: KEY="two words")' });
    }
    if (parsed === null) return;
    if (!known.has(parsed.key)) {
      throw new SmtpguardError(`${file}:${n}: unknown key ${parsed.key}`, { hint: `known keys: ${[...known].join(', ')}` });
    }
    const previous = entries.get(parsed.key);
    if (previous === undefined) entries.set(parsed.key, { key: parsed.key, words: parsed.words, lines: [n] });
    else if (MULTI_VALUE_KEYS.has(parsed.key)) {
      for (const word of parsed.words) previous.words.push(word);
      previous.lines.push(n);
    } else {
      throw new SmtpguardError(`${file}:${n}: ${parsed.key} is set again (first on line ${previous.lines[0]})`, {
        hint: `keep one of the two lines (only ${[...MULTI_VALUE_KEYS].join(' and ')} may take several lines)`,
      });
    }
  });
  return entries;
}

/** A word written so that splitWords gives it back unchanged. */
export function quoteWord(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./*?[\]{}~^!-]+$/.test(word)) return word;
  if (!word.includes("'")) return `'${word}'`;
  return `"${word.replace(/["\\$`]/g, '\\$&')}"`;
}

export const renderConfigLine = (key: string, words: readonly string[]): string => `${key}=${words.map(quoteWord).join(' ')}`;

const sameWords = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((w, i) => w === b[i]);

/** Index of each line that sets `key` (parse errors are left for the reader to report). */
function linesOf(lines: readonly string[], key: string): number[] {
  const found: number[] = [];
  lines.forEach((line, i) => {
    const m = LINE.exec(line);
    if (m !== null && m[1] === key && !line.trimStart().startsWith('#')) found.push(i);
  });
  return found;
}

function safeParse(line: string): ParsedLine | null {
  try {
    return parseLine(line);
  } catch {
    return null;
  }
}

/**
 * Sets each key to its words, keeping every other line: a key already set to the same
 * words is left as it is; a key set elsewhere gets its first line replaced (its inline
 * comment kept) and its other lines removed; a new key goes after its commented
 * default line (`#KEY=...`), else at the end. `text` null: the file does not exist yet,
 * `header` starts it.
 */
export function setConfigValues(text: string | null, values: ReadonlyMap<string, readonly string[]>, header: string): string {
  const lines = (text ?? header).split('\n');
  const endsWithNewline = lines.at(-1) === '';
  if (endsWithNewline) lines.pop();
  for (const [key, words] of values) {
    const at = linesOf(lines, key);
    const current = at.flatMap((i) => safeParse(lines[i]!)?.words ?? []);
    if (at.length > 0 && sameWords(current, words)) continue;
    const line = renderConfigLine(key, words);
    if (at.length > 0) {
      const comment = safeParse(lines[at[0]!]!)?.comment ?? null;
      lines[at[0]!] = comment === null ? line : `${line}  ${comment}`;
      for (const i of at.slice(1).reverse()) lines.splice(i, 1);
      continue;
    }
    const commented = lines.findIndex((l) => new RegExp(`^#\\s*${key}=`).test(l));
    if (commented === -1) lines.push(line);
    else lines.splice(commented + 1, 0, line);
  }
  return lines.join('\n') + '\n';
}

/** Appends one word of a multi-value key as a line of its own, with a comment. */
export function addConfigWord(text: string | null, key: string, word: string, comment: string | null, header: string): string {
  const base = text ?? header;
  const line = renderConfigLine(key, [word]) + (comment === null || comment.trim() === '' ? '' : `  # ${comment.replace(/\s+/g, ' ').trim()}`);
  return `${base}${base === '' || base.endsWith('\n') ? '' : '\n'}${line}\n`;
}

/**
 * Removes one word of a multi-value key from every line that holds it (a line left
 * with no word goes, with its comment). Returns null when no line holds it.
 */
export function removeConfigWord(text: string, key: string, word: string): string | null {
  const lines = text.split('\n');
  let found = false;
  for (const i of linesOf(lines, key).reverse()) {
    const parsed = safeParse(lines[i]!);
    if (parsed === null || !parsed.words.includes(word)) continue;
    found = true;
    const rest = parsed.words.filter((w) => w !== word);
    if (rest.length === 0) lines.splice(i, 1);
    else lines[i] = renderConfigLine(key, rest) + (parsed.comment === null ? '' : `  ${parsed.comment}`);
  }
  return found ? lines.join('\n') : null;
}
