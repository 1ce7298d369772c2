/**
 * The manual page and the bash completion know what the CLI knows: every command, and every
 * firewall backend of the registry (a new backend that they do not name fails here).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FIREWALL_MODES } from '../../src/write/firewall/registry.js';
import { runBin } from '../helpers.js';

const ROOT = path.join(import.meta.dirname, '..', '..');
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');

describe('man page and completion', () => {
  const help = runBin(['help']).stdout;
  const section = help.slice(help.indexOf('Commands:'), help.indexOf('\n\n', help.indexOf('Commands:')));
  const commands = [...section.matchAll(/^ {2}([a-z][a-z-]*)\b/gm)].map((m) => m[1]!).filter((c) => c !== 'help');

  it('reads the commands from the help (a parser that found none would pass anything)', () => {
    expect(commands).toEqual(expect.arrayContaining(['run', 'status', 'install', 'load-firewall']));
  });

  it('the completion offers every command and every --firewall choice', () => {
    const completion = read('completions/smtpguard.bash');
    const offered = /local commands="([^"]*)"/.exec(completion)![1]!.split(' ');
    expect([...offered].sort()).toEqual([...commands].sort());
    expect(/--firewall\) COMPREPLY=\(\$\(compgen -W "([^"]*)"/.exec(completion)![1]!.split(' ')).toEqual([...FIREWALL_MODES]);
  });

  it('the manual page names every command and every --firewall choice', () => {
    const man = read('man/smtpguard.1').replace(/\\-/g, '-').replace(/\\f[BRIP]/g, '');
    const named = [...man.matchAll(/^\.BI? ([a-z][a-z-]*)/gm)].map((m) => m[1]!);
    for (const command of commands) expect(named).toContain(command);
    expect(/^\.BI --firewall " ([^"]*)"/m.exec(man)![1]!.split('|')).toEqual([...FIREWALL_MODES]);
  });
});
