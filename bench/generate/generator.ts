/** The generator: lines and their ground truth, and writing them to a file. */
import { open } from 'node:fs/promises';
import { BY_PROFILE } from './attacks.js';
import { DAY_MS, DEFAULT_ATTACK_SHARE, type GenerateOptions } from './options.js';
import { ORDINARY } from './ordinary.js';
import { StampFormatter } from './timestamps.js';
import { addEvent, type GroundTruth } from './truth.js';
import { World } from './world.js';

/** In-session spacing of lines: at most this many microseconds apart (sessions are short). */
const MAX_STEP_US = 150_000;

function validate(options: GenerateOptions): { startUs: number; spanUs: number; share: number } {
  const { lines, seed, start } = options;
  if (!Number.isInteger(lines) || lines < 0) throw new RangeError(`lines must be a whole number >= 0, got ${lines}`);
  if (!Number.isFinite(seed)) throw new RangeError(`seed must be a finite number, got ${seed}`);
  const startMs = start.getTime();
  if (Number.isNaN(startMs)) throw new RangeError('start is not a valid date');
  const endMs = options.end === undefined ? startMs + 7 * DAY_MS : options.end.getTime();
  if (Number.isNaN(endMs) || endMs < startMs) throw new RangeError('end must be a valid date, not before start');
  const share = options.attackShare ?? DEFAULT_ATTACK_SHARE;
  if (!(share >= 0 && share <= 1)) throw new RangeError(`attackShare must lie in [0, 1], got ${share}`);
  return { startUs: startMs * 1000, spanUs: (endMs - startMs) * 1000, share };
}

/**
 * Yields `options.lines` log lines (no newline), timestamps non-decreasing from
 * `start` towards `end`, and counts in `truth` every event the parser must find in
 * each line, as that line is handed out.
 */
export function* generateLines(options: GenerateOptions, truth: GroundTruth): Generator<string> {
  const { startUs, spanUs, share } = validate(options);
  const n = options.lines;
  const format = options.format ?? 'rfc3339';
  const stamps = new StampFormatter(format, options.host ?? 'mx');
  const world = new World(options.seed, options.attackers ?? n / 250, options.ipv6Attackers ?? 0);
  const rng = world.rng;
  const postfixOnly = format === 'maillog';
  let emitted = 0;
  let attackLines = 0;
  while (emitted < n) {
    world.tick();
    const sessionStart = startUs + Math.floor((spanUs * emitted) / n);
    const attack = share >= 1 || (share > 0 && attackLines + rng.float() * 6 - 3 < share * emitted);
    world.out = [];
    if (attack) {
      const a = world.attacker();
      BY_PROFILE[a.profile].pick(rng)(world, a, sessionStart);
    } else {
      ORDINARY.pick(rng)(world, sessionStart);
    }
    const session = postfixOnly ? world.out.filter((line) => !line.foreign) : world.out;
    const k = Math.min(session.length, n - emitted); // the last session may be cut short
    if (k === 0) continue;
    // The session owns the time slot [sessionStart, sessionStart + span * k / n); it starts
    // somewhere in the room that its k lines (`step` apart at most) leave, and line j falls
    // in [j * step, (j + 0.9) * step) after that: times never go backwards.
    const step = Math.min(spanUs / n, MAX_STEP_US);
    const begin = sessionStart + Math.floor(rng.float() * ((spanUs * k) / n - step * k));
    for (let j = 0; j < k; j++) {
      const line = session[j]!;
      const t = begin + Math.floor(step * (j + rng.float() * 0.9));
      if (line.kind !== null) addEvent(truth, line.address!, line.kind, line.count);
      emitted++;
      if (attack) attackLines++;
      yield stamps.format(t) + line.text;
    }
  }
}

const WRITE_BYTES = 4 << 20;

/**
 * Writes the lines to `path` and returns the ground truth. Lines are copied into
 * 4 MiB buffers (they are ASCII); a full buffer is written while the next one fills,
 * so millions of lines take seconds.
 */
export async function writeLog(path: string, options: GenerateOptions): Promise<GroundTruth> {
  const truth: GroundTruth = {};
  const file = await open(path, 'w');
  let writing: Promise<unknown> = Promise.resolve();
  try {
    let buffers = [Buffer.allocUnsafe(WRITE_BYTES), Buffer.allocUnsafe(WRITE_BYTES)] as const;
    let buffer = buffers[0];
    let used = 0;
    const flush = async () => {
      await writing; // the other buffer is free again
      writing = file.write(buffer, 0, used);
      buffers = [buffers[1], buffers[0]];
      buffer = buffers[0];
      used = 0;
    };
    for (const line of generateLines(options, truth)) {
      if (used + line.length + 1 > buffer.length) {
        await flush();
        if (line.length + 1 > buffer.length) {
          buffers = [Buffer.allocUnsafe(line.length + 1), buffers[1]];
          buffer = buffers[0];
        }
      }
      used += buffer.write(line, used, 'latin1');
      buffer[used++] = 0x0a;
    }
    if (used > 0) await flush();
    await writing;
  } finally {
    await writing.catch(() => undefined);
    await file.close();
  }
  return truth;
}
