/**
 * `smtpguard run` (the cron job): scan, decide, apply the manual blocks and unblocks,
 * rewrite the generated sections, reload what changed. Silent when nothing changed.
 * The verbs (unblock, block, allow) run the same steps through runLocked.
 */
import { readFile, stat } from 'node:fs/promises';
import { SmtpguardError } from '../../errors.js';
import { withRunLock } from './locked.js';
import type { Watchdog } from '../watchdog.js';
import { writeTarget } from '../../store/atomic.js';
import { PendingReloads } from '../../store/pending-reloads.js';
import { readBlockRecords, writeBlockRecords, type BlockRecord } from '../../store/block-records.js';
import type { AddressSummary } from '../../count/summary.js';
import { buildPlan, INDEX_SUFFIX, type Plan, type PlanOptions } from '../../write/plan.js';
import type { Role, Runner, TargetFile } from '../../write/change.js';
import { BACKENDS, backendFor } from '../../write/firewall/registry.js';
import type { BackendFile, Probe } from '../../write/firewall/backend.js';
import { planJson, renderPlanText, summaryLine, trackedClause } from '../../report/plan-report.js';
import { writeJson } from '../../report/json-out.js';
import { refreshMetrics, type RunFacts } from './metrics.js';
import type { Settings } from '../settings.js';
import { translateFsError } from '../../read/sources.js';
import { findDefaultMapType, query } from '../system.js';
import { scanAndDecide, type Io, type Scanned } from './common.js';
import type { Collected } from '../../scan/collect.js';
import { writeLastRun } from '../../store/last-run.js';
import type { Override } from '../../decide/overrides.js';
import { writeBans } from '../../store/bans.js';
import { finishDecision } from './finish-decision.js';
import { readOverrides } from '../../store/overrides.js';
import { settleExceptions, type Decision, type NamedRange } from '../../decide/policy.js';
import type { BanRecord } from '../../decide/bans.js';
import { FleetSync } from '../../crowdsec/sync.js';
import { unblockedRanges } from '../../decide/fleet.js';

export interface RunOptions {
  now: Date;
  /** --log was not given anywhere: the default paths. */
  defaultLogs: boolean;
  dryRun: boolean;
  json: boolean;
  verbose: boolean;
}

export async function runCommand(settings: Settings, options: RunOptions, io: Io): Promise<void> {
  const started = Date.now();
  if (!options.dryRun) {
    // a live follower applies within a second what this run would: leave it the work
    const { followerInCharge } = await import('../follow/in-charge.js');
    const follower = await followerInCharge(settings.stateDir, started, settings.lockFile);
    if (follower.inCharge) {
      if (options.verbose) io.stdout.write('smtpguard follow is running and does the work: nothing to do\n');
      return;
    }
    if (follower.gone !== null) io.warn(`the follower (pid ${follower.gone.pid}) is gone (last heartbeat ${follower.gone.heartbeat}): this run does the work -- see "systemctl status smtpguard-follow" or start "smtpguard follow" again`);
  }
  const stage: RunStage = { name: 'lock', facts: null };
  let refreshed = false;
  const metrics = async (failedAt?: string) => {
    if (options.dryRun || refreshed) return; // a dry run changes nothing, not even the metrics
    refreshed = true;
    await refreshMetrics(settings, { started, facts: stage.facts, ...(failedAt === undefined ? {} : { failedAt }) }, io);
  };
  try {
    await withRunLock(settings, options.dryRun, async (watchdog) => runAndReport(settings, options, io, watchdog, stage, metrics));
  } catch (error) {
    await metrics(stage.name).catch(() => undefined);
    throw error;
  }
}

/** Where a run is, for the metrics of one that fails: `lock`, `scan` (read and decide), `plan`, `apply`, `record`; and what it learned. */
export interface RunStage {
  name: string;
  facts: RunFacts | null;
}

