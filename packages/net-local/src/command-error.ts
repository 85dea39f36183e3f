import { NetOpsError, type NetOpsErrorCode } from '@my-hypervisor/net-ops';

/** The programs LocalOps runs and the Debian package that ships each. */
export const debianPackages = {
  ip: 'iproute2',
  nft: 'nftables',
  'iptables-save': 'iptables',
  'iptables-restore': 'iptables',
  sysctl: 'procps',
  cat: 'coreutils',
} as const;

export type Program = keyof typeof debianPackages;

/** A program's failure as the kernel or the tool worded it, before it becomes a NetOpsError. */
export interface FailureText {
  readonly program: Program;
  /** The full argv that ran. */
  readonly command: readonly string[];
  readonly exitCode?: number;
  /** The process's whole stderr, kept for logs. */
  readonly stderr: string;
  /** The part of stderr that belongs to this operation (one batch line's error), when known. */
  readonly text?: string;
  /** The batch line that failed, 1-based, when known. */
  readonly line?: number;
  readonly netns?: string;
  readonly cause?: unknown;
}

const missingNetns =
  /Cannot open network namespace|No such file or directory.*\/run\/netns|setting the network namespace/i;
const missingProgram = /exec of "([^"]+)" failed: No such file or directory/;
const denied = /Operation not permitted|Permission denied|must be root|\bEPERM\b|\bEACCES\b/i;

/**
 * The NetOpsError code for a tool's error text. Kernel errno texts are stable (they come from strerror), so they
 * are what we match: EEXIST, EBUSY, ENODEV/ENOENT, EPERM.
 */
export function classifyErrorText(text: string): NetOpsErrorCode {
  if (missingNetns.test(text) || missingProgram.test(text)) return 'BACKEND_UNAVAILABLE';
  if (denied.test(text)) return 'PERMISSION_DENIED';
  if (/interval overlaps/i.test(text)) return 'CONFLICT';
  if (/File exists/i.test(text)) return 'ALREADY_EXISTS';
  if (/Device or resource busy/i.test(text)) return 'CONFLICT';
  if (/Cannot find device|does not exist|No such device|No such file or directory/i.test(text))
    return 'NOT_FOUND';
  return 'BACKEND_FAILURE';
}

function firstLine(text: string): string {
  return (
    text
      .split('\n')
      .map((l) => l.trim())
      .find((l) => l !== '') ?? 'no error text'
  );
}

/**
 * The NetOpsError for a failed command: the code from the error text (or `code` when the caller knows better),
 * a short message for the CLI with what to do, and the command, exit code and stderr in `details` for logs.
 */
export function commandError(failure: FailureText, code?: NetOpsErrorCode, message?: string): NetOpsError {
  const text = failure.text ?? failure.stderr;
  const resolved = code ?? classifyErrorText(text);
  const program = missingProgram.exec(text)?.[1];
  const details = {
    command: failure.command,
    ...(program === undefined ? {} : { missingProgram: program }),
    ...(failure.exitCode === undefined ? {} : { exitCode: failure.exitCode }),
    stderr: failure.stderr,
    ...(failure.line === undefined ? {} : { line: failure.line }),
  };
  return new NetOpsError(resolved, message ?? describe(failure, resolved, text), {
    cause: failure.cause,
    details,
  });
}

function describe(failure: FailureText, code: NetOpsErrorCode, text: string): string {
  const program = missingProgram.exec(text)?.[1] ?? failure.program;
  if (code === 'PERMISSION_DENIED') {
    return `${program} was refused (${firstLine(text)}): run as root, or give the process CAP_NET_ADMIN (and CAP_SYS_ADMIN for network namespaces)`;
  }
  if (code === 'BACKEND_UNAVAILABLE' && missingNetns.test(text) && failure.netns !== undefined) {
    return `network namespace ${JSON.stringify(failure.netns)} does not exist; create it with "ip netns add ${failure.netns}"`;
  }
  if (code === 'BACKEND_UNAVAILABLE' && missingProgram.test(text)) return notInstalledMessage(program);
  return `${program}: ${firstLine(text)}`;
}

function notInstalledMessage(program: string): string {
  const pkg = (debianPackages as Record<string, string>)[program];
  return `${program} is not installed${pkg ? `; install the Debian package ${pkg} (apt-get install ${pkg})` : ''}`;
}

/** BACKEND_UNAVAILABLE for a program that could not be started at all (ENOENT from spawn). */
export function notInstalledError(program: Program, command: readonly string[], cause: unknown): NetOpsError {
  return new NetOpsError('BACKEND_UNAVAILABLE', notInstalledMessage(program), {
    cause,
    details: { command, missingProgram: program },
  });
}
