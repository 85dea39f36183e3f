import type { CliIo } from './cli-io.js';
import type { CliConfig } from './config.js';
import type { Output } from './output.js';
import type { SettingKey } from './settings.js';
import {
  type ChooseVmmOptions,
  chooseVmm,
  findVmm,
  type SimulatorCommand,
  type VmmChoice,
} from './vmm-choice.js';

/** The global flags as commander parsed them (settings only when given on the command line). */
export type GlobalFlags = Partial<Record<SettingKey | 'config', string>> & {
  readonly json?: boolean;
  /** false with `--no-daemon`: run in this process even when myhvd answers. */
  readonly daemon?: boolean;
  readonly debug?: boolean;
};

/** What one command invocation works with: io, output, its flags, and lazily the config and VMM choice. */
export class CommandContext {
  readonly io: CliIo;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly out: Output;
  readonly flags: GlobalFlags;
  /** The leaf command's own options. */
  readonly options: Readonly<Record<string, unknown>>;
  #config: Promise<CliConfig> | undefined;
  #vmm: Promise<VmmChoice | undefined> | undefined;
  readonly #cleanups: (() => Promise<void>)[] = [];

  constructor(init: {
    io: CliIo;
    env: Readonly<Record<string, string | undefined>>;
    out: Output;
    flags: GlobalFlags;
    options: Readonly<Record<string, unknown>>;
  }) {
    this.io = init.io;
    this.env = init.env;
    this.out = init.out;
    this.flags = init.flags;
    this.options = init.options;
  }

  /** The resolved settings (flag > env > config file > default), validated once. */
  config(): Promise<CliConfig> {
    this.#config ??= import('./config.js').then(({ resolveConfig }) =>
      resolveConfig({ flags: this.flags, env: this.env }),
    );
    return this.#config;
  }

  /**
   * The VMM this invocation spawns (see `chooseVmm`): VMM_NOT_FOUND when none is configured and none is on PATH,
   * so call it before any work. Only `myhv demo` passes `fallbackToSimulator`.
   */
  async vmm(options: ChooseVmmOptions = {}): Promise<VmmChoice> {
    const found = await this.configuredVmm();
    // Nothing configured or on PATH: chooseVmm throws VMM_NOT_FOUND, or falls back when asked to.
    return found ?? chooseVmm(await this.config(), this.env, await this.simulator(), options);
  }

  /** For commands that spawn no VMM (stop, rm, gc, doctor): the configured or found VMM, or undefined. */
  configuredVmm(): Promise<VmmChoice | undefined> {
    this.#vmm ??= (async () => findVmm(await this.config(), this.env, await this.simulator()))();
    return this.#vmm;
  }

  async simulator(): Promise<SimulatorCommand> {
    if (this.io.simulator) return this.io.simulator;
    const { simulatorCommand } = await import('@my-hypervisor/chv-client/testing');
    return simulatorCommand();
  }

  /**
   * The manager a VM command runs on: myhvd's when it answers on `daemonSocket` (unless `--no-daemon`), else one
   * in this process (`openManager`).
   */
  async manager(mode: Parameters<typeof import('./backends.js').openManager>[1]) {
    const { openRoutedManager } = await import('./backends.js');
    return openRoutedManager(await this.config(), mode, { noDaemon: this.flags.daemon === false });
  }

  /** Registers cleanup to run when the command ends, last registered first. */
  defer(cleanup: () => Promise<void>): void {
    this.#cleanups.push(cleanup);
  }

  async close(): Promise<void> {
    while (this.#cleanups.length > 0) {
      const cleanup = this.#cleanups.pop()!;
      await cleanup().catch(() => undefined);
    }
  }
}
