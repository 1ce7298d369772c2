/**
 * Sharing blocks through CrowdSec's Local API, for one run (edge): pull the fleet's
 * decisions and merge them before the plan, push this run's new blocks after it. Local blocking never
 * waits on LAPI: all requests share one 5 s budget; a fault is one warning line per run
 * (finish()); unsent alerts wait in the state directory; the last pulled set stays in use
 * until a pull succeeds. Credentials LAPI refuses (or a secret file others can read) end
 * the run with exit 3 naming the setting, after the local blocks are in place.
 *
 * State files (root's alone, mode 600): crowdsec-stream.json (the pulled decisions),
 * crowdsec-queue.json (pushed and queued bans), crowdsec-token.json (the machine's JWT).
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { SmtpguardError } from '../errors.js';
import { readStore } from '../store/store-file.js';
import { writeOwnFile } from '../store/atomic.js';
import { mergeFleetBlocks, type FleetDecision } from '../decide/fleet.js';
import type { Decision, NamedRange } from '../decide/policy.js';
import type { Warn } from '../warn.js';
import type { AddressSummary } from '../count/summary.js';
import { version } from '../version.js';
import { readSecretFile } from './credentials.js';
import { Budget, Lapi, LAPI_BUDGET_MS, LapiError, type Token } from './lapi.js';
import { banTag, emptyQueue, markSent, markTried, ownBans, parseQueue, queueBans, renderAlert, scenarioOf, scopeOf, unsent, type PushQueue, type SeenBlock } from './queue.js';
import { applyStreamAnswer, liveDecisions, needsStartup, parseStreamState, selects, type StreamAnswer, type StreamFilter } from './stream.js';

export const STREAM_FILE = 'crowdsec-stream.json';
export const QUEUE_FILE = 'crowdsec-queue.json';
export const TOKEN_FILE = 'crowdsec-token.json';
/** Alerts per POST. */
const BATCH = 100;

/** What sharing needs of the settings (the CLI's Settings has them all, with these names). */
export interface CrowdsecSettings {
  /** The Local API, e.g. http://10.0.0.5:8080; null: no sharing. */
  crowdsecUrl: string | null;
  /** Push new blocks as alerts as this machine, with the password in this file (root's alone). */
  crowdsecMachine: string | null;
  crowdsecPasswordFile: string | null;
  /** Pull decisions as blocks with the bouncer key in this file. */
  crowdsecBouncerKeyFile: string | null;
  /** Pull decisions whose scenario starts with one of these, and those of these origins. */
  crowdsecScenarios: readonly string[];
  crowdsecOrigins: readonly string[];
  /** The widest pulled IPv4 and IPv6 ranges applied (prefix lengths). */
  crowdsecWidest: number;
  crowdsecWidest6: number;
  stateDir: string;
  /** The counting window and ban times (ms): how long a pushed decision lasts. */
  window: number;
  maxBlocks: number;
  banTime: number;
  banTimeMax: number;
}

export interface SyncOptions {
  now: Date;
  /** false (--dry-run): no request, no state written; the pulled set as last kept. */
  network: boolean;
  /** false: use the decisions last pulled, ask the LAPI nothing (a follower between two pulls); push stays as `network` says. */
  pull?: boolean;
  warn: Warn;
  /** Tests pass a fetch of their own; the budget too. */
  fetch?: typeof fetch;
  budgetMs?: number;
}

/** What the run learns: pulled and pushed, for its own report (and the tests). */
export interface SyncReport {
  pulled: number | null;
  fleetBlocks: number;
  sent: number;
  queued: number;
  faults: string[];
}

