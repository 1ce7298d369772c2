/** The reloads a run owes (pending-reloads in the state directory). */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { readStoreBytes } from './store-file.js';
import { writeOwnFile } from './atomic.js';

/**
 * Reloads owed from earlier runs, kept in the state directory: a run that wrote a
 * file but was killed (or ran with --no-reload) before its reload leaves the file and
 * the running firewall or Postfix apart, and the next run must reload even though the
 * file text no longer changes.
 */
export class PendingReloads {
  constructor(private readonly file: string | null) {}

  static async read(stateDir: string): Promise<{ pending: PendingReloads; roles: Set<'ufw' | 'map'> }> {
    const file = path.join(stateDir, 'pending-reloads');
    const text = await readStoreBytes(file).then((b) => b.toString('utf8'), () => null);
    const roles = new Set<'ufw' | 'map'>();
    if (text !== null) {
      for (const word of text.split(/\s+/)) if (word === 'ufw' || word === 'map') roles.add(word);
      if (roles.size === 0 && text.trim() !== '') roles.add('ufw').add('map'); // unreadable: reload both, it is harmless
    }
    return { pending: new PendingReloads(file), roles };
  }

  /** Whether a reload of `role` is owed now. */
  async owes(role: 'ufw' | 'map'): Promise<boolean> {
    return this.file !== null && (await PendingReloads.read(path.dirname(this.file))).roles.has(role);
  }

  async set(role: 'ufw' | 'map', owed: boolean): Promise<void> {
    if (this.file === null) return;
    const now = await PendingReloads.read(path.dirname(this.file));
    if (owed) now.roles.add(role);
    else now.roles.delete(role);
    await mkdir(path.dirname(this.file), { recursive: true, mode: 0o755 });
    await writeOwnFile(this.file, [...now.roles].join(' ') + '\n', 0o644);
  }
}
