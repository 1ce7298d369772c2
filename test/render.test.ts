import { describe, expect, it } from 'vitest';
import type { Block } from '../src/decide/policy.js';
import { rejectTextProblem, renderAccessMap } from '../src/write/access-map.js';
import { findSection, replaceSection, sectionLines } from '../src/write/sections.js';
import { checkUfwFile, sectionCidrs } from '../src/write/firewall/ufw.js';
import { checkUfwLine, renderUfwRules } from '../src/write/firewall/rules.js';
import { parseSaveFile, renderSaveFile } from '../src/write/firewall/ipset.js';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const blocks: Block[] = [
  { cidr: '2001:db8:1:2::/64', family: 6, addresses: ['2001:db8:1:2::a', '2001:db8:1:2::b'], addressCount: 2, total: 6, reason: 'prefix' },
  { cidr: '198.51.100.0/24', family: 4, addresses: ['198.51.100.1', '198.51.100.9'], addressCount: 2, total: 30, reason: 'subnet' },
  { cidr: '192.0.2.10/32', family: 4, addresses: ['192.0.2.10'], addressCount: 1, total: 12, reason: 'host' },
  { cidr: '192.0.2.9/32', family: 4, addresses: ['192.0.2.9'], addressCount: 1, total: 12, reason: 'host' },
  { cidr: '2001:db8::7/128', family: 6, addresses: ['2001:db8::7'], addressCount: 1, total: 3, reason: 'host' },
];

describe('ufw lines', () => {
  it('IPv4 in before.rules, IPv6 in before6.rules, sorted by address', () => {
    expect(renderUfwRules(blocks, 4, 'ufw-smtpguard')).toEqual([
      '-A ufw-smtpguard -s 192.0.2.9/32 -j ufw-smtpguard-log',
      '-A ufw-smtpguard -s 192.0.2.10/32 -j ufw-smtpguard-log',
      '-A ufw-smtpguard -s 198.51.100.0/24 -j ufw-smtpguard-log',
    ]);
    expect(renderUfwRules(blocks, 6, 'ufw6-smtpguard')).toEqual([
      '-A ufw6-smtpguard -s 2001:db8::7/128 -j ufw6-smtpguard-log',
      '-A ufw6-smtpguard -s 2001:db8:1:2::/64 -j ufw6-smtpguard-log',
    ]);
  });

  it('gives the same bytes whatever the order of the blocks', () => {
    expect(renderUfwRules([...blocks].reverse(), 4, 'c')).toEqual(renderUfwRules(blocks, 4, 'c'));
  });
});

describe('access map lines', () => {
  it('hash-like maps: three-octet key for a /24, each IPv6 address as Postfix logs it', () => {
    expect(renderAccessMap(blocks, 'hash', 'blocked')).toEqual([
      '192.0.2.9 REJECT blocked',
      '192.0.2.10 REJECT blocked',
      '198.51.100 REJECT blocked',
      '2001:db8::7 REJECT blocked',
      '2001:db8:1:2::a REJECT blocked',
      '2001:db8:1:2::b REJECT blocked',
    ]);
    expect(renderAccessMap(blocks, 'lmdb', 'x')).toEqual(renderAccessMap(blocks, 'hash', 'x'));
  });

  it('cidr maps: the blocks as they are', () => {
    expect(renderAccessMap(blocks, 'cidr', 'blocked')).toEqual([
      '192.0.2.9/32 REJECT blocked',
      '192.0.2.10/32 REJECT blocked',
      '198.51.100.0/24 REJECT blocked',
      '2001:db8::7/128 REJECT blocked',
      '2001:db8:1:2::/64 REJECT blocked',
    ]);
  });

  it.each(['', ' leading space', 'two\nlines', 'tab\there', 'ümlaut', 'x'.repeat(201)])('refuses reject text %j', (text) => {
    expect(rejectTextProblem(text)).toMatch(/printable ASCII/);
  });

  it('accepts ordinary reject text', () => {
    expect(rejectTextProblem('Access denied (smtpguard)')).toBeNull();
  });
});

const FILE = 'head\n# BEGIN smtpguard (generated)\nold 1\nold 2\n# END smtpguard\ntail\n';

describe('sections', () => {
  it('replaces only the body and keeps every other byte', () => {
    const section = findSection(FILE, 'f');
    expect(sectionLines(FILE, section)).toEqual(['old 1', 'old 2']);
    expect(replaceSection(FILE, section, ['new'])).toBe('head\n# BEGIN smtpguard (generated)\nnew\n# END smtpguard\ntail\n');
    expect(replaceSection(FILE, section, [])).toBe('head\n# BEGIN smtpguard (generated)\n# END smtpguard\ntail\n');
    const crlf = 'a\r\n# BEGIN smtpguard\n# END smtpguard\r\nz\r\n';
    expect(replaceSection(crlf, findSection(crlf, 'f'), ['x'])).toBe('a\r\n# BEGIN smtpguard\nx\n# END smtpguard\r\nz\r\n');
  });

  it.each([
    ['no markers', 'a\nb\n', /f has no "# BEGIN smtpguard" marker line -- run "smtpguard install"/],
    ['no END', 'a\n# BEGIN smtpguard\n-A x\n', /^f has "# BEGIN smtpguard" on line 2 but no "# END smtpguard" line -- add the line "# END smtpguard" after line 2 and the generated lines below it, or remove line 2; "smtpguard install" puts it back/],
    ['no BEGIN', 'a\nb\n# END smtpguard\n', /^f has "# END smtpguard" on line 3 but no "# BEGIN smtpguard" line -- add the line "# BEGIN smtpguard" before line 3/],
    ['two sections', FILE + FILE, /f has 2 "# BEGIN smtpguard" and 2 "# END smtpguard" lines/],
    ['misordered', '# END smtpguard\n# BEGIN smtpguard\n', /f has "# END smtpguard" before "# BEGIN smtpguard"/],
  ])('%s is an error naming the file and the fix', (_name, text, message) => {
    expect(() => {
      try {
        findSection(text, 'f');
      } catch (error) {
        const e = error as Error & { hint?: string };
        throw new Error(`${e.message} -- ${e.hint}`);
      }
    }).toThrow(message);
  });

  it('a marker must start its line', () => {
    expect(() => findSection('x # BEGIN smtpguard\n# END smtpguard\n', 'f')).toThrow(/no "# BEGIN smtpguard"/);
  });
});