/** The settings as far as sharing goes: an error for half of them, null when none is set. */
export function checkCrowdsecSettings(s: CrowdsecSettings): null | { url: string; push: boolean; pull: boolean } {
  const push = s.crowdsecMachine !== null || s.crowdsecPasswordFile !== null;
  const pull = s.crowdsecBouncerKeyFile !== null;
  if (s.crowdsecUrl === null) {
    if (!push && !pull) return null;
    const given = s.crowdsecMachine !== null ? '--crowdsec-machine' : s.crowdsecPasswordFile !== null ? '--crowdsec-password-file' : '--crowdsec-bouncer-key-file';
    throw new SmtpguardError(`${given} is set but --crowdsec-url is not`, { hint: 'set --crowdsec-url (CROWDSEC_URL) to the Local API, e.g. http://10.0.0.5:8080, or remove the crowdsec settings' });
  }
  if (push && (s.crowdsecMachine === null || s.crowdsecPasswordFile === null)) {
    const missing = s.crowdsecMachine === null ? '--crowdsec-machine (CROWDSEC_MACHINE)' : '--crowdsec-password-file (CROWDSEC_PASSWORD_FILE)';
    throw new SmtpguardError(`pushing blocks to CrowdSec needs ${missing} too`, { hint: 'set both, or neither (then nothing is pushed)' });
  }
  if (!push && !pull) {
    throw new SmtpguardError(`--crowdsec-url ${s.crowdsecUrl} is set, but nothing to do with it`, {
      hint: 'set --crowdsec-machine and --crowdsec-password-file to push blocks, --crowdsec-bouncer-key-file to pull them (or both)',
    });
  }
  return { url: s.crowdsecUrl, push, pull };
}

export class FleetSync {
  private readonly faults: string[] = [];
  private credentialError: SmtpguardError | null = null;
  private readonly lapi: Lapi;
  private readonly filter: StreamFilter;
  readonly report: SyncReport = { pulled: null, fleetBlocks: 0, sent: 0, queued: 0, faults: this.faults };

  private constructor(
    private readonly settings: CrowdsecSettings,
    private readonly url: string,
    private readonly options: SyncOptions,
    private readonly password: string | null,
    private readonly bouncerKey: string | null,
  ) {
    this.lapi = new Lapi(url, new Budget(options.budgetMs ?? LAPI_BUDGET_MS), `smtpguard/${version()}`, options.fetch);
    this.filter = { scenarios: settings.crowdsecScenarios, origins: settings.crowdsecOrigins, widest4: settings.crowdsecWidest, widest6: settings.crowdsecWidest6 };
  }

  /** null when no crowdsec setting is given. */
  static async open(settings: CrowdsecSettings, options: SyncOptions): Promise<FleetSync | null> {
    const checked = checkCrowdsecSettings(settings);
    if (checked === null) return null;
    const problems: SmtpguardError[] = [];
    const secret = async (file: string | null, setting: string) => {
      if (file === null || !options.network) return null;
      try {
        return await readSecretFile(file, setting);
      } catch (error) {
        if (!(error instanceof SmtpguardError)) throw error;
        problems.push(error);
        return null;
      }
    };
    const password = await secret(settings.crowdsecPasswordFile, '--crowdsec-password-file');
    const key = await secret(settings.crowdsecBouncerKeyFile, '--crowdsec-bouncer-key-file');
    const sync = new FleetSync(settings, checked.url, options, password, key);
    sync.credentialError = problems[0] ?? null;
    return sync;
  }

  private get now(): number {
    return this.options.now.getTime();
  }

  private file(name: string): string {
    return path.join(this.settings.stateDir, name);
  }

  /** The fleet's decisions still running, as last pulled (pull() first), and this host's own bans. */
  private live: FleetDecision[] = [];
  private own: Set<string> = new Set();

