/**
 * The one error type smtpguard throws on purpose. `main` catches it, prints
 * `smtpguard: <message> -- <hint>` on one line and exits with `exitCode`.
 * Anything else that reaches `main` is a bug: exit code INTERNAL.
 */
export const ExitCode = {
  ok: 0,
  /** An internal error: a bug in smtpguard. */
  internal: 1,
  /** Bad flags or arguments. */
  usage: 2,
  /** A file or configuration smtpguard cannot use as it is (unreadable log, bad marker...). */
  input: 3,
  /** Another run holds the lock. */
  lockBusy: 4,
  /** A reload (or postmap) failed; the previous files were put back and reloaded. */
  rolledBack: 5,
  /** A reload failed and so did putting the previous files back: check the firewall now. */
  rollbackFailed: 6,
  /** Writing a file failed (disk full, read-only); every file is its old or its new version. */
  writeFailed: 7,
  /** The run took longer than --timeout: stopped before changing anything, lock released. */
  timeout: 8,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/**
 * What each exit code means, in one line: `--help` prints this list; a test holds the man page's
 * EXIT STATUS and README's "Exit codes" table to the same codes.
 */
export const EXIT_MEANINGS: Readonly<Record<ExitCode, string>> = {
  0: 'done (or nothing to do)',
  1: 'internal error: a bug in smtpguard (run with --debug, please report it)',
  2: 'bad flags or arguments',
  3: 'a file or setting smtpguard cannot use (log, marker, config line, not installed)',
  4: 'another run holds the lock',
  5: 'a reload (or postmap) failed; the previous files were put back and reloaded',
  6: 'a reload failed and so did putting the previous files back: check the firewall now',
  7: 'writing a file failed; each file is its old or its new version',
  8: 'the run took longer than --timeout: stopped before changing anything, the lock released',
};

export class SmtpguardError extends Error {
  readonly exitCode: ExitCode;
  readonly hint: string | undefined;

  constructor(message: string, options: { exitCode?: ExitCode; hint?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SmtpguardError';
    this.exitCode = options.exitCode ?? ExitCode.input;
    this.hint = options.hint;
  }
}

export function usageError(message: string, hint?: string): SmtpguardError {
  return new SmtpguardError(message, { exitCode: ExitCode.usage, hint });
}
