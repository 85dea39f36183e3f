import { invalidArgument, type ShareCache, StorageError } from '@my-hypervisor/storage';
import type { VirtiofsdInfo, VirtiofsdSandbox } from './virtiofsd-info.js';

/** One share as `buildVirtiofsdArgs` turns it into a virtiofsd argv. */
export interface VirtiofsdArgsInput {
  readonly socketPath: string;
  /** Already resolved and checked to be a directory. */
  readonly hostPath: string;
  readonly cache: ShareCache;
  readonly readOnly: boolean;
  /** Omitted: the daemon's default (namespace). */
  readonly sandbox?: VirtiofsdSandbox;
  /** Omitted: the daemon's default. */
  readonly threadPoolSize?: number;
  readonly xattr?: boolean;
}

/**
 * The argv (without the binary) for one share. Throws UNSUPPORTED for an option this build cannot honour
 * (read-only on the C build, a sandbox mode it lacks) rather than silently serving something else.
 */
export function buildVirtiofsdArgs(
  info: Pick<VirtiofsdInfo, 'flavour' | 'supportsReadOnly' | 'sandboxModes'>,
  input: VirtiofsdArgsInput,
): string[] {
  const { socketPath, hostPath, cache, readOnly, sandbox, threadPoolSize, xattr } = input;
  if (readOnly && !info.supportsReadOnly) {
    throw new StorageError(
      'UNSUPPORTED',
      info.flavour === 'c'
        ? 'readOnly: the C virtiofsd cannot serve a share read-only; install the Rust virtiofsd (1.11 or later)'
        : 'readOnly: this virtiofsd has no --readonly option; upgrade it',
      { details: { field: 'readOnly' } },
    );
  }
  if (sandbox !== undefined && !info.sandboxModes.includes(sandbox)) {
    throw new StorageError('UNSUPPORTED', `sandbox: this virtiofsd does not support sandbox=${sandbox}`, {
      details: { field: 'sandbox' },
    });
  }
  if (threadPoolSize !== undefined && (!Number.isInteger(threadPoolSize) || threadPoolSize < 0)) {
    throw invalidArgument('threadPoolSize', 'must be a non-negative integer');
  }
  const args = [`--socket-path=${socketPath}`];
  if (info.flavour === 'rust') {
    args.push(`--shared-dir=${hostPath}`, `--cache=${cache}`);
    if (sandbox !== undefined) args.push(`--sandbox=${sandbox}`);
    if (threadPoolSize !== undefined) args.push(`--thread-pool-size=${threadPoolSize}`);
    if (xattr) args.push('--xattr');
    if (readOnly) args.push('--readonly');
    return args;
  }
  // The C build parses `-o` values as a comma-separated option list: a comma in the path would smuggle in options.
  if (/[,\\]/.test(hostPath)) {
    throw invalidArgument('hostPath', 'the C virtiofsd cannot take a path containing "," or "\\"');
  }
  args.push('-o', `source=${hostPath}`, '-o', `cache=${cache === 'never' ? 'none' : cache}`);
  if (sandbox !== undefined) args.push('-o', `sandbox=${sandbox}`);
  if (threadPoolSize !== undefined) args.push(`--thread-pool-size=${threadPoolSize}`);
  if (xattr) args.push('-o', 'xattr');
  return args;
}
