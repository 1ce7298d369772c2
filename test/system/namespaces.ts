/**
 * What the system tests and `npm run bench:firewall` share to run a firewall safely: the
 * guard that refuses this machine's own network namespace, a private ufw tree made from the
 * package's templates, and small process helpers. Only node: modules, so the bench can
 * compile it too (tsconfig.bench.json).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** This machine's own network namespace, as the process started in it. */
export const ROOT_NETNS = readlinkSync('/proc/self/ns/net');

/** `sh -c GUARD... ROOT_NETNS argv...`: exits 99 instead of running argv in ROOT_NETNS. */
export const GUARD = '[ "$(readlink /proc/self/ns/net)" != "$0" ] || { echo "REFUSING: this is the root network namespace" >&2; exit 99; }; shift 0; ';

/**
 * A private ufw tree under `ufwTree` (etc/ufw, etc/default/ufw) from the package's own
 * templates, modes as Debian's postinst leaves them (the .init hooks not executable): the
 * host's /etc/ufw plays no part.
 */
export function makeUfwTree(ufwTree: string): void {
  const etcUfw = path.join(ufwTree, 'etc', 'ufw');
  mkdirSync(path.join(etcUfw, 'applications.d'), { recursive: true });
  mkdirSync(path.join(ufwTree, 'etc', 'default'), { recursive: true });
  for (const f of ['before.rules', 'before6.rules', 'after.rules', 'after6.rules', 'user.rules', 'user6.rules', 'ufw.conf', 'before.init', 'after.init']) {
    copyFileSync(path.join('/usr/share/ufw', f), path.join(etcUfw, f));
    chmodSync(path.join(etcUfw, f), f === 'ufw.conf' ? 0o644 : 0o640);
  }
  if (existsSync('/etc/ufw/applications.d')) {
    for (const f of readdirSync('/etc/ufw/applications.d')) copyFileSync(path.join('/etc/ufw/applications.d', f), path.join(etcUfw, 'applications.d', f));
  }
  writeFileSync(
    path.join(ufwTree, 'etc', 'default', 'ufw'),
    ['IPV6=yes', 'DEFAULT_INPUT_POLICY="DROP"', 'DEFAULT_OUTPUT_POLICY="ACCEPT"', 'DEFAULT_FORWARD_POLICY="DROP"', 'DEFAULT_APPLICATION_POLICY="SKIP"', 'MANAGE_BUILTINS=no', 'IPT_SYSCTL=', 'IPT_MODULES=""', ''].join('\n'),
  );
  for (const d of [ufwTree, path.join(ufwTree, 'etc'), etcUfw]) chmodSync(d, 0o755);
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function uid(user: string): number {
  return Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim());
}

export function gid(group: string): number {
  return Number(execFileSync('getent', ['group', group], { encoding: 'utf8' }).split(':')[2]);
}

export function waitFor(ok: () => boolean, what: string, ms = 15_000, mustHappen = true): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (ok()) return;
    spawnSync('sleep', ['0.05']);
  }
  if (mustHappen && !ok()) throw new Error(`timed out waiting for ${what}`);
}