async function runAndReport(settings: Settings, options: RunOptions, io: Io, watchdog: Watchdog, stage: RunStage, metrics: (failedAt?: string) => Promise<void>): Promise<void> {
  const { plan, summarised, fleet } = await runLocked(settings, { ...options, share: true }, io, () => readOverrides(settings.stateDir), watchdog, stage);
  io.progress?.stop(); // the line goes before the result
  if (options.dryRun) {
    if (options.json) await writeJson(await planJson(plan, summarised), io.stdout);
    else io.stdout.write(await renderPlanText(plan, summarised));
  } else if (plan.changes.length > 0 && !plan.quiet) {
    if (options.json) await writeJson(await planJson(plan, summarised), io.stdout);
    else io.stdout.write(`${summaryLine(plan)}${trackedClause(summarised)}\n`);
  } else if (options.verbose || plan.summary.leftOut > 0 || summarised.addresses > 0) {
    // offenders left unblocked, or a flood past --max-tracked, are news every time while they last
    if (options.json) await writeJson(await planJson(plan, summarised), io.stdout);
    else io.stdout.write(`${summaryLine(plan)}${trackedClause(summarised)}, nothing changed\n`);
  }
  await metrics();
  fleet?.finish(); // after the cron line: one warning for LAPI faults, or the credential error (exit 3)
}

/**
 * Everything `run` decides, before it plans: scan, the policy, the fleet's decisions, the
 * overrides, the ban times, the exceptions settled. `explain` asks the same function (as a dry
 * run), so its verdict is what `run --dry-run` does.
 */
export async function decideAsRun(
  settings: Settings,
  options: Pick<RunOptions, 'now' | 'defaultLogs' | 'dryRun'> & { share?: boolean; pull?: boolean; explain?: readonly string[]; collected?: Collected },
  io: Io,
  overridesFor: OverridesFor,
): Promise<Scanned & { /** The policy's own decision (with its reason records). */ policy: Decision; overrides: Override[]; bans: BanRecord[]; fleet: FleetSync | null }> {
  const fleet = await FleetSync.open(settings, { now: options.now, network: options.share === true && !options.dryRun, warn: io.warn, ...(options.pull === false ? { pull: false } : {}) });
  const scanned = await scanAndDecide(settings, options.now, options.defaultLogs, io, { saveState: !options.dryRun, ...(options.explain === undefined ? {} : { explain: options.explain }), ...(options.collected === undefined ? {} : { collected: options.collected }) });
  const { decision: policy, summaries, neverBlock } = scanned;
  await fleet?.pull();
  // what the verbs see: the policy's blocks and the fleet's (this host's never-block ranges first)
  // asked for only by a verb that looks at it (unblock): the merge of 100,000 fleet decisions costs 0.4 s
  let raw: Decision | null = null;
  const overrides = await overridesFor(() => (raw ??= fleet === null ? policy : fleet.merge(policy, neverBlock)), summaries, neverBlock);
  // ban memory keeps this host's blocks only: a fleet block lasts as long as its decision
  const finished = await finishDecision(settings, policy, summaries, neverBlock, overrides, options.now, io, { keep: options.dryRun });
  const merged = fleet === null ? finished.decision : fleet.merge(finished.decision, [...neverBlock, ...unblockedRanges(overrides, options.now)]);
  const decision = settleExceptions(merged); // every backend blocks the same addresses
  return { ...scanned, policy, decision, overrides, bans: finished.bans, fleet };
}

export interface RunResult {
  plan: Plan;
  summaries: AddressSummary[];
  neverBlock: NamedRange[];
  /** Addresses past --max-tracked, added up rather than listed. */
  summarised: Scanned['summarised'];
  /** Sharing through CrowdSec, when it is set up: finish() reports its faults. */
  fleet: FleetSync | null;
  /** The overrides in force (a follower waits for their ends). */
  overrides: Override[];
}

/** The overrides to apply, given what the policy decided (a verb adds or removes its entry here, and saves them). */
export type OverridesFor = (raw: () => Decision, summaries: readonly AddressSummary[], neverBlock: readonly NamedRange[]) => Promise<Override[]>;

/**
 * What `run` and the verbs do inside the lock: scan, decide, apply the overrides,
 * plan, and (not in a dry run) write, reload, keep the records, tell syslog.
 */
