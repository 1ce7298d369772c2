/**
 * The everyday verbs that change something: `unblock`, `block`, `allow` (edge). Each
 * records its wish (overrides.json in the state directory, or ALLOW in the config
 * file) and then does what `run` does, under the same lock and with the same reload
 * rules, so the firewall and the map have it at once. `--dry-run` changes nothing.
 */
import { createTwoFilesPatch } from 'diff';
import path from 'node:path';
import { inRange, parseAdminRange, parseIp, parseRange, rangesOverlap, rangeWord } from '../../address.js';
import { addConfigWord, removeConfigWord } from '../config-file.js';
import { parseWindow } from '../../duration.js';
import { ExitCode, SmtpguardError, usageError } from '../../errors.js';
import { ensureDirectory, writeWithBackup } from '../../store/atomic.js';
import { describeUntil, type Override } from '../../decide/overrides.js';
import { readOverrides, writeOverrides } from '../../store/overrides.js';
import { planJson, renderPlanText, summaryLine } from '../../report/plan-report.js';
import { parseConfigFile, renderConfigHeader, type Settings } from '../settings.js';
import type { Io } from './common.js';
import { ADMIN_LOCK_WAIT_MS, withRunLock } from './locked.js';
import { readBans, writeBans } from '../../store/bans.js';
import { runLocked, type RunResult } from './run.js';

/** The verbs wait for a busy lock (a follower applying) a little. */
const withRunLockWaiting = <T>(settings: Settings, dryRun: boolean, body: () => Promise<T>): Promise<T> => withRunLock(settings, dryRun, body, ADMIN_LOCK_WAIT_MS);

export interface VerbOptions {
  target: string;
  now: Date;
  defaultLogs: boolean;
  dryRun: boolean;
  json: boolean;
}

/** The verb's address or range, read as --allow reads it (address.ts parseAdminRange). */
function targetCidr(text: string): string {
  const read = parseAdminRange(text);
  if ('problem' in read) throw usageError(read.problem, 'e.g. 192.0.2.7, 198.51.100.0/24 or 2001:db8:1:2::/64');
  return read.cidr;
}

/** --for: a duration from now; null when not given. */
function untilOf(text: string | null, now: Date): { given: boolean; until: string | null } {
  if (text === null) return { given: false, until: null };
  let ms: number;
  try {
    ms = parseWindow(text);
  } catch (error) {
    throw usageError(`--for ${text}: ${(error as Error).message}`, 'e.g. --for 24h or --for 7d');
  }
  return { given: true, until: ms === Infinity ? null : new Date(now.getTime() + ms).toISOString() };
}

async function report(io: Io, options: VerbOptions, what: string, result: RunResult, extra: object = {}, preface: string[] = []): Promise<void> {
  if (options.json) {
    io.stdout.write(`${JSON.stringify({ done: !options.dryRun, what, ...extra, plan: await planJson(result.plan, result.summarised) }, null, 2)}\n`);
  } else if (options.dryRun) {
    io.stdout.write([`smtpguard --dry-run: would ${what}`, ...preface, ''].join('\n') + (await renderPlanText(result.plan, result.summarised)));
  } else {
    io.stdout.write(`${what}; ${summaryLine(result.plan)}${result.plan.changes.length === 0 ? ', no file changed' : ''}\n`);
  }
}

export async function unblockCommand(settings: Settings, options: VerbOptions & { for: string | null; forget?: boolean }, io: Io): Promise<void> {
  const cidr = targetCidr(options.target);
  const range = parseRange(cidr);
  const wanted = untilOf(options.for, options.now);
  await withRunLockWaiting(settings, options.dryRun, async () => {
    const before = await readOverrides(settings.stateDir);
    const bans = await readBans(settings.stateDir, io.warn, options.dryRun);
    const now = options.now.getTime();
    // blocks kept by a running ban (their events may have left the window) count as blocked
    const banned = bans.filter((r) => (r.until === null || r.until > now) && rangesOverlap(parseRange(r.cidr), range));
    let entry: Override | null = null;
    let droppedManual: Override[] = [];
    const result = await runLocked(settings, options, io, async (raw, summaries) => {
      const blocked = raw().blocks.filter((b) => rangesOverlap(parseRange(b.cidr), range));
      droppedManual = before.filter((o) => o.kind === 'block' && rangesOverlap(parseRange(o.cidr), range));
      if (options.forget === true && !options.dryRun) await writeBans(settings.stateDir, bans.filter((r) => !rangesOverlap(parseRange(r.cidr), range)));
      if (blocked.length === 0 && banned.length === 0 && droppedManual.length === 0 && !wanted.given) return before; // nothing to unblock
      let until = wanted.until;
      if (!wanted.given) {
        // until the events that caused the block have left the window
        const inside = blocked.flatMap((b) => b.addresses).filter((a) => inRange(parseIp(a), range));
        const causes = new Set(inside.length > 0 ? inside : blocked.flatMap((b) => b.addresses));
        const seen = summaries.filter((s) => causes.has(s.address)).map((s) => s.lastSeen);
        const last = seen.length > 0 ? seen.reduce((m, t) => Math.max(m, t), -Infinity) : options.now.getTime();
        const banEnd = banned.reduce<number | null>((end, r) => (end === null || r.until === null ? null : Math.max(end, r.until)), 0);
        until = settings.window === Infinity || banEnd === null ? null : new Date(Math.max(last + settings.window, banEnd)).toISOString();
      }
      entry = { cidr, kind: 'unblock', until, comment: null, created: options.now.toISOString() };
      const next = [...before.filter((o) => !droppedManual.includes(o) && !(o.kind === 'unblock' && o.cidr === cidr)), entry];
      if (!options.dryRun) await writeOverrides(settings.stateDir, next);
      return next;
    });
    const made = entry as Override | null;
    if (made === null) {
      if (options.json) io.stdout.write(`${JSON.stringify({ done: false, what: `${cidr} is not blocked`, plan: await planJson(result.plan, result.summarised) }, null, 2)}\n`);
      else io.stdout.write(`${cidr} is not blocked: nothing to unblock (--for DURATION keeps it from being blocked anyway)\n`);
      return;
    }
    const dropped = droppedManual.map((o) => `the manual block ${o.cidr} is removed`);
    await report(io, options, `unblock ${cidr} ${describeUntil(made)}${dropped.length > 0 ? ` (${dropped.join(', ')})` : ''}`, result, { override: made, removed: droppedManual });
  });
}

