import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { CliConfig } from './config.js';
import { CliError, invalidValue } from './errors.js';

/** How to spawn the bundled simulator: `node <myhv.js> __chv-simulator`, or chv-client's own bin from sources. */
export interface SimulatorCommand {
  readonly command: string;
  readonly args: readonly string[];
}

/** Which VMM the command uses and why. Part of the JSON output of every command that starts VMs. */
export interface VmmChoice {
  readonly kind: 'cloud-hypervisor' | 'simulator';
  /** The binary for cloud-hypervisor; null for the simulator. */
  readonly path: string | null;
  /**
   * flag/env/config: `--vmm-binary`, MYHV_CLOUD_HYPERVISOR or the config file; path: found on PATH; fallback: none
   * configured or found, and the command (only `myhv demo`) asked for the simulator then.
   */
  readonly source: 'flag' | 'env' | 'config' | 'path' | 'fallback';
  /** What the manager spawns. */
  readonly command: string;
  readonly commandArgs: readonly string[];
}

export const VMM_BINARY_NAME = 'cloud-hypervisor';

/** The first executable `cloud-hypervisor` on PATH. Only stats files: nothing is spawned. */
export function findOnPath(name: string, pathEnv: string | undefined): string | undefined {
  for (const dir of (pathEnv ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      if (!statSync(candidate).isFile()) continue;
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {}
  }
  return undefined;
}

/** What `chooseVmm` does when no VMM is configured and none is on PATH. */
export interface ChooseVmmOptions {
  /**
   * Use the bundled simulator (source `fallback`) instead of failing with VMM_NOT_FOUND. Only `myhv demo` does,
   * and says so first: everything else must not report `running` with no guest.
   */
  readonly fallbackToSimulator?: boolean;
}

/**
 * `--vmm-binary` / MYHV_CLOUD_HYPERVISOR / config `vmmBinary` (a path, or `simulator`), else `cloud-hypervisor`
 * on PATH; with neither, VMM_NOT_FOUND (exit 1, with a hint), or the simulator when `fallbackToSimulator`.
 */
export function chooseVmm(
  config: Pick<CliConfig, 'vmmBinary' | 'sources'>,
  env: Readonly<Record<string, string | undefined>>,
  simulator: SimulatorCommand,
  options: ChooseVmmOptions = {},
): VmmChoice {
  return findVmm(config, env, simulator) ?? missingVmm(simulator, options);
}

/**
 * The VMM the settings name (a bad path is INVALID_ARGUMENT), else `cloud-hypervisor` on PATH, else undefined.
 * For commands that spawn no VMM (stop, rm, gc, doctor): they work without one.
 */
export function findVmm(
  config: Pick<CliConfig, 'vmmBinary' | 'sources'>,
  env: Readonly<Record<string, string | undefined>>,
  simulator: SimulatorCommand,
): VmmChoice | undefined {
  const source = config.sources.vmmBinary;
  const explicit = source === 'flag' || source === 'env' || source === 'config' ? source : undefined;
  if (explicit && config.vmmBinary === 'simulator') return simulatorChoice(simulator, explicit);
  if (explicit && config.vmmBinary) {
    const path = config.vmmBinary;
    const field = { flag: '--vmm-binary', env: 'MYHV_CLOUD_HYPERVISOR', config: 'config: vmmBinary' }[
      explicit
    ];
    try {
      if (!statSync(path).isFile()) throw new Error('not a file');
      accessSync(path, constants.X_OK);
    } catch (error) {
      throw invalidValue(
        field,
        `${path} is not an executable file`,
        'point it at a cloud-hypervisor binary, or use "simulator"',
        error,
      );
    }
    return { kind: 'cloud-hypervisor', path, source: explicit, command: path, commandArgs: [] };
  }
  const found = findOnPath(VMM_BINARY_NAME, env.PATH);
  if (found)
    return { kind: 'cloud-hypervisor', path: found, source: 'path', command: found, commandArgs: [] };
  return undefined;
}

/** How to get a VMM: the hint of VMM_NOT_FOUND and of doctor's failing `vmm` check. */
export const NO_VMM_HINT =
  'install Cloud Hypervisor (github.com/cloud-hypervisor/cloud-hypervisor/releases) as cloud-hypervisor on PATH ' +
  'or point --vmm-binary (MYHV_CLOUD_HYPERVISOR) at it; or choose the bundled simulator, which runs no guest: ' +
  '--vmm-binary simulator, MYHV_CLOUD_HYPERVISOR=simulator, or vmmBinary: simulator in the config file';

function missingVmm(simulator: SimulatorCommand, options: ChooseVmmOptions): VmmChoice {
  if (options.fallbackToSimulator) return simulatorChoice(simulator, 'fallback');
  throw new CliError('VMM_NOT_FOUND', 'no VMM: cloud-hypervisor is not on PATH and none is configured', {
    details: { field: '--vmm-binary', hint: NO_VMM_HINT },
  });
}

function simulatorChoice(simulator: SimulatorCommand, source: VmmChoice['source']): VmmChoice {
  return {
    kind: 'simulator',
    path: null,
    source,
    command: simulator.command,
    commandArgs: [...simulator.args],
  };
}

/** One line for people: which VMM, and why. */
export function describeVmm(choice: VmmChoice): string {
  if (choice.kind === 'simulator') {
    const why =
      choice.source === 'fallback'
        ? 'a fallback: no cloud-hypervisor on PATH and none configured'
        : `chosen by ${{ flag: '--vmm-binary', env: 'MYHV_CLOUD_HYPERVISOR', config: 'the config file', path: '', fallback: '' }[choice.source]}`;
    return `VMM: the bundled simulator (${why}; it speaks the Cloud Hypervisor API, no guest runs)`;
  }
  const from = {
    flag: '--vmm-binary',
    env: 'MYHV_CLOUD_HYPERVISOR',
    config: 'the config file',
    path: 'PATH',
    fallback: '',
  }[choice.source];
  return `VMM: cloud-hypervisor ${choice.path} (from ${from})`;
}

/** The JSON form: `{ kind, path, source }`. */
export function vmmJson(choice: VmmChoice): {
  kind: VmmChoice['kind'];
  path: string | null;
  source: VmmChoice['source'];
} {
  return { kind: choice.kind, path: choice.path, source: choice.source };
}

/** The setting that chose the VMM, as users name it in an error. */
export function vmmSetting(choice: VmmChoice): string {
  return {
    flag: '--vmm-binary',
    env: 'MYHV_CLOUD_HYPERVISOR',
    config: 'config: vmmBinary',
    path: 'PATH',
    fallback: '--vmm-binary',
  }[choice.source];
}

function vmmFix(choice: VmmChoice): string {
  return choice.source === 'path'
    ? 'the cloud-hypervisor found on PATH does not work: install Cloud Hypervisor (scripts/setup), or pass --vmm-binary with its path or "simulator"'
    : `point ${vmmSetting(choice)} at a cloud-hypervisor binary, or use "simulator"`;
}

/** The field vm-manager names when the VMM it was given (its `vmm.command` option) is not cloud-hypervisor. */
const MANAGER_VMM_FIELD = 'options.vmm.command';

/**
 * The manager refused the VMM this command chose (not an executable, not cloud-hypervisor): the error names the
 * flag, variable, config key or PATH that chose it, with the fix. Other errors pass through untouched.
 */
export function withVmmHint(error: unknown, choice: VmmChoice): unknown {
  const e = error as { code?: unknown; details?: { field?: unknown } } | null;
  if (typeof e !== 'object' || e === null || e.code !== 'INVALID_ARGUMENT') return error;
  if (e.details?.field !== MANAGER_VMM_FIELD || CliError.isInstance(error)) return error;
  const reason = (error as Error).message.replace(`${MANAGER_VMM_FIELD}: `, '');
  return invalidValue(vmmSetting(choice), reason, vmmFix(choice), error);
}

/**
 * Before any work: the chosen VMM answers `--version` like cloud-hypervisor (or the simulator). The same check
 * the manager makes (and caches), for commands that do work of their own first (`myhv demo`).
 */
export async function assertVmmWorks(choice: VmmChoice): Promise<void> {
  const { checkVmmBinary } = await import('@my-hypervisor/chv-client');
  try {
    await checkVmmBinary(choice.command, { args: choice.commandArgs, field: MANAGER_VMM_FIELD });
  } catch (error) {
    throw withVmmHint(error, choice);
  }
}
