import { invalidArgument } from '@my-hypervisor/net-ops';
import { z } from 'zod';
import { type CommandRunner, execaRunner } from './command-runner.js';

/** Where `LocalOps` works (network namespace), its NAT tool, table and chain names, command runner and timeout. */
export interface LocalOpsOptions {
  /**
   * Run everything inside this named network namespace (`ip -n NS`, `ip netns exec NS`); it must exist
   * (`ip netns add NS`). Without it, LocalOps works on the host's own namespace.
   */
  readonly netns?: string;
  /** The NAT driver: `'nft'` (default; our own `inet` table) or `'iptables'` (our own `MYHV-*` chains). */
  readonly nat?: 'nft' | 'iptables';
  /** Runs the commands; default {@link execaRunner}. Inject one to record, fake or wrap them. */
  readonly runner?: CommandRunner;
  /** The nft table (family `inet`) that holds our rules. Default `myhv`. */
  readonly tableName?: string;
  /** Prefix of our iptables chains (`MYHV-PREROUTING`, …); lowercased, the tag of our rule comments. Default `MYHV`. */
  readonly chainPrefix?: string;
  /** Any single command running longer than this is killed and its callers get TIMEOUT. Default 30,000 ms. */
  readonly commandTimeoutMs?: number;
}

export interface ResolvedLocalOpsOptions {
  readonly netns: string | undefined;
  readonly nat: 'nft' | 'iptables';
  readonly runner: CommandRunner;
  readonly tableName: string;
  readonly chainPrefix: string;
  readonly commandTimeoutMs: number;
}

const optionsSchema = z.strictObject({
  netns: z
    .string()
    .regex(
      /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/,
      'must be 1–64 characters of letters, digits, _ . - (not starting with . or -)',
    )
    .optional(),
  nat: z.enum(['nft', 'iptables']).optional(),
  runner: z.custom<CommandRunner>((value) => typeof value === 'function', 'must be a function').optional(),
  tableName: z
    .string()
    .regex(/^[A-Za-z][A-Za-z0-9_]{0,31}$/, 'must be a letter then up to 31 letters, digits or _')
    .optional(),
  chainPrefix: z
    .string()
    .regex(
      /^[A-Z][A-Z0-9_]{0,15}$/,
      'must be an upper-case letter then up to 15 upper-case letters, digits or _',
    )
    .optional(),
  commandTimeoutMs: z.number().int().min(1).max(3_600_000).optional(),
});

/** Validates the constructor options once; INVALID_ARGUMENT names the first bad one (`options.netns`, …). */
export function resolveLocalOpsOptions(options: unknown): ResolvedLocalOpsOptions {
  if (options !== undefined && (typeof options !== 'object' || options === null)) {
    throw new TypeError('LocalOps options must be an object');
  }
  const parsed = optionsSchema.safeParse(options ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const keys = issue.code === 'unrecognized_keys' ? ` (${issue.keys.join(', ')})` : '';
    throw invalidArgument(
      ['options', ...issue.path.map(String)].join('.'),
      `${issue.message}${keys}`,
      parsed.error,
    );
  }
  const o = parsed.data;
  return {
    netns: o.netns,
    nat: o.nat ?? 'nft',
    runner: o.runner ?? execaRunner,
    tableName: o.tableName ?? 'myhv',
    chainPrefix: o.chainPrefix ?? 'MYHV',
    commandTimeoutMs: o.commandTimeoutMs ?? 30_000,
  };
}
