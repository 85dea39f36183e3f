import { ChvApiError } from '@my-hypervisor/chv-client';
import { GuestImageError } from '@my-hypervisor/guest-image/core';
import { NetOpsError } from '@my-hypervisor/net-ops';
import { StorageError } from '@my-hypervisor/storage';
import { VmManagerError } from '@my-hypervisor/vm-manager';
import { CliError } from './errors.js';
import { ExitCode, type ExitCodeValue } from './exit-codes.js';

/** An error as the CLI reports it (also the `error` object of `--json` output on stderr). */
export interface ErrorReport {
  /**
   * The error class: CliError, VmManagerError, NetOpsError, StorageError, ChvApiError, GuestImageError,
   * ClusterError, or Error.
   */
  readonly source: string;
  /** The stable code of that class (`INVALID_ARGUMENT`, `NOT_FOUND`, …); `UNEXPECTED` for anything else. */
  readonly code: string;
  readonly message: string;
  /** The flag, variable or spec field at fault, when known. */
  readonly field: string | null;
  /** What to do about it. */
  readonly hint: string | null;
  readonly exitCode: ExitCodeValue;
}

interface CodedError {
  readonly source: string;
  readonly code: string;
  readonly details: {
    readonly field?: unknown;
    readonly hint?: unknown;
    readonly vm?: unknown;
    readonly reason?: unknown;
    readonly fix?: unknown;
  };
}

const CLUSTER_ERROR = Symbol.for('@my-hypervisor/cluster/ClusterError');

function coded(error: unknown): CodedError | undefined {
  if (CliError.isInstance(error)) return { source: 'CliError', code: error.code, details: error.details };
  if (VmManagerError.isInstance(error))
    return { source: 'VmManagerError', code: error.code, details: error.details };
  if (NetOpsError.isInstance(error))
    return { source: 'NetOpsError', code: error.code, details: error.details };
  if (StorageError.isInstance(error))
    return { source: 'StorageError', code: error.code, details: error.details };
  if (ChvApiError.isInstance(error))
    return { source: 'ChvApiError', code: error.code, details: error.details };
  if (GuestImageError.isInstance(error))
    return { source: 'GuestImageError', code: error.code, details: error.details };
  // Told by its marker, so that reporting an error never loads the etcd client.
  if (typeof error === 'object' && error !== null && CLUSTER_ERROR in error) {
    const { code, field } = error as unknown as { code: string; field?: string };
    return { source: 'ClusterError', code, details: field === undefined ? {} : { field } };
  }
  return undefined;
}

function isZodError(error: unknown): error is { issues: { path: PropertyKey[]; message: string }[] } {
  return (
    typeof error === 'object' &&
    error !== null &&
    (error as { name?: unknown }).name === 'ZodError' &&
    Array.isArray((error as { issues?: unknown }).issues)
  );
}

/**
 * The exit code for an error: 2 for bad input (usage, INVALID_ARGUMENT of any of our packages, zod, and a
 * vm-manager CONFLICT that names a field: a collision found while validating, before any work), 130 for an
 * interruption, 1 for everything else — NOT_FOUND included: the input was well-formed, the thing is missing.
 */
export function exitCodeFor(error: unknown): ExitCodeValue {
  const c = coded(error);
  if (c) {
    if (c.code === 'USAGE' || c.code === 'INVALID_ARGUMENT') return ExitCode.USAGE;
    // A CONFLICT without a field is a backend's, found while changing the host: the operation failed.
    if (c.source === 'VmManagerError' && c.code === 'CONFLICT' && typeof c.details.field === 'string') {
      return ExitCode.USAGE;
    }
    if (c.code === 'INTERRUPTED') return ExitCode.INTERRUPTED;
    return ExitCode.FAILED;
  }
  if (isZodError(error)) return ExitCode.USAGE;
  return ExitCode.FAILED;
}

const vmHints: Record<string, string> = {
  NOT_FOUND: 'run `myhv vm ls` to see the VMs on this host',
  ALREADY_EXISTS: 'choose another name, or remove the old VM with `myhv vm rm NAME`',
  WRONG_STATE: 'see the VM with `myhv vm inspect NAME`; `myhv vm rm --force` stops a running VM first',
  BUSY: 'another myhv command is working on this VM; retry when it has finished',
  CONFLICT: 'choose another host port; `myhv forward ls` shows the ones in use',
  EXHAUSTED: 'remove VMs you no longer need, or use a larger --subnet',
  NETWORK_FAILED: 'run `myhv doctor`; add --debug to see the failing command and its output',
  STORAGE_FAILED: 'run `myhv doctor` (virtiofsd); add --debug to see the daemon output',
  VMM_FAILED: 'see `myhv vm logs NAME --vmm`; add --debug for the VMM log tail',
  CORRUPT_STATE: 'look at the state file under the state directory; `myhv gc` leaves it alone',
  TIMEOUT: 'the host may be overloaded; retry, or run `myhv doctor`',
};

