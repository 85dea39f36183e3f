/** The exit codes of `myhv`. */
export const ExitCode = {
  /** The command did what it was asked. */
  OK: 0,
  /** The operation ran and failed, or what it acts on does not exist (NOT_FOUND). */
  FAILED: 1,
  /** Bad input: usage, a flag, a variable, a config or spec file, a host port already taken. Nothing was changed. */
  USAGE: 2,
  /** Interrupted by SIGINT or SIGTERM, after cleaning up (128 + SIGINT). */
  INTERRUPTED: 130,
} as const;

/** One of the `ExitCode` numbers the CLI exits with. */
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];
