/** One table of exit codes (errors.ts): `run --help` prints it, and the man page and README name the same codes. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { EXIT_MEANINGS, ExitCode } from '../../src/errors.js';
import { runBin } from '../helpers.js';

const read = (file: string) => readFileSync(fileURLToPath(new URL(`../../${file}`, import.meta.url)), 'utf8');
const codes = Object.values(ExitCode).sort((a, b) => a - b);

describe('exit codes', () => {
  it('every ExitCode has a meaning, and nothing else does', () => {
    expect(Object.keys(EXIT_MEANINGS).map(Number)).toEqual(codes);
  });

  it('run --help lists each code with its meaning, time limit (8) included', () => {
    const help = runBin(['run', '--help']).stdout;
    const listed = help.slice(help.indexOf('Exit status:')).split('\n').slice(1).map((l) => /^ {2}(\d) {2}(.+)$/.exec(l)).filter((m) => m !== null);
    expect(listed.map((m) => [Number(m[1]), m[2]])).toEqual(codes.map((c) => [c, EXIT_MEANINGS[c]]));
    expect(help).toMatch(/ 8 {2}the run took longer than --timeout/);
  });

  it("the man page's EXIT STATUS names the same codes, in order", () => {
    const man = read('man/smtpguard.1');
    const section = man.slice(man.indexOf('.SH EXIT STATUS'), man.indexOf('.SH', man.indexOf('.SH EXIT STATUS') + 1));
    expect([...section.matchAll(/^\.B (\d+)$/gm)].map((m) => Number(m[1]))).toEqual(codes);
  });

  it("README's Exit codes table names the same codes, in order", () => {
    const readme = read('README.md');
    const section = readme.slice(readme.indexOf('## Exit codes'), readme.indexOf('\n## ', readme.indexOf('## Exit codes') + 1));
    expect([...section.matchAll(/^\| (\d+) \|/gm)].map((m) => Number(m[1]))).toEqual(codes);
  });
});