export async function runLocked(
  settings: Settings,
  options: Pick<RunOptions, 'now' | 'defaultLogs' | 'dryRun'> & {
    /** Pull and push through CrowdSec (run only; verbs use the decisions last pulled). */
    share?: boolean;
    /** What the logs gave, read already (a follower's memory). */
    collected?: Collected;
    /** false: the fleet's decisions as last pulled (a follower pulls on its own interval). */
    pull?: boolean;
    /** Leave the access map as it is this time (a follower between two reloads of Postfix): Plan.mapHeld says whether it would change. */
    holdMap?: boolean;
  },
  io: Io,
  overridesFor: OverridesFor,
  watchdog?: Watchdog,
  stage: RunStage = { name: 'lock', facts: null },
): Promise<RunResult> {
  const { pending, roles } = await PendingReloads.read(settings.stateDir);
  stage.name = 'scan';
  const { decision, summaries, neverBlock, summarised, overrides, bans, fleet, collected } = await decideAsRun(settings, options, io, overridesFor);
  stage.name = 'plan';
  const plan = await makePlan(settings, decision, roles, options.holdMap === true);
  let newestEvent: number | null = null;
  for (const s of summaries) if (newestEvent === null || s.lastSeen > newestEvent) newestEvent = s.lastSeen;
  stage.facts = {
    readByKind: collected.readByKind,
    blocks: plan.decision.blocks,
    bans,
    leftOut: plan.summary.leftOut,
    summarised: summarised.addresses,
    newestEvent,
    fleet: fleet?.report ?? null,
  };
  const result = { plan, summaries, neverBlock, summarised, fleet, overrides };
  if (options.dryRun) return result;
  stage.name = 'apply';
  if (plan.changes.length > 0) {
    const { applyPlan } = await import('../../write/apply.js'); // execa loads only when something changes
    // on a terminal: which command of how many is under way (a reload of 100,000 blocks takes seconds)
    let step = 0;
    const runner: Runner = io.progress === undefined ? execCommand : async (argv) => {
      const label = argv.join(' ');
      const done = step++;
      io.progress!.watch(() => ({ label: 'applying', done, total: plan.commands.length, unit: 'steps', step: label }));
      return execCommand(argv);
    };
    const apply = () => applyPlan(plan, runner, pending).finally(() => io.progress?.watch(null));
    const warnings = await (watchdog === undefined ? apply() : watchdog.whileApplying(apply));
    for (const warning of warnings) io.warn(warning);
  }
  if (settings.reload) {
    // said on every run while it lasts: the next boot would not put the blocks back
    const problem = await backendFor(settings.firewall).bootProblem(settings);
    if (problem !== null) io.warn(problem);
  }
  stage.name = 'record';
  await writeBans(settings.stateDir, bans);
  await keepBlockRecords(settings, plan, summaries, options.now, overrides, io);
  await fleet?.push(plan.decision, summaries);
  await writeLastRun(settings.stateDir, { time: new Date().toISOString(), summary: summaryLine(plan), changed: plan.changes.length > 0 });
  const news = plan.changes.length > 0 && !plan.quiet;
  if (news || plan.summary.leftOut > 0 || summarised.addresses > 0) {
    const line = `${summaryLine(plan)}${trackedClause(summarised)}${news ? '' : ', nothing changed'}`;
    await execCommand(['logger', '-t', 'smtpguard', line]).catch(() => undefined);
  }
  return result;
}

/** `logger` and the reloads: execa loads only when it is needed. */
const execCommand: Runner = async (argv) => (await import('../../write/exec.js')).execCommand(argv);

async function makePlan(settings: Settings, decision: Decision, owed: Set<'ufw' | 'map'>, holdMap: boolean): Promise<Plan> {
  const chosen = backendFor(settings.firewall);
  const problem = chosen.settingsProblem(settings);
  if (problem !== null) throw problem;
  // every backend's files: the chosen one's must be readable, the others' only say what a switch away left
  const files = new Map<Role, BackendFile>();
  for (const backend of [chosen, ...BACKENDS]) for (const f of backend.files(settings)) if (!files.has(f.role)) files.set(f.role, { ...f, own: backend === chosen && f.own });
  const targets: TargetFile[] = await Promise.all([
    readTarget({ role: 'map', path: settings.accessMap, what: 'Postfix access map', option: '--access-map', own: true }),
    ...[...files.values()].map((f) => (f.own ? readTarget(f) : readTarget(f).catch(() => ({ role: f.role, path: f.path, text: null })))),
  ]);
  const byRole = new Map(targets.map((t) => [t.role, t]));
  const mapType = settings.mapType ?? (await findDefaultMapType(settings.postfixConfigDir));
  if (mapType !== 'cidr' && (await indexIsStale(settings.accessMap, INDEX_SUFFIX[mapType]))) owed.add('map');
  // the kernel against the backend's record: a boot that could not restore it (or a hand) left it
  // short, and a run that sees no change in the decision would never put it back
  if (settings.reload && (await chosen.kernelOwes(settings, byRole, query))) owed.add('ufw');
  const options: PlanOptions = {
    ufwChain: settings.ufwChain,
    ufw6Chain: settings.ufw6Chain,
    mapType,
    rejectText: settings.rejectText,
    postfixConfigDir: settings.postfixConfigDir,
    reload: settings.reload,
    cutSessions: settings.cutSessions,
    firewall: settings.firewall,
    stateDir: settings.stateDir,
    smtpPorts: settings.smtpPorts,
    holdMap,
  };
  let plan = buildPlan(decision, targets, options, owed);
  // what a change needs to know about the kernel (e.g. whether ufw's chains are loaded): asked only
  // of a backend whose files change, so a cron run pays for no query it does not need
  if (settings.reload && plan.firewall.some((p) => p.changes.length > 0)) {
    const probes = new Map<string, Probe>();
    for (const part of plan.firewall) if (part.changes.length > 0) probes.set(part.mode, await backendFor(part.mode).probe(settings, byRole, query, part.active));
    plan = buildPlan(decision, targets, { ...options, probes }, owed);
  }
  for (const change of plan.changes) {
    const target = await writeTarget(change.path);
    if (target !== change.path) plan.notes.push(`${change.path} is a symlink: the new text is written to its target ${target}, the link stays`);
  }
  return plan;
}

