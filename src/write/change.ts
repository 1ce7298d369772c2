/**
 * What plan and apply and every firewall backend share (types only): the files a run reads
 * and rewrites, and the commands it runs. Neutral ground: plan.ts, apply.ts and each backend
 * import it, and it imports none of them.
 */

/**
 * ufw4/ufw6: ufw's rules files; map: the access map; sets: the ipset save file (state dir);
 * init: ufw's before.init, whose section creates the ipset sets at boot; nft: the nftables
 * backend's save file (state dir), which its boot unit loads.
 */
export type Role = 'ufw4' | 'ufw6' | 'map' | 'sets' | 'init' | 'nft';

export interface TargetFile {
  role: Role;
  path: string;
  /** null: the file does not exist. */
  text: string | null;
}

export interface FileChange {
  role: Role;
  path: string;
  before: string;
  /** '' for a backend's own save file when that backend is switched away from: it is removed. */
  after: string;
}

export interface CommandResult {
  argv: string[];
  ok: boolean;
  output: string;
}

/** Runs one command (execCommand, or a recorder in tests). */
export type Runner = (argv: readonly string[]) => Promise<CommandResult>;

/** A read-only command (iptables -L, ipset list, nft list): ok and its stdout, else why not. */
export type Query = (command: string, args: readonly string[]) => Promise<{ ok: boolean; output: string }>;

/** Reloads a file needs although its text does not change (see PendingReloads): `ufw` stands for the firewall, whatever its backend. */
export type Owed = ReadonlySet<'ufw' | 'map'>;
