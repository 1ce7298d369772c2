/** The one way a run starts a command (edge): execa, a timeout, stdin closed, the output kept as one line. */
import { execa } from 'execa';
import type { CommandResult } from './change.js';

const COMMAND_TIMEOUT_MS = 120_000;

export async function execCommand(argv: readonly string[]): Promise<CommandResult> {
  const [file, ...args] = argv as [string, ...string[]];
  const result = await execa(file, args, { reject: false, timeout: COMMAND_TIMEOUT_MS, stdin: 'ignore', all: true });
  // one line, so that the error built from it stays one line
  const output = String(result.all ?? '')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .join(' | ')
    .slice(0, 1000);
  const failure = result.timedOut ? `timed out after ${COMMAND_TIMEOUT_MS / 1000} s` : result.failed && result.exitCode === undefined ? (result.shortMessage ?? 'could not start') : '';
  return { argv: [...argv], ok: !result.failed, output: [failure, output].filter((t) => t !== '').join(': ') };
}
