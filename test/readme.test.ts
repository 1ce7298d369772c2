/**
 * README's samples are what the program prints (issue 21): each sample below is run on the
 * bundled examples and compared with the README, so the docs cannot drift from the output.
 */
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runBin } from './helpers.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const README = readFileSync(path.join(ROOT, 'README.md'), 'utf8');

/** The fenced block whose first line is `$ COMMAND...`: the command's words and the lines under it. */
function sample(prefix: string): { args: string[]; lines: string[] } {
  const at = README.indexOf(`\`\`\`\n$ ${prefix}`);
  expect(at, `README has a sample starting "$ ${prefix}"`).toBeGreaterThan(-1);
  const block = README.slice(at + 4, README.indexOf('\n```', at + 4));
  const [command, ...lines] = block.split('\n');
  const words = command!.slice(2).match(/'[^']*'|\S+/g)!.map((w) => w.replace(/^'(.*)'$/, '$1'));
  return { args: words.slice(words[0] === 'npx' ? 2 : 1), lines };
}

describe('README samples', () => {
  it('the scan sample is what scan prints on the bundled examples', () => {
    const { args, lines } = sample('npx smtpguard scan');
    const state = mkdtempSync(path.join(tmpdir(), 'smtpguard-readme-'));
    try {
      const r = runBin(args, { cwd: ROOT, env: { PATH: process.env.PATH, TZ: 'UTC', SMTPGUARD_STATE_DIR: state } });
      expect(r.code).toBe(0);
      const timing = (l: string) => l.replace(/ in \d+\.\d+ s( \(\d+ MB\/s\))?\.$/, ' in S s.');
      expect(r.stdout.trimEnd().split('\n').map(timing)).toEqual(lines.map(timing));
    } finally {
      rmSync(state, { recursive: true, force: true });
    }
  });

  it('the config sample: every line shown (but the machine-dependent first ones) is in the output, in order', () => {
    const { args, lines } = sample('smtpguard config');
    const r = runBin(args, { env: { PATH: process.env.PATH, TZ: 'UTC' } });
    expect(r.code).toBe(0);
    const out = r.stdout.split('\n');
    let at = 0;
    for (const line of lines.filter((l) => l !== '...' && !l.startsWith('# read') && !l.startsWith('MAP_TYPE'))) {
      const found = out.indexOf(line, at);
      expect(found, line).toBeGreaterThanOrEqual(0);
      at = found + 1;
    }
  });
});
