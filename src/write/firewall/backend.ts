/**
 * The seam: what a firewall backend is, from the first install to the last uninstall. plan.ts,
 * apply.ts and the commands (run, status, install) talk to backends only through this interface
 * and the registry (registry.ts); a new backend is one new file here and one line there.
 *
 * A backend keeps a record of the blocks it put in force (ufw's rules files, an ipset or nftables
 * save file in the state dir) and the kernel's copy of them (rules, sets). Over its life it:
 * - says which files it keeps (`files`), and what settings it cannot run with (`settingsProblem`);
 * - compares the kernel with its record before a run (`kernelOwes`: a boot that did not restore
 *   the blocks makes the next run put them all back) and asks what a change needs to know
 *   (`probe`: e.g. whether ufw's chains are loaded);
 * - plans: the new text of its files and the commands that put a change in force, for the blocks
 *   of the decision when it is the chosen backend, or to take out everything it has when it is
 *   not (a switch of backend is one run: the new one adds first, the old ones withdraw);
 * - applies its part of a plan, putting back what it changed when a step fails (exit 5, or 6);
 * - reads back what its record says is in force (`recorded`) and what the kernel enforces
 *   (`readKernel`: members, counters, expiries), and why a boot would lose it (`bootProblem`);
 * - adds or removes its pieces at install and uninstall (`install`).
 */
import type { SmtpguardError } from '../../errors.js';
import type { Block } from '../../decide/policy.js';
import type { FileChange, Query, Role, Runner, TargetFile } from '../change.js';
import type { Templates } from '../install.js';

/** The settings the firewall stage needs, and no more. */
export interface FirewallSettings {
  firewall: string;
  ufwRules: string;
  ufw6Rules: string;
  ufwChain: string;
  ufw6Chain: string;
  stateDir: string;
  /** The ports a block closes, where the backend renders them itself (nftables; ufw's are in its rules files). */
  smtpPorts: readonly number[];
  /** false: --no-state. */
  state: boolean;
  /** false: --no-reload (files are written, the kernel is left alone). */
  reload: boolean;
}

/** A file a backend keeps: run reads it before planning. */
export interface BackendFile {
  role: Role;
  path: string;
  /** For errors: "ufw rules file", and the option that points at it. */
  what: string;
  option: string;
  /** What to do when it is a directory (default: point the option at the file itself). */
  hint?: string;
  /** A file the chosen backend needs even when missing (it says so itself); others only when readable. */
  own: boolean;
}

/** What a change needs to know about the kernel, asked only when the backend's files change. */
export interface Probe {
  /** Whether each family's ufw chain is loaded (ufw backends): a new section then goes into the live chain alone. */
  live?: { 4: boolean; 6: boolean };
}

export interface PlanContext {
  /** Files a backend before this one keeps (a withdrawing backend leaves them to it). */
  keptByOthers: ReadonlySet<Role>;
  ufwChain: string;
  ufw6Chain: string;
  stateDir: string;
  smtpPorts: readonly number[];
  reload: boolean;
  /** The kernel lacks what the files record (a reload owed, a boot that did not restore it): put it in force even when no text changes. */
  owed: boolean;
  probe?: Probe;
  /** Now (ms): a ban's time left is counted from here. */
  now: number;
}

/** One backend's part of a plan. */
export interface BackendPlan {
  mode: string;
  /** true: it puts the decision's blocks in force; false: it withdraws what it had (a switch away). */
  active: boolean;
  /** Only the files whose content changes (or whose update is owed). */
  changes: FileChange[];
  /** In the order its apply runs them. */
  commands: string[][];
  /** The CIDRs its record says are in force before this change. */
  inForce: string[];
  /** Its changes only move the end of blocks already in force (a ban renewed by new events): no news for the cron line. */
  renewals?: boolean;
  /** Whether it changes what the kernel should hold (a file that puts nothing in force, like ufw's before.init, owes no update). */
  owes: boolean;
  /** What it was planned with (its apply needs the same). */
  context: PlanContext;
}

/** What the kernel enforces, as one backend reads it back. */
export interface KernelView {
  /** The recorded blocks the kernel holds whole. */
  blocks: string[];
  /** What the kernel holds that no recorded block explains (rules or elements, as the kernel names them). */
  extra: string[];
  /** Packets dropped per block, where the kernel counts per block. */
  packets: Map<string, number>;
  /** When the kernel drops each block by itself (ISO; null: never), where it keeps a timeout. */
  expires: Map<string, string | null>;
  /** Per-set totals: members in the kernel, their limit (null: none, or the set is missing), and the packets its rule matched. */
  sets: Array<{ name: string; members: number; maxelem: number | null; packets: number | null; present: boolean }>;
  /** Packets its rules dropped, per family (for the metrics). */
  dropped: Array<{ family: 4 | 6; packets: number }>;
}

