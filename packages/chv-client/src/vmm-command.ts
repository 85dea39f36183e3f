import type { ChvProcessSpawnOptions } from './chv-process.js';
import { invalidArgument } from './errors.js';
import { validateSocketPath } from './socket-path.js';
import { confineCommand } from './vmm-confine.js';

const NETNS_PATTERN = /^[A-Za-z0-9_.-]{1,255}$/;

/** What `ChvProcess.spawn` needs to build the VMM's command line: a subset of its options. */
export type VmmCommandOptions = Pick<
  ChvProcessSpawnOptions,
  | 'command'
  | 'commandArgs'
  | 'socketPath'
  | 'logFile'
  | 'verbose'
  | 'eventMonitor'
  | 'eventFile'
  | 'detached'
  | 'stderrFile'
  | 'netns'
  | 'extraArgs'
  | 'confine'
>;

/** The VMM's command line and the files it writes, decided before anything is spawned. */
export interface VmmCommand {
  readonly socketPath: string;
  /**
   * What is executed: the VMM, or `ip` for `ip netns exec <ns> <vmm> …`, or `unshare` for a confined one (each
   * execs the next: the pid is the VMM's).
   */
  readonly file: string;
  readonly argv: readonly string[];
  readonly detached: boolean;
  /** Detached with an event monitor: `--event-monitor path=<eventFile>` (attached ones get fd 3). */
  readonly eventFile: string | undefined;
  /** Detached only: where the VMM's stderr goes. */
  readonly stderrFile: string | undefined;
  /** `cgroup.procs` files the spawner writes the new pid into (a confined VMM whose chain joins none itself). */
  readonly joinAfterSpawn: readonly string[];
}

/** Validates the options (INVALID_ARGUMENT naming the field) and builds the command line. Spawns nothing. */
export function buildVmmCommand(options: VmmCommandOptions): VmmCommand {
  const socketPath = validateSocketPath(options.socketPath);
  if (options.netns !== undefined && (!NETNS_PATTERN.test(options.netns) || /^\.\.?$/.test(options.netns))) {
    throw invalidArgument('netns', `${JSON.stringify(options.netns)} is not a network namespace name`);
  }
  if (options.verbose !== undefined && !(Number.isInteger(options.verbose) && options.verbose >= 0)) {
    throw invalidArgument('verbose', 'must be a non-negative integer');
  }
  const detached = options.detached ?? false;
  const eventFile =
    options.eventMonitor && detached ? (options.eventFile ?? `${socketPath}.events`) : undefined;
  const command = options.command ?? 'cloud-hypervisor';
  const args = [...(options.commandArgs ?? []), '--api-socket', `path=${socketPath}`];
  if (options.logFile) args.push('--log-file', options.logFile);
  if (options.verbose) args.push(`-${'v'.repeat(options.verbose)}`);
  if (options.eventMonitor) args.push('--event-monitor', eventFile ? `path=${eventFile}` : 'fd=3');
  args.push(...(options.extraArgs ?? []));
  const { file, argv, joinAfterSpawn } = options.confine
    ? confineCommand(command, args, options.confine, options.netns)
    : options.netns
      ? { file: 'ip', argv: ['netns', 'exec', options.netns, command, ...args], joinAfterSpawn: [] }
      : { file: command, argv: args, joinAfterSpawn: [] };
  const stderrFile = detached
    ? (options.stderrFile ?? (options.logFile ? `${options.logFile}.stderr` : undefined))
    : undefined;
  return { socketPath, file, argv, detached, eventFile, stderrFile, joinAfterSpawn };
}