/** What is blocked and why, for `smtpguard status`; a block keeps the time it first appeared. */
async function keepBlockRecords(settings: Settings, plan: Plan, summaries: readonly AddressSummary[], now: Date, overrides: readonly Override[], io: Io): Promise<void> {
  const previous = new Map((await readBlockRecords(settings.stateDir, io.warn))?.map((r) => [r.cidr, r]) ?? []);
  const seen = new Map(summaries.map((s) => [s.address, s]));
  const madeAt = new Map<string, string>();
  for (const o of overrides) if (o.kind === 'block' && !madeAt.has(o.cidr)) madeAt.set(o.cidr, o.created);
  const records: BlockRecord[] = plan.decision.blocks.map((b) => {
    let firstSeen = Infinity;
    let lastSeen = -Infinity;
    for (const address of b.addresses) {
      const s = seen.get(address);
      if (s === undefined) continue;
      firstSeen = Math.min(firstSeen, s.firstSeen);
      lastSeen = Math.max(lastSeen, s.lastSeen);
    }
    // no events in the window (a manual block, a ban kept past its events): its times are when it was made, or its last event
    const made = madeAt.get(b.cidr) ?? now.toISOString();
    const last = b.lastSeen !== undefined && Number.isFinite(b.lastSeen) ? new Date(b.lastSeen).toISOString() : made;
    const quiet = firstSeen === Infinity;
    return {
      cidr: b.cidr,
      family: b.family,
      reason: b.reason,
      total: b.total,
      addresses: b.addresses,
      firstSeen: quiet ? (last < made ? last : made) : new Date(firstSeen).toISOString(),
      lastSeen: quiet ? last : new Date(lastSeen).toISOString(),
      since: previous.get(b.cidr)?.since ?? (quiet ? made : now.toISOString()),
      ...(b.times === undefined ? {} : { until: b.until ?? null, times: b.times }), // with a kept ban, what rebuilds bans.json if it is lost
      ...(b.fleet === undefined ? {} : { fleet: b.fleet }),
      ...(b.exceptions === undefined ? {} : { exceptions: b.exceptions }),
      ...(b.messageLevel === true ? { messageLevel: true as const } : {}),
    };
  });
  await writeBlockRecords(settings.stateDir, records).catch(() => undefined); // status is a convenience: never fail a run for it
}

/** An index that is missing or older than its map was never built from it: postmap is owed. */
async function indexIsStale(map: string, suffix: string): Promise<boolean> {
  const [source, index] = await Promise.all([stat(map).catch(() => null), stat(map + suffix).catch(() => null)]);
  return source !== null && (index === null || index.mtimeMs < source.mtimeMs);
}

async function readTarget(file: BackendFile): Promise<TargetFile> {
  const { role, path } = file;
  try {
    return { role, path, text: await readFile(path, 'latin1') }; // every byte kept as it is
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { role, path, text: null };
    if (code === 'EISDIR') throw new SmtpguardError(`${path} is a directory, not a ${file.what}`, { hint: file.hint ?? `point ${file.option} at the file itself` });
    const translated = translateFsError(error, path, 'run as root');
    throw translated instanceof SmtpguardError ? translated : error;
  }
}
