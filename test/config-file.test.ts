import { describe, expect, it } from 'vitest';
import { addConfigWord, parseConfigText, quoteWord, removeConfigWord, setConfigValues, splitWords } from '../src/cli/config-file.js';
import { summaryLine } from '../src/report/plan-report.js';
import type { Plan } from '../src/write/plan.js';
import { findOtherMapUses, repairSection } from '../src/write/install.js';

const KNOWN = new Set(['LOG', 'ALLOW', 'THRESHOLD', 'REJECT_TEXT', 'WINDOW']);

describe('config values are shell-like words', () => {
  it.each([
    ['5   # stricter', ['5'], '# stricter'],
    ['"/var/log/mail.log"  # mine', ['/var/log/mail.log'], '# mine'],
    ['Go away # no', ['Go', 'away'], '# no'],
    ['a#b', ['a#b'], null],
    ['#x', ['#x'], null],
    [" '/var/log/my mail.log' /var/log/other", ['/var/log/my mail.log', '/var/log/other'], null],
    ['"say \\"hi\\" \\\\ $x"', ['say "hi" \\ $x'], null],
    ['a\\ b', ['a b'], null],
    ['"it\'s"', ["it's"], null],
    ['', [], null],
  ])('%j', (value, words, comment) => {
    expect(splitWords(value)).toEqual({ words, comment });
  });

  it.each(['plain', 'two words', "it's", 'a#b', '# hash', '$HOME', 'say "hi" \\', '', '/var/log/mail.log*'])('quoteWord(%j) reads back the same', (word) => {
    expect(splitWords(quoteWord(word)).words).toEqual([word]);
  });

  it('an open quote is an error with file:line', () => {
    expect(() => parseConfigText('THRESHOLD=5\nLOG="/var/log\n', 'f.conf', KNOWN)).toThrow(/^f\.conf:2: a " quote is not closed$/);
  });

  it('multi-value keys add up over lines; single-value keys may not repeat', () => {
    const entries = parseConfigText('ALLOW=192.0.2.1 192.0.2.2\n#ALLOW=x\nALLOW=2001:db8::/32 # office\n', 'f', KNOWN);
    expect(entries.get('ALLOW')).toEqual({ key: 'ALLOW', words: ['192.0.2.1', '192.0.2.2', '2001:db8::/32'], lines: [1, 3] });
    expect(() => parseConfigText('WINDOW=1d\nWINDOW=2d\n', 'f', KNOWN)).toThrow(/^f:2: WINDOW is set again \(first on line 1\)$/);
  });
});

describe('editing a config file', () => {
  const header = '# header\n#THRESHOLD=10\n#LOG=/var/log/mail.log*\n';

  it('a new file: the header, each key after its commented default', () => {
    expect(setConfigValues(null, new Map([['THRESHOLD', ['3']], ['LOG', ['/a b', '/c']]]), header)).toBe("# header\n#THRESHOLD=10\nTHRESHOLD=3\n#LOG=/var/log/mail.log*\nLOG='/a b' /c\n");
  });

  it('keeps every other line, the inline comment, and a key already right untouched', () => {
    const text = '# mine\nTHRESHOLD=8   # stricter\nLOG=/x\nLOG=/y  # two lines\nWINDOW = 2d\n';
    expect(setConfigValues(text, new Map([['THRESHOLD', ['4']]]), header)).toBe('# mine\nTHRESHOLD=4  # stricter\nLOG=/x\nLOG=/y  # two lines\nWINDOW = 2d\n');
    expect(setConfigValues(text, new Map([['LOG', ['/x', '/y']], ['WINDOW', ['2d']]]), header)).toBe(text);
    expect(setConfigValues(text, new Map([['LOG', ['/z']]]), header)).toBe('# mine\nTHRESHOLD=8   # stricter\nLOG=/z\nWINDOW = 2d\n');
    expect(setConfigValues('# only a comment', new Map([['REJECT_TEXT', ['Go away']]]), header)).toBe("# only a comment\nREJECT_TEXT='Go away'\n");
  });

  it('adds and removes one ALLOW entry', () => {
    const added = addConfigWord('WINDOW=1d\n', 'ALLOW', '192.0.2.9', 'the backup MX', header);
    expect(added).toBe('WINDOW=1d\nALLOW=192.0.2.9  # the backup MX\n');
    expect(removeConfigWord(added, 'ALLOW', '192.0.2.9')).toBe('WINDOW=1d\n');
    expect(removeConfigWord('ALLOW=192.0.2.1 192.0.2.9 # two\n', 'ALLOW', '192.0.2.9')).toBe('ALLOW=192.0.2.1  # two\n');
    expect(removeConfigWord('ALLOW=192.0.2.1\n', 'ALLOW', '192.0.2.9')).toBeNull();
  });
});

describe('the summary line names the changes', () => {
  const plan = (added: string[], removed: string[], blocks: number, decided: object[] = []) =>
    ({ decision: { blocks: decided }, summary: { blocks, added: added.length, removed: removed.length, addedCidrs: added, removedCidrs: removed, leftOut: 0, leftOutOfMap: 0 } }) as unknown as Plan;

  it('says when a block comes back with a longer ban', () => {
    const decided = [{ cidr: '203.0.113.5/32', times: 3, banFor: '4d' }, { cidr: '198.51.100.0/24', times: 1, banFor: '24h' }];
    expect(summaryLine(plan(['198.51.100.0/24', '203.0.113.5/32'], [], 2, decided))).toBe('blocks: 2 (+2 -0) +198.51.100.0/24 +203.0.113.5/32 (3rd time, 4d)');
  });

  it('names each new and gone block', () => {
    expect(summaryLine(plan(['198.51.100.0/24', '2001:db8:1:2::/64'], ['203.0.113.5/32'], 12))).toBe('blocks: 12 (+2 -1) +198.51.100.0/24 +2001:db8:1:2::/64 -203.0.113.5/32');
    expect(summaryLine(plan([], [], 3))).toBe('blocks: 3 (+0 -0)');
  });

  it('names at most 10, then counts the rest', () => {
    const many = Array.from({ length: 13 }, (_, i) => `192.0.2.${i + 1}/32`);
    const line = summaryLine(plan(many, ['203.0.113.5/32'], 20));
    expect(line).toBe(`blocks: 20 (+13 -1) ${many.slice(0, 10).map((c) => `+${c}`).join(' ')} and 4 more`);
  });
});

describe('install edges', () => {
  it('finds the map where main.cf or master.cf uses it other than as a client map', () => {
    const map = '/etc/postfix/sender_access';
    const main = `smtpd_client_restrictions = check_client_access hash:${map}, permit\nsmtpd_sender_restrictions = check_sender_access hash:${map}\nother = x`;
    expect(findOtherMapUses(main, '', map)).toEqual([`main.cf: smtpd_sender_restrictions = check_sender_access hash:${map}`]);
    expect(findOtherMapUses('', `submission/inet/smtpd_recipient_restrictions = check_recipient_access proxy:hash:${map},reject`, map)).toHaveLength(1);
    expect(findOtherMapUses(`sender_canonical_maps = hash:${map}`, '', map)).toHaveLength(1);
    expect(findOtherMapUses(`smtpd_client_restrictions = check_client_access hash:${map}\nx = hash:${map}_other`, '', map)).toEqual([]);
  });

  it('puts back a missing END (or BEGIN) marker around the generated lines', () => {
    const generated = (l: string) => l.startsWith('-A ufw-smtpguard -s ');
    expect(repairSection('a\n# BEGIN smtpguard\n-A ufw-smtpguard -s 192.0.2.7/32 -j x\nCOMMIT\n', generated)).toBe('a\n# BEGIN smtpguard\n-A ufw-smtpguard -s 192.0.2.7/32 -j x\n# END smtpguard\nCOMMIT\n');
    expect(repairSection('a\n-A ufw-smtpguard -s 192.0.2.7/32 -j x\n# END smtpguard\n', generated)).toMatch(/^a\n# BEGIN smtpguard \(generated[^\n]*\n-A ufw-smtpguard/);
    expect(repairSection('a\n', generated)).toBe('a\n');
  });
});