const clusterHints: Record<string, string> = {
  NOT_FOUND: 'run `myhv --cluster … vm ls` to see the VMs of the fleet',
  UNAVAILABLE: 'check the etcd endpoints (--cluster) and that a majority of the etcd members run',
  CONFLICT: 'choose another name (`myhv --cluster … vm ls`), or another --host-id',
  EXHAUSTED: 'give the cluster a larger --cluster-pool, or remove hosts that left for good',
  LEASE_LOST: 'the host lost its lease (etcd unreachable past --cluster-ttl); myhvd joins again on its own',
};

const imageHints: Record<string, string> = {
  NOT_FOUND: 'run `myhv image ls` to see the images, or `myhv image build NAME` to make one',
  CORRUPT_IMAGE: 'rebuild it with `myhv image build NAME --force`, or remove it with `myhv image rm NAME`',
  FETCH_FAILED: 'check that apt-get can download (`apt-get update`); add --debug for its output',
  TOOL_MISSING: 'apt-get install --no-install-recommends dpkg xz-utils zstd (or run scripts/setup)',
};

const netHints: Record<string, string> = {
  PERMISSION_DENIED: 'run myhv as root (network changes need CAP_NET_ADMIN)',
  BACKEND_UNAVAILABLE: 'run `myhv doctor` to see what is missing',
  CONFLICT: 'choose another host port or name; `myhv net ls` shows what is in use',
};

/** For a VMM that exited because the host has no usable KVM (vm-manager's `details.reason`). */
const KVM_HINT =
  'check `ls -l /dev/kvm` and `myhv doctor`: load kvm_intel or kvm_amd, enable (nested) virtualization, ' +
  'or run with --vmm-binary simulator (no guest runs)';

function hintFor(c: CodedError | undefined): string | null {
  if (!c) return null;
  if (typeof c.details.hint === 'string') return c.details.hint;
  if (c.source === 'VmManagerError' && c.code === 'VMM_FAILED' && c.details.reason === 'KVM_UNAVAILABLE') {
    return KVM_HINT;
  }
  // Bad host state, not bad input (exit 1): the command that makes the path safe, then doctor to see the rest.
  if (c.source === 'VmManagerError' && c.code === 'UNSAFE_PERMISSIONS' && typeof c.details.fix === 'string') {
    return `${c.details.fix}; \`myhv doctor\` lists every such path`;
  }
  if (c.source === 'VmManagerError') return vmHints[c.code] ?? null;
  if (c.source === 'NetOpsError') return netHints[c.code] ?? null;
  if (c.source === 'GuestImageError') return imageHints[c.code] ?? null;
  if (c.source === 'ClusterError') return clusterHints[c.code] ?? null;
  if (c.source === 'StorageError' && c.code === 'BINARY_MISSING') {
    return 'apt-get install --no-install-recommends qemu-system-common (or run scripts/setup)';
  }
  return null;
}

/** What the CLI prints for `error`: message, code, field, a hint, and the exit code. */
export function describeError(error: unknown): ErrorReport {
  const c = coded(error);
  const message = error instanceof Error ? error.message : String(error);
  if (!c && isZodError(error)) {
    const issue = error.issues[0];
    const field = issue ? issue.path.map(String).join('.') || null : null;
    return {
      source: 'ZodError',
      code: 'INVALID_ARGUMENT',
      message: issue ? `${field ?? 'input'}: ${issue.message}` : message,
      field,
      hint: null,
      exitCode: ExitCode.USAGE,
    };
  }
  return {
    source: c?.source ?? (error instanceof Error ? error.name : 'Error'),
    code: c?.code ?? 'UNEXPECTED',
    message,
    field: typeof c?.details.field === 'string' ? c.details.field : null,
    hint: hintFor(c),
    exitCode: exitCodeFor(error),
  };
}

/** The cause chain for `--debug`: each error's long message (command, stderr, log tails) and stack. */
export function debugLines(error: unknown): string[] {
  const lines: string[] = [];
  const seen = new Set<unknown>();
  let current: unknown = error;
  let depth = 0;
  while (current !== undefined && current !== null && !seen.has(current) && depth < 16) {
    seen.add(current);
    const prefix = depth === 0 ? 'error' : 'caused by';
    if (current instanceof Error) {
      const c = coded(current);
      const long = (current as { longMessage?: unknown }).longMessage;
      lines.push(`${prefix}: ${current.name}${c ? ` [${c.code}]` : ''}: ${current.message}`);
      if (typeof long === 'string' && long !== current.message) {
        for (const l of long.split('\n').slice(1)) lines.push(`  ${l}`);
      }
      const details = (current as { details?: unknown }).details;
      if (details && typeof details === 'object' && Object.keys(details).length > 0) {
        lines.push(`  details: ${safeJson(details)}`);
      }
      if (current.stack) {
        for (const l of current.stack.split('\n').slice(1, 6)) lines.push(`  ${l.trim()}`);
      }
      current = current.cause;
    } else {
      lines.push(`${prefix}: ${String(current)}`);
      break;
    }
    depth++;
  }
  return lines;
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? String(v) : v));
  } catch {
    return String(value);
  }
}
