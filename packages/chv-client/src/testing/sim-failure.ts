/** The simulated VMM versions: one per error generation. */
export type SimulatorVersion = 'v46' | 'v50' | 'v53';

/** Every `SimulatorVersion`, oldest first, for tests that run against each. */
export const simulatorVersions: readonly SimulatorVersion[] = ['v46', 'v50', 'v53'];

export function versionMajor(version: SimulatorVersion): number {
  return Number(version.slice(1));
}

/** What kind of failure, which decides the status code in v53+. */
export type SimFailureKind =
  | 'not-created'
  | 'wrong-state'
  | 'invalid-config'
  | 'duplicate'
  | 'not-found'
  | 'no-route'
  | 'bad-request'
  | 'busy'
  | 'internal';

/** One VMM-side error: its Display chain (v47+ bodies) and its Rust Debug text (≤ v46 bodies). */
export class SimFailure {
  constructor(
    readonly kind: SimFailureKind,
    readonly chain: readonly string[],
    readonly debug: string,
  ) {}

  status(version: SimulatorVersion): number {
    if (this.kind === 'bad-request') return 400;
    if (this.kind === 'no-route') return 404;
    if (this.kind === 'busy') return 429;
    // v53.0 maps only VmNotCreated / VmMissingConfig to 404 (vmm/src/api/http/mod.rs:88-92); every other
    // VMM-side error, invalid configs and duplicates included, is still 500.
    if (versionMajor(version) >= 53 && this.kind === 'not-created') return 404;
    return 500;
  }

  /** The response body in the version's format. */
  body(version: SimulatorVersion): string {
    return versionMajor(version) < 47 ? this.debug : JSON.stringify(this.chain);
  }
}

/** A VMM-level error (`VmError`): its Display chain and Debug text. */
export interface VmErr {
  readonly kind: SimFailureKind;
  readonly chain: readonly string[];
  readonly debug: string;
}

/** Wraps a VmError in the endpoint's ApiError and HttpError layers, as the VMM does. */
export function apiFailure(endpoint: string, error: VmErr): SimFailure {
  const [variant, display] = apiErrors[endpoint] ?? ['VmAction', 'The VM action failed'];
  return new SimFailure(
    error.kind,
    ['Error from API', display, ...error.chain],
    `ApiError(${variant}(${error.debug}))`,
  );
}

export const vmErr = {
  notCreated: (): VmErr => ({ kind: 'not-created', chain: ['VM is not created'], debug: 'VmNotCreated' }),
  missingConfig: (): VmErr => ({
    kind: 'not-created',
    chain: ['VM config is missing'],
    debug: 'VmMissingConfig',
  }),
  alreadyCreated: (): VmErr => ({
    kind: 'wrong-state',
    chain: ['VM is already created'],
    debug: 'VmAlreadyCreated',
  }),
  notRunning: (): VmErr => ({ kind: 'wrong-state', chain: ['VM is not running'], debug: 'VmNotRunning' }),
  transition: (from: string, to: string): VmErr => ({
    kind: 'wrong-state',
    chain: [`invalid VM state transition: ${from} to ${to}`],
    debug: `InvalidStateTransition(${from}, ${to})`,
  }),
  validation: (
    kind: 'invalid-config' | 'duplicate',
    display: string | readonly string[],
    debug: string,
  ): VmErr => ({
    kind,
    chain: ['Failed to validate config', ...(Array.isArray(display) ? display : [display])],
    debug: `ConfigValidation(${debug})`,
  }),
  /** A pause/resume in the wrong state: the transition check inside `Pausable` (vmm/src/vm.rs:3245-3290). */
  migratable: (action: 'pause' | 'resume', from: string, to: string): VmErr => ({
    kind: 'wrong-state',
    chain: [
      action === 'pause' ? 'Cannot pause VM' : 'Cannot resume VM',
      `Failed to ${action} migratable component`,
      `Invalid transition: InvalidStateTransition(${from}, ${to})`,
    ],
    debug: `${action === 'pause' ? 'Pause' : 'Resume'}(${action === 'pause' ? 'Pause' : 'Resume'}(Invalid transition: InvalidStateTransition(${from}, ${to})))`,
  }),
  noDeviceToRemove: (id: string): VmErr => ({
    kind: 'not-found',
    chain: [`No device with id ${JSON.stringify(id)} to remove`],
    debug: `NoDeviceToRemove(${JSON.stringify(id)})`,
  }),
  deviceManager: (kind: SimFailureKind, chain: readonly string[], debug: string): VmErr => ({
    kind,
    chain: ['Error from device manager', ...chain],
    debug: `DeviceManager(${debug})`,
  }),
  other: (kind: SimFailureKind, chain: readonly string[], debug: string): VmErr => ({ kind, chain, debug }),
};