describe('ufw file checks', () => {
  const rules = (declare: string) =>
    `*filter\n:ufw-before-input - [0:0]\n${declare}# End required lines\n# BEGIN smtpguard\n# END smtpguard\nCOMMIT\n`;

  it('accepts a file that declares both chains', () => {
    const text = rules(':ufw-smtpguard - [0:0]\n:ufw-smtpguard-log - [0:0]\n');
    expect(() => checkUfwFile(text, findSection(text, 'f'), 'f', 'ufw-smtpguard')).not.toThrow();
  });

  it('refuses a file whose chains are not declared', () => {
    const text = rules(':ufw-smtpguard - [0:0]\n');
    expect(() => checkUfwFile(text, findSection(text, 'f'), 'f', 'ufw-smtpguard')).toThrow(/does not declare the chain ufw-smtpguard-log/);
  });

  it('refuses chains declared only in another table', () => {
    const text = `*nat\n:ufw-smtpguard - [0:0]\n:ufw-smtpguard-log - [0:0]\nCOMMIT\n${rules('')}`;
    expect(() => checkUfwFile(text, findSection(text, 'f'), 'f', 'ufw-smtpguard')).toThrow(/does not declare the chain ufw-smtpguard in its \*filter table/);
  });

  it('refuses a section outside the *filter table', () => {
    const text = ':ufw-smtpguard - [0:0]\n:ufw-smtpguard-log - [0:0]\n*filter\nCOMMIT\n# BEGIN smtpguard\n# END smtpguard\n';
    expect(() => checkUfwFile(text, findSection(text, 'f'), 'f', 'ufw-smtpguard')).toThrow(/not inside the \*filter table/);
  });
});

describe('exceptions inside a range blocked whole (issue 20)', () => {
  const withExceptions: Block[] = [
    { cidr: '192.0.2.0/24', family: 4, addresses: ['192.0.2.40'], addressCount: 5, total: 30, reason: 'subnet', exceptions: ['192.0.2.20/32'] },
    { cidr: '2001:db8:1:2::/64', family: 6, addresses: ['2001:db8:1:2::b'], addressCount: 9, total: 30, reason: 'prefix', exceptions: ['2001:db8:1:2::a/128'] },
  ];

  it('ufw: a RETURN line for each exception, ahead of its range; checked, and no block when read back', async () => {
    const lines = renderUfwRules(withExceptions, 4, 'ufw-smtpguard');
    expect(lines).toEqual(['-A ufw-smtpguard -s 192.0.2.20/32 -j RETURN', '-A ufw-smtpguard -s 192.0.2.0/24 -j ufw-smtpguard-log']);
    for (const line of lines) expect(() => checkUfwLine(line, 'ufw-smtpguard')).not.toThrow();
    expect(() => checkUfwLine('-A ufw-smtpguard -s 192.0.2.20/32 -j ACCEPT', 'ufw-smtpguard')).toThrow();
    expect(sectionCidrs(lines, 'ufw-smtpguard', new Map())).toEqual(['192.0.2.0/24']);
    expect(renderUfwRules(withExceptions, 6, 'ufw6-smtpguard')).toEqual(['-A ufw6-smtpguard -s 2001:db8:1:2::a/128 -j RETURN', '-A ufw6-smtpguard -s 2001:db8:1:2::/64 -j ufw6-smtpguard-log']);
  });

  it('ipset: a nomatch member, which the save file reader does not count as a block', () => {
    const save = renderSaveFile(withExceptions);
    expect(save).toContain('add smtpguard4 192.0.2.0/24\nadd smtpguard4 192.0.2.20/32 nomatch\n');
    expect(parseSaveFile(save).get('smtpguard4')).toEqual(['192.0.2.0/24']);
  });

  it('access map: DUNNO for the exception (first in a cidr map), which real postmap indexes', () => {
    expect(renderAccessMap(withExceptions, 'hash', 'no')).toEqual(['192.0.2.20 DUNNO', '192.0.2 REJECT no', '2001:db8:1:2::b REJECT no']);
    expect(renderAccessMap(withExceptions, 'cidr', 'no')).toEqual(['192.0.2.20/32 DUNNO', '192.0.2.0/24 REJECT no', '2001:db8:1:2::a/128 DUNNO', '2001:db8:1:2::/64 REJECT no']);
    const dir = mkdtempSync(path.join(tmpdir(), 'smtpguard-render-'));
    try {
      const map = path.join(dir, 'access');
      writeFileSync(map, renderAccessMap(withExceptions, 'hash', 'no').join('\n') + '\n');
      execFileSync('postmap', [`hash:${map}`]);
      const q = (key: string) => spawnSync('postmap', ['-q', key, `hash:${map}`], { encoding: 'utf8' }).stdout.trim();
      expect(q('192.0.2.20')).toBe('DUNNO');
      expect(q('192.0.2')).toBe('REJECT no');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
