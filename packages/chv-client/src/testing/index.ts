export { VERSION } from '../version.js';
export {
  isProbeGuest,
  PROBE_GUEST_MARKER,
  type ProbeGuestOutput,
  parseProbeGuestOutput,
  probeGuestImage,
  probeGuestSerial,
  unloadableProbeGuestImage,
  writeProbeGuest,
  writeUnloadableProbeGuest,
} from './probe-guest.js';
export { type ProbeGuestRun, type RunProbeGuestOptions, runProbeGuest } from './probe-run.js';
export { kvmUnavailableReason, realVmmBinary, realVmmMissingReason, realVmmSkipReason } from './real-vmm.js';
export { type SimulatorVersion, simulatorVersions } from './sim-failure.js';
export {
  DEFAULT_MAX_BODY_BYTES,
  Simulator,
  type SimulatorExit,
  type SimulatorOptions,
  SimulatorStartError,
  startSimulator,
} from './simulator.js';
export { runSimulatorCli, type SimulatorCliIo } from './simulator-cli.js';
export { type SimulatorCommand, simulatorCommand } from './simulator-command.js';