/** The blocks a backend's record (a file) says are in force. */
export interface RecordedBlocks {
  file: string;
  /** false: the file has no smtpguard section, or does not exist (not installed); null: it could not be read. */
  installed: boolean | null;
  /** The CIDRs it records, in file order. */
  cidrs: string[];
  /** Why it could not be read (or is broken), or null. */
  problem: string | null;
}

/** A file install writes or removes. */
export interface FileEdit {
  path: string;
  before: string | null;
  /** null: remove the file. */
  after: string | null;
}

export interface InstallContext {
  settings: FirewallSettings;
  uninstall: boolean;
  /** The directory of systemd units (--systemd-dir). */
  systemdDir: string;
  /** The command that runs smtpguard (node and its entry point), for a unit that calls it. */
  command: (args: readonly string[]) => string;
  /** The config file the job reads. */
  configFile: string;
  readOptional: (file: string) => Promise<string | null>;
  query: Query;
  templates: Templates;
}

/** A backend's pieces at install or uninstall. */
export interface InstallPart {
  /** What the pieces are, once: backends that share pieces (rules and ipset share ufw's files) give the same name. */
  name: string;
  edits: FileEdit[];
  /** The commands it runs, in order (shown by --dry-run). */
  commands: string[][];
  /** Said before anything is done (a dry run too). */
  warnings: string[];
  notes: string[];
  /** Something to do although no edit changes a file (e.g. make before.init executable). */
  pending: boolean;
  /** Writes its edits and runs its commands, after install's own files (and Postfix) are done. Returns warnings. */
  carryOut(run: Runner, reload: boolean): Promise<string[]>;
}

export interface FirewallBackend {
  readonly mode: string;
  /** One line for --help: what it does. */
  readonly summary: string;
  /** Past this many blocks it costs more than it should: the cron line says so once, with this text (after "over N blocks"). */
  readonly advice?: { blocks: number; text: string };
  /** Where it keeps blocks in the kernel and where it records them, for status: "the kernel's rules" / "the file". */
  readonly kernelName: string;
  readonly recordName: string;
  /** What puts a change in force, for "... owed" (status). */
  readonly updateName: string;
  /** A change reloads the whole firewall (ufw reload): a follower spaces them by --reload-interval. Absent: a change is a set update, put in force at once. */
  readonly reloadsAll?: true;
  /** Why its record is not there before install, after the file names (status): `have no "# BEGIN smtpguard" section`. */
  readonly missingRecord: string;
  /** Whether the firewall it rides on is switched on (ufw's ENABLED=); null: it rides on none, or cannot tell. */
  enabled(settings: FirewallSettings): Promise<boolean | null>;
  /** The roles of the files it keeps (what `files` returns, without paths). */
  readonly roles: readonly Role[];
  files(settings: FirewallSettings): BackendFile[];
  settingsProblem(settings: FirewallSettings): SmtpguardError | null;
  kernelOwes(settings: FirewallSettings, targets: ReadonlyMap<Role, TargetFile>, query: Query): Promise<boolean>;
  /** `active`: it is the chosen backend (else it is withdrawing). */
  probe(settings: FirewallSettings, targets: ReadonlyMap<Role, TargetFile>, query: Query, active: boolean): Promise<Probe>;
  /** Pure. `blocks` null: withdraw what it has in force (it is not the chosen backend). */
  plan(blocks: readonly Block[] | null, targets: ReadonlyMap<Role, TargetFile>, context: PlanContext): BackendPlan;
  apply(part: BackendPlan, run: Runner, reload: boolean): Promise<string[]>;
  recorded(settings: FirewallSettings): Promise<RecordedBlocks[]>;
  /** null: it has nothing to read there (not in use), or the kernel cannot be asked (then `problem`). */
  readKernel(settings: FirewallSettings, query: Query): Promise<{ view: KernelView | null; problem: string | null }>;
  /** Packets its rules dropped, per family, cheaply (no member list; for the metrics); null: not readable. */
  dropped(settings: FirewallSettings, query: Query): Promise<KernelView['dropped'] | null>;
  bootProblem(settings: FirewallSettings): Promise<string | null>;
  install(context: InstallContext): Promise<InstallPart | null>;
  /** At boot (`smtpguard load-firewall`, run by a unit): put the record's blocks in force. Returns what it did, in one line. */
  boot(settings: FirewallSettings, run: Runner): Promise<string>;
}