export async function blockCommand(settings: Settings, options: VerbOptions & { for: string | null; comment: string | null }, io: Io): Promise<void> {
  const cidr = targetCidr(options.target);
  const range = parseRange(cidr);
  const { until } = untilOf(options.for, options.now);
  await withRunLockWaiting(settings, options.dryRun, async () => {
    const before = await readOverrides(settings.stateDir);
    const entry: Override = { cidr, kind: 'block', until, comment: options.comment, created: options.now.toISOString() };
    const result = await runLocked(settings, options, io, async (_raw, _summaries, neverBlock) => {
      const guard = neverBlock.find((n) => rangesOverlap(range, parseRange(n.cidr)));
      if (guard !== undefined) {
        throw new SmtpguardError(`${cidr} overlaps ${guard.source} ${guard.cidr}: smtpguard never blocks that`, {
          hint: guard.source === 'allow' ? `take it out of ALLOW first (smtpguard allow --remove ${guard.cidr}), or block a range outside it` : 'block a range outside it',
        });
      }
      const next = [...before.filter((o) => o.cidr !== cidr && !(o.kind === 'unblock' && rangesOverlap(parseRange(o.cidr), range))), entry];
      if (!options.dryRun) await writeOverrides(settings.stateDir, next);
      return next;
    });
    await report(io, options, `block ${cidr} ${describeUntil(entry)} (manual${options.comment === null ? '' : `: ${options.comment}`})`, result, { override: entry });
  });
}

export async function allowCommand(
  settings: Settings,
  options: VerbOptions & { remove: boolean; comment: string | null; configFile: string; configText: string | null },
  io: Io,
): Promise<void> {
  const cidr = targetCidr(options.target);
  // ALLOW keeps an address as an address, a range as a range
  const word = rangeWord(cidr);
  const text = options.configText;
  let after: string;
  let allow: string[];
  if (options.remove) {
    // the file's entry as it is written there (192.0.2.7/32, 2001:DB8::1): the same range, another spelling
    const written = text === null ? word : (fileAllowWords(text, options.configFile).find((w) => sameRange(w, cidr)) ?? word);
    const removed = text === null ? null : removeConfigWord(text, 'ALLOW', written);
    if (removed === null) {
      throw new SmtpguardError(`${word} is not in ALLOW of ${options.configFile}`, {
        hint: settings.allow.includes(word) ? 'it comes from --allow or SMTPGUARD_ALLOW: drop it there' : `ALLOW is ${settings.allow.join(' ') || 'empty'}`,
      });
    }
    after = removed;
    allow = settings.allow.filter((a) => a !== word);
  } else {
    if (settings.allow.includes(word)) {
      io.stdout.write(`${word} is already in ALLOW: nothing to do\n`);
      return;
    }
    after = addConfigWord(text, 'ALLOW', word, options.comment, renderConfigHeader());
    allow = [...settings.allow, word];
  }
  const what = options.remove ? `take ${word} out of ALLOW in ${options.configFile}` : `add ${word} to ALLOW in ${options.configFile}`;
  await withRunLockWaiting(settings, options.dryRun, async () => {
    const result = await runLocked({ ...settings, allow }, options, io, async () => {
      const overrides = await readOverrides(settings.stateDir);
      if (!options.dryRun) {
        if (text === null) await ensureDirectory(path.dirname(options.configFile), 'the directory', '--config');
        await writeWithBackup(options.configFile, after, text === null ? null : options.configFile).catch((error: unknown) => {
          throw error instanceof SmtpguardError ? error : new SmtpguardError(`cannot write ${options.configFile}: ${(error as Error).message}`, { exitCode: ExitCode.writeFailed });
        });
      }
      return overrides;
    });
    const diff = createTwoFilesPatch(options.configFile, options.configFile, text ?? '', after, text === null ? '(new file)' : '', '(smtpguard)').trimEnd();
    await report(io, options, what, result, { configFile: options.configFile, allow }, ['', diff]);
  });
}

/** The ALLOW words of the config file as written (a file that does not parse has none here: run reports it). */
function fileAllowWords(text: string, file: string): string[] {
  try {
    return parseConfigFile(text, file).get('ALLOW')?.words ?? [];
  } catch {
    return [];
  }
}

/** Whether an ALLOW word names the range `cidr` (read by the one parser of what an admin types). */
function sameRange(word: string, cidr: string): boolean {
  const read = parseAdminRange(word);
  return 'cidr' in read && read.cidr === cidr;
}
