/** The section of bench/results.md that npm run bench:firewall writes (the rest of the file is bench/run.ts's), and its tables. */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { RESULTS } from './common.js';

/** The markers of the section in results.md: found by their exact text, so they stay as first written (naming the bench's old single file). */
export const BEGIN = '<!-- BEGIN firewall-and-maps: written by npm run bench:firewall (bench/firewall.ts) -->';
const END = '<!-- END firewall-and-maps -->';

const cell = (text: string) => text.replace(/\|/g, '\\|');
export const table = (header: readonly string[], rows: readonly string[][]) => [header, header.map(() => '---'), ...rows].map((r) => `| ${r.map(cell).join(' | ')} |`).join('\n');

/** The section of results.md between BEGIN and END: its parts, kept from the last run when this run did not make them. */
export function previousParts(): Record<string, string> {
  const text = existsSync(RESULTS) ? readFileSync(RESULTS, 'utf8') : '';
  const start = text.indexOf(BEGIN);
  const end = text.indexOf(END);
  const parts: Record<string, string> = {};
  if (start === -1 || end === -1) return parts;
  for (const m of text.slice(start, end).matchAll(/<!-- part:(\w+) -->\n([\s\S]*?)<!-- \/part -->/g)) parts[m[1]!] = m[2]!;
  return parts;
}

export function writeSection(parts: Record<string, string>, meta: string): string {
  const part = (name: string, fallback: string) => `<!-- part:${name} -->\n${parts[name] ?? fallback}<!-- /part -->`;
  const section = `${BEGIN}
## Firewall and maps at scale

${meta}

${part('firewall', '(not measured yet)\n')}

${part('maps', '(not measured yet)\n')}

${part('sources', '(not measured yet)\n')}

${part('follow', '(not measured yet)\n')}
${END}`;
  const text = existsSync(RESULTS) ? readFileSync(RESULTS, 'utf8') : '';
  const start = text.indexOf(BEGIN);
  const end = text.indexOf(END);
  const next = start !== -1 && end !== -1 ? text.slice(0, start) + section + text.slice(end + END.length) : `${text.replace(/\n*$/, '\n\n')}${section}\n`;
  writeFileSync(RESULTS, next);
  return section;
}