  /**
   * Reads the decision stream (with a bouncer key and network) and keeps it; without an
   * answer, the decisions last pulled stay in use.
   */
  async pull(): Promise<void> {
    if (this.settings.crowdsecBouncerKeyFile === null) return;
    let state = await this.readJson(STREAM_FILE, parseStreamState);
    if (this.bouncerKey !== null && this.options.pull !== false) {
      const startup = needsStartup(state, this.url, this.filter, this.now);
      try {
        const answer = (await this.lapi.stream(this.bouncerKey, startup)) as StreamAnswer | null;
        if (typeof answer !== 'object' || answer === null) throw new LapiError('server', `GET ${this.url}/v1/decisions/stream: the answer is not a decision stream`);
        // the longest ban our own settings can give (forever: any date a Date can hold)
        const maxDuration = Math.max(this.settings.banTime, this.settings.banTimeMax, this.settings.window === Infinity ? 0 : this.settings.window);
        const applied = applyStreamAnswer(state, answer, { startup, url: this.url, filter: this.filter, now: this.now, maxDuration });
        state = applied.state;
        if (applied.skipped > 0) this.faults.push(`${applied.skipped} pulled decision(s) were not understood (a field of the wrong form, or longer than our longest ban) and are left out`);
        if (applied.refused.length > 0) {
          const shown = applied.refused.slice(0, 5).join(', ') + (applied.refused.length > 5 ? ` and ${applied.refused.length - 5} more` : '');
          this.faults.push(`${applied.refused.length} pulled decision(s) wider than /${this.settings.crowdsecWidest} (IPv4) or /${this.settings.crowdsecWidest6} (IPv6) refused: ${shown} (--crowdsec-widest, --crowdsec-widest6)`);
        }
        await this.writeJson(STREAM_FILE, state);
        this.report.pulled = state.decisions.length;
      } catch (error) {
        this.fault(error, '--crowdsec-bouncer-key-file', `pull failed, the decisions pulled ${state === null ? '(none yet)' : `at ${new Date(state.pulled).toISOString()}`} stay in use`);
      }
    }
    const queue = (await this.readJson(QUEUE_FILE, parseQueue)) ?? emptyQueue();
    this.live = liveDecisions(state, this.now).filter((d) => selects(this.filter, d.scenario, d.origin));
    this.own = ownBans(queue, this.now);
  }

  /**
   * The decision with the fleet's blocks added (pure, from what pull() kept): this host's
   * never-block ranges win, its own pushed bans are not taken back.
   */
  merge(decision: Decision, neverBlock: readonly NamedRange[]): Decision {
    const merged = mergeFleetBlocks(decision, this.live, { neverBlock, ownBans: this.own, now: this.now, maxBlocks: this.settings.maxBlocks });
    this.report.fleetBlocks = merged.blocks.length - decision.blocks.length;
    return merged;
  }

  /** Queues a ban for each new local block, then sends every queued one it can. */
  async push(decision: Decision, summaries: readonly AddressSummary[]): Promise<void> {
    const machine = this.settings.crowdsecMachine;
    if (machine === null || !this.options.network) return;
    const seen = new Map(summaries.map((s) => [s.address, s]));
    const blocks: SeenBlock[] = decision.blocks.map((block) => {
      let firstSeen = Infinity;
      let lastSeen = block.lastSeen ?? -Infinity;
      for (const a of block.addresses) {
        const s = seen.get(a);
        if (s === undefined) continue;
        firstSeen = Math.min(firstSeen, s.firstSeen);
        lastSeen = Math.max(lastSeen, s.lastSeen);
      }
      return { block, firstSeen, lastSeen };
    });
    let queue = (await this.readJson(QUEUE_FILE, parseQueue)) ?? emptyQueue();
    queue = queueBans(queue, blocks, { machine, now: this.now, window: this.settings.window }).queue;
    await this.writeJson(QUEUE_FILE, queue);
    const pending = unsent(queue, this.now);
    this.report.queued = pending.length;
    if (pending.length === 0 || this.password === null) return;
    try {
      queue = await this.send(machine, this.password, queue, pending);
    } catch (error) {
      this.fault(error, '--crowdsec-machine / --crowdsec-password-file', `${unsent(queue, this.now).length} alert(s) wait in ${this.file(QUEUE_FILE)} for the next run`);
    }
    this.report.queued = unsent(queue, this.now).length;
  }

