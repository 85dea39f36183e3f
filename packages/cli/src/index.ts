export type { CliIo } from './cli-io.js';
export {
  type CliConfig,
  DEFAULT_CONFIG_FILE,
  type ResolveConfigInput,
  resolveConfig,
  type SettingSource,
} from './config.js';
export { debugLines, describeError, type ErrorReport, exitCodeFor } from './describe-error.js';
export { CliError, type CliErrorCode, type CliErrorDetails, cliErrorCodes } from './errors.js';
export { ExitCode, type ExitCodeValue } from './exit-codes.js';
export { type CommandId, createProgram } from './program.js';
export { renderCliReference } from './reference.js';
export { run, SERIAL_RELAY_COMMAND, SIMULATOR_COMMAND } from './run.js';
export { type SettingDefinition, type SettingKey, settings } from './settings.js';
export { VERSION } from './version.js';
export {
  type ChooseVmmOptions,
  chooseVmm,
  type SimulatorCommand,
  type VmmChoice,
} from './vmm-choice.js';
