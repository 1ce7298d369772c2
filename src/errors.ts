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
