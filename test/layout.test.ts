/**
 * The layout is the architecture: each folder of src/ is a stage, and a stage imports only
 * from the stages below it (and the shared modules at the top of src/). This test reads every
 * import of src/ (static, dynamic and type-only) and fails on any arrow that runs up the stages.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = path.join(import.meta.dirname, '..', 'src');

/**
 * Lowest first. `shared`: the modules directly in src/ (address, duration, errors, text, trust,
 * version, warn), which every stage may import. Two folders of one rank may not import each other.
 */
const RANKS: Readonly<Record<string, number>> = {
  shared: 0,
  read: 1, // log lines -> events (parse, kinds, byte patterns, sources, journal)
  count: 2, // events -> tallies per address and minute, summaries (pure)
  decide: 3, // summaries -> blocks: policy, bans, overrides, fleet (pure)
  store: 4, // what is kept between runs, and the atomic writer
  scan: 5, // the scan engine: logs (read) into tallies (count) with the scan state (store)
  write: 6, // blocks -> generated sections, firewall backends, apply
  crowdsec: 6, // sharing blocks through CrowdSec's Local API
  report: 7, // what the admin reads
  cli: 8, // commands, settings, config file
  main: 9, // src/main.ts: the entry point
};

/** Arrows up the stages that are allowed, each with the reason it is sound. Keep this short. */
const ALLOWED: ReadonlyArray<{ from: string; to: string; typeOnly: boolean; why: string }> = [];

interface Arrow {
  from: string;
  to: string;
  typeOnly: boolean;
}

function stageOf(file: string): string {
  const relative = path.relative(SRC, file);
  if (relative === 'main.ts') return 'main';
  const folder = relative.split(path.sep)[0]!;
  return folder.endsWith('.ts') ? 'shared' : folder;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sourceFiles(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []));
}

function arrowsOf(file: string): Arrow[] {
  const text = readFileSync(file, 'utf8');
  const arrows: Arrow[] = [];
  const at = (specifier: string, typeOnly: boolean) => {
    if (!specifier.startsWith('.')) return;
    const target = path.resolve(path.dirname(file), specifier.replace(/\.js$/, '.ts'));
    arrows.push({ from: path.relative(SRC, file), to: path.relative(SRC, target), typeOnly });
  };
  // static imports and re-exports (one line or several, either quote), and side-effect imports
  for (const m of text.matchAll(/^\s*(import|export)\s+(type\s+)?([^;]*?)\s*from\s*(['"])([^'"]+)\4/gms)) {
    const everyNameTyped = /\{([^}]*)\}/.exec(m[3]!)?.[1]?.split(',').filter((n) => n.trim() !== '').every((n) => n.trim().startsWith('type ')) ?? false;
    at(m[5]!, m[2] !== undefined || everyNameTyped);
  }
  for (const m of text.matchAll(/^\s*import\s*(['"])([^'"]+)\1/gm)) at(m[2]!, false);
  // dynamic imports (`typeof import('...')` in a type is type-only), and files loaded by URL (a worker)
  for (const m of text.matchAll(/(typeof\s+)?import\(\s*(['"`])([^'"`]+)\2\s*\)/g)) at(m[3]!, m[1] !== undefined);
  for (const m of text.matchAll(/new URL\(\s*(['"`])([^'"`]+)\1\s*,\s*import\.meta\.url/g)) if (!m[2]!.includes('/dist/')) at(m[2]!, false);
  return arrows;
}

const arrows = sourceFiles(SRC).flatMap(arrowsOf);

describe('the layout', () => {
  it('every folder of src/ is a known stage', () => {
    const stages = new Set(sourceFiles(SRC).map((f) => stageOf(f)));
    expect([...stages].filter((s) => !(s in RANKS))).toEqual([]);
  });

  it('the firewall seam: outside write/firewall/, only its interface and registry are imported (a new backend is one file there and a line in the registry)', () => {
    const inside = (f: string) => f.startsWith(`write${path.sep}firewall${path.sep}`);
    const seam = new Set([`write${path.sep}firewall${path.sep}backend.ts`, `write${path.sep}firewall${path.sep}registry.ts`]);
    // the one exception: the settings check the --ufw-chain names with ufw's own rule
    const allowed = (a: Arrow) => a.from === `cli${path.sep}settings.ts` && a.to === `write${path.sep}firewall${path.sep}ufw.ts`;
    expect(arrows.filter((a) => !inside(a.from) && inside(a.to) && !seam.has(a.to) && !allowed(a))).toEqual([]);
    // and plan.ts and apply.ts name no backend
    for (const file of ['plan.ts', 'apply.ts']) expect(readFileSync(path.join(SRC, 'write', file), 'utf8')).not.toMatch(/\b(ipset|nftables|nft|ufw reload|iptables)\b|'rules'/);
  });

  it('reads the imports it checks (a parser that found none would pass anything)', () => {
    expect(arrows.length).toBeGreaterThan(200);
    expect(arrows).toContainEqual({ from: 'decide/policy.ts', to: 'count/summary.ts', typeOnly: true });
    expect(arrows.some((a) => a.from === 'cli/cli.ts' && a.to === 'cli/commands/run.ts' && !a.typeOnly)).toBe(true); // a dynamic import
  });

  it('no stage imports a stage above it, or a sibling of its own rank', () => {
    const up = arrows
      .filter((a) => {
        const from = stageOf(path.join(SRC, a.from));
        const to = stageOf(path.join(SRC, a.to));
        return from !== to && RANKS[to]! >= RANKS[from]!;
      })
      .filter((a) => !ALLOWED.some((x) => x.from === a.from && x.to === a.to && (a.typeOnly || !x.typeOnly)))
      .map((a) => `${a.from} -> ${a.to}${a.typeOnly ? ' (type only)' : ''}`);
    expect(up).toEqual([]);
  });

  it('count/ and decide/ are pure: no file system, no processes, no network', () => {
    const impure = sourceFiles(SRC)
      .filter((f) => ['count', 'decide'].includes(stageOf(f)))
      .filter((f) => /['"](node:)?(fs|fs\/promises|child_process|net|http|https|dgram|worker_threads|zlib)['"]|['"](execa|fast-glob)['"]/.test(readFileSync(f, 'utf8')))
      .map((f) => path.relative(SRC, f));
    expect(impure).toEqual([]);
  });
});