  private async send(machine: string, password: string, start: PushQueue, pending: ReturnType<typeof unsent>): Promise<PushQueue> {
    let queue = start;
    let token = await this.token(machine, password, false);
    const withToken = async <T>(call: (t: string) => Promise<T>): Promise<T> => {
      try {
        return await call(token.token);
      } catch (error) {
        if (!(error instanceof LapiError) || error.fault !== 'auth') throw error;
        token = await this.token(machine, password, true); // expired or revoked: log in once more
        return call(token.token);
      }
    };
    // an alert tried before may have arrived although its answer did not: look before sending again
    const arrived = new Set<string>();
    for (const ban of pending.filter((b) => b.attempts > 0)) {
      const { scope, value } = scopeOf(ban.cidr);
      const found = await withToken((t) => this.lapi.findAlerts(t, { scope, value, scenario: scenarioOf(ban) }));
      if (found.some((a) => typeof a.message === 'string' && a.message.includes(banTag(ban)))) arrived.add(ban.key);
    }
    if (arrived.size > 0) {
      queue = markSent(queue, arrived);
      await this.writeJson(QUEUE_FILE, queue);
    }
    const toSend = pending.filter((b) => !arrived.has(b.key));
    for (let i = 0; i < toSend.length; i += BATCH) {
      const batch = toSend.slice(i, i + BATCH);
      const keys = new Set(batch.map((b) => b.key));
      queue = markTried(queue, keys);
      await this.writeJson(QUEUE_FILE, queue); // a try counts before it is made
      const alerts = batch.map((ban) => renderAlert(ban, { machine, now: this.now, version: version() }));
      await withToken((t) => this.lapi.postAlerts(t, alerts));
      queue = markSent(queue, keys);
      await this.writeJson(QUEUE_FILE, queue);
      this.report.sent += batch.length;
    }
    return queue;
  }

  /** The machine's JWT: the kept one while it has a minute left, else a new login. */
  private async token(machine: string, password: string, renew: boolean): Promise<Token> {
    const kept = renew ? null : await this.readJson(TOKEN_FILE, (text) => {
      const t = JSON.parse(text) as Token & { url?: unknown; machine?: unknown };
      return typeof t.token === 'string' && typeof t.expire === 'number' ? t : null;
    });
    // a token of another LAPI or machine (the settings changed) is not used
    if (kept !== null && kept.url === this.url && kept.machine === machine && kept.expire - 60e3 > Date.now()) return kept;
    let token: Token;
    try {
      token = await this.lapi.login(machine, password);
    } catch (error) {
      if (error instanceof LapiError && error.fault === 'auth') {
        throw new LapiError('auth', `LAPI refused the login of machine ${machine}: ${error.message}`, { cause: error });
      }
      throw error;
    }
    await this.writeJson(TOKEN_FILE, { url: this.url, machine, ...token });
    return token;
  }

  private fault(error: unknown, setting: string, consequence: string): void {
    if (!(error instanceof LapiError)) throw error;
    if (error.fault === 'auth') {
      this.credentialError ??= new SmtpguardError(`CrowdSec refused the credentials of ${setting}: ${error.message}`, {
        hint: `check ${setting} against "cscli machines list" / "cscli bouncers list" on the LAPI server; the local blocks were applied`,
        cause: error,
      });
      return;
    }
    this.faults.push(`${error.message}: ${consequence}`);
  }

  /**
   * The end of the run's sharing: one warning line for every LAPI fault, then the
   * credential error (exit 3), if any.
   */
  finish(): void {
    if (this.faults.length > 0) this.options.warn(`CrowdSec ${this.url}: ${this.faults.join('; ')}`);
    if (this.credentialError !== null) throw this.credentialError;
  }

  private async readJson<T>(name: string, parse: (text: string) => T | null): Promise<T | null> {
    return readStore(this.file(name), {
      parse: (text) => {
        const value = parse(text);
        if (value === null) throw new Error(`not a ${name} of this version`);
        return value;
      },
      warn: this.options.warn,
      keep: !this.options.network, // a dry run changes nothing
      consequence: 'it is written anew',
    });
  }

  private async writeJson(name: string, value: unknown): Promise<void> {
    if (!this.options.network) return;
    await mkdir(this.settings.stateDir, { recursive: true, mode: 0o755 });
    await writeOwnFile(this.file(name), JSON.stringify(value) + '\n', 0o600);
  }
}

