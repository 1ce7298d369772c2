#!/usr/bin/env node
/**
 * npm run deb: smtpguard_VERSION_all.deb from the build's bundle (dist/bundle: one self-contained
 * set of modules, no node_modules), with dpkg-deb. What goes where:
 *
 *   /usr/bin/smtpguard                          -> ../lib/smtpguard/bin/smtpguard.js
 *   /usr/lib/smtpguard/                         package.json, bin/, dist/bundle/, templates/, man/, completions/
 *   /usr/share/man/man1/smtpguard.1.gz          the manual page
 *   /usr/share/bash-completion/completions/smtpguard
 *   /usr/share/doc/smtpguard/                   copyright, changelog.gz, README.md.gz, examples/smtpguard.conf
 *   /usr/share/smtpguard/                       the systemd units, as `smtpguard install` writes them (not enabled)
 *
 * No maintainer scripts: the package changes nothing on the host (no firewall, no Postfix, no
 * schedule); `smtpguard install` does that, and writes /usr/bin/smtpguard into the cron line or
 * units. Usage: node packaging/build-deb.mjs [--version X] [--out DIR] (run `npm run build` first).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const option = (name, fallback) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
const version = option('--version', pkg.version);
const out = path.resolve(option('--out', ROOT));
if (!/^\d[\w.+~-]*$/.test(version)) throw new Error(`--version ${version} is not a Debian version`);
if (!statSync(path.join(ROOT, 'dist', 'bundle', 'main.js'), { throwIfNoEntry: false })) throw new Error('no dist/bundle/main.js: run "npm run build" first');

const stage = mkdtempSync(path.join(tmpdir(), 'smtpguard-deb-'));
chmodSync(stage, 0o755); // the package's root directory
try {
  const at = (...parts) => path.join(stage, ...parts);
  const dir = (...parts) => mkdirSync(at(...parts), { recursive: true, mode: 0o755 });
  const file = (target, data, mode = 0o644) => {
    mkdirSync(path.dirname(at(target)), { recursive: true, mode: 0o755 });
    writeFileSync(at(target), data, { mode });
    chmodSync(at(target), mode);
  };
  const gz = (text) => gzipSync(text, { level: 9 }); // no name, no time in the header (gzip -9n)

  // the program: its own package.json (the version, and what packageRoot() looks for), the bundle and what install reads
  const lib = 'usr/lib/smtpguard';
  file(`${lib}/package.json`, JSON.stringify({ name: 'smtpguard', version, type: 'module', private: true }, null, 2) + '\n');
  // Debian's policy wants the interpreter by its path (lintian: `env -S` is unusual); its flag stays
  const script = readFileSync(path.join(ROOT, 'bin', 'smtpguard.js'), 'utf8').replace(/^#!\/usr\/bin\/env -S node /, '#!/usr/bin/node ');
  if (!script.startsWith('#!/usr/bin/node ')) throw new Error('bin/smtpguard.js: its #! line is not `#!/usr/bin/env -S node FLAG` any more; update build-deb.mjs');
  file(`${lib}/bin/smtpguard.js`, script, 0o755);
  for (const name of readdirSync(path.join(ROOT, 'dist', 'bundle'))) file(`${lib}/dist/bundle/${name}`, readFileSync(path.join(ROOT, 'dist', 'bundle', name)));
  for (const sub of ['templates', 'man', 'completions']) for (const name of readdirSync(path.join(ROOT, sub))) file(`${lib}/${sub}/${name}`, readFileSync(path.join(ROOT, sub, name)));
  dir('usr/bin');
  symlinkSync('../lib/smtpguard/bin/smtpguard.js', at('usr/bin/smtpguard'));

  // where man, bash-completion and admins look
  file('usr/share/man/man1/smtpguard.1.gz', gz(readFileSync(path.join(ROOT, 'man', 'smtpguard.1'))));
  file('usr/share/bash-completion/completions/smtpguard', readFileSync(path.join(ROOT, 'completions', 'smtpguard.bash')));
  const doc = 'usr/share/doc/smtpguard';
  file(`${doc}/copyright`, copyright());
  file(`${doc}/changelog.gz`, gz(`smtpguard (${version}) unstable; urgency=medium\n\n  * Built from the smtpguard repository (npm run deb).\n\n -- smtpguard maintainers <smtpguard@example.org>  ${new Date(Number(process.env.SOURCE_DATE_EPOCH ?? 0) * 1000 || Date.now()).toUTCString().replace(/GMT$/, '+0000')}\n`));
  file(`${doc}/README.md.gz`, gz(readFileSync(path.join(ROOT, 'README.md'))));
  // the config file install starts from: a header and every key commented out with its default
  const { setConfigValues } = await import(path.join(ROOT, 'dist', 'cli', 'config-file.js'));
  const { renderConfigHeader } = await import(path.join(ROOT, 'dist', 'cli', 'settings.js'));
  file(`${doc}/examples/smtpguard.conf`, setConfigValues(null, new Map(), renderConfigHeader()));

  // the units as install writes them, for reference (install enables them; the package does not)
  const command = '/usr/bin/smtpguard run --config /etc/smtpguard/smtpguard.conf';
  const fill = (name, values) => readFileSync(path.join(ROOT, 'templates', name), 'utf8').replace(/\{\{([A-Z]+)\}\}/g, (_, k) => values[k]);
  file('usr/share/smtpguard/smtpguard.service', fill('smtpguard.service', { COMMAND: command }));
  file('usr/share/smtpguard/smtpguard.timer', fill('smtpguard.timer', {}));
  file('usr/share/smtpguard/smtpguard-follow.service', fill('smtpguard-follow.service', { COMMAND: '/usr/bin/smtpguard follow --config /etc/smtpguard/smtpguard.conf' }));
  const { unitText } = await import(path.join(ROOT, 'dist', 'write', 'firewall', 'nftables.js'));
  file('usr/share/smtpguard/smtpguard-nftables.service', unitText('/usr/bin/smtpguard load-firewall --config /etc/smtpguard/smtpguard.conf', '/var/lib/smtpguard'));

  // control: what it needs (node 20), what it works with (postfix; ufw, ipset or nftables)
  let size = 0;
  const md5 = [];
  const walk = (rel) => {
    for (const entry of readdirSync(at(rel), { withFileTypes: true })) {
      const r = path.posix.join(rel, entry.name);
      if (entry.isDirectory()) walk(r);
      else if (entry.isFile()) {
        const data = readFileSync(at(r));
        size += data.length;
        md5.push(`${createHash('md5').update(data).digest('hex')}  ${r}`);
      }
    }
  };
  walk('usr');
  file('DEBIAN/md5sums', md5.sort((a, b) => (a.slice(34) < b.slice(34) ? -1 : 1)).join('\n') + '\n');
  file(
    'DEBIAN/control',
    [
      'Package: smtpguard',
      `Version: ${version}`,
      'Architecture: all',
      'Maintainer: smtpguard maintainers <smtpguard@example.org>',
      `Installed-Size: ${Math.ceil(size / 1024)}`,
      'Depends: nodejs (>= 20)',
      'Recommends: postfix, ufw | nftables',
      'Suggests: ipset, crowdsec, prometheus-node-exporter',
      'Section: net',
      'Priority: optional',
      'Homepage: https://github.com/smtpguard/smtpguard',
      'Description: block SMTP attackers in the firewall and in Postfix',
      ' smtpguard reads the Postfix mail log (rotated and gzipped copies, or the',
      ' journal), finds clients that fail SASL authentication or are rejected again',
      ' and again, and blocks them in the firewall (ufw rules, ipset sets or its own',
      ' nftables table) and in a Postfix client access map. It runs from cron;',
      ' "smtpguard install" sets it up.',
      '',
    ].join('\n'),
  );
  const deb = path.join(out, `smtpguard_${version}_all.deb`);
  execFileSync('dpkg-deb', ['--root-owner-group', '-Zxz', '--build', stage, deb], { stdio: ['ignore', 'ignore', 'inherit'] });
  console.log(deb);
} finally {
  rmSync(stage, { recursive: true, force: true });
}

function copyright() {
  const license = readFileSync(path.join(ROOT, 'LICENSE'), 'utf8').trim();
  return [
    'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/',
    'Upstream-Name: smtpguard',
    '',
    'Files: *',
    'Copyright: 2026 smtpguard maintainers',
    'License: Expat',
    ...license.split('\n').slice(4).map((l) => (l.trim() === '' ? ' .' : ` ${l}`)),
    '',
  ].join('\n');
}