/** `Failed to deserialize JSON` (400 in every version) with serde's detail. */
export function serdeFailure(detail: string): SimFailure {
  return new SimFailure(
    'bad-request',
    ['Failed to deserialize JSON', detail],
    `SerdeJsonDeserialize(Error(${JSON.stringify(detail)}, line: 1, column: 1))`,
  );
}

/** An unknown path: 404 in every version. */
export const noRoute = (): SimFailure => new SimFailure('no-route', ['Not Found'], 'NotFound');

export const badRequest = (): SimFailure => new SimFailure('bad-request', ['Bad Request'], 'BadRequest');

// ApiError variant and Display text per endpoint (vmm/src/api/mod.rs).
const apiErrors: Record<string, readonly [string, string]> = {
  'vm.create': ['VmCreate', 'The VM could not be created'],
  'vm.boot': ['VmBoot', 'The VM could not boot'],
  'vm.delete': ['VmDelete', 'The VM could not be deleted'],
  'vm.info': ['VmInfo', 'The VM info is not available'],
  'vm.counters': ['VmInfo', 'The VM info is not available'],
  'vm.pause': ['VmPause', 'The VM could not be paused'],
  'vm.resume': ['VmResume', 'The VM could not resume'],
  'vm.shutdown': ['VmShutdown', 'The VM could not shutdown'],
  'vm.reboot': ['VmReboot', 'The VM could not reboot'],
  'vm.snapshot': ['VmSnapshot', 'The VM could not be snapshotted'],
  'vm.restore': ['VmRestore', 'The VM could not be restored'],
  'vm.coredump': ['VmCoredump', 'The VM could not be coredumped'],
  'vmm.shutdown': ['VmmShutdown', 'The VMM could not shutdown'],
  'vmm.ping': ['VmmPing', 'The VMM could not be pinged'],
  'vm.resize': ['VmResize', 'The VM could not be resized'],
  'vm.resize-disk': ['VmResizeDisk', 'The disk could not be resized'],
  'vm.resize-zone': ['VmResizeZone', 'The memory zone could not be resized'],
  'vm.add-device': ['VmAddDevice', 'The device could not be added to the VM'],
  'vm.add-user-device': ['VmAddUserDevice', 'The user device could not be added to the VM'],
  'vm.remove-device': ['VmRemoveDevice', 'The device could not be removed from the VM'],
  'vm.add-disk': ['VmAddDisk', 'The disk could not be added to the VM'],
  'vm.add-fs': ['VmAddFs', 'The fs could not be added to the VM'],
  'vm.add-generic-vhost-user': [
    'VmAddGenericVhostUser',
    'The generic vhost-user device could not be added to the VM',
  ],
  'vm.add-pmem': ['VmAddPmem', 'The pmem device could not be added to the VM'],
  'vm.add-net': ['VmAddNet', 'The network device could not be added to the VM'],
  'vm.add-vdpa': ['VmAddVdpa', 'The vDPA device could not be added to the VM'],
  'vm.add-vsock': ['VmAddVsock', 'The vsock device could not be added to the VM'],
  'vm.receive-migration': ['VmReceiveMigration', 'Error starting migration receiver'],
  'vm.send-migration': ['VmSendMigration', 'Error starting migration sender'],
  'vm.power-button': ['VmPowerButton', 'Error triggering power button'],
  'vm.nmi': ['VmNmi', 'Error triggering NMI'],
};
