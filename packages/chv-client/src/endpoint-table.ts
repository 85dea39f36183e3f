import type { ChvSchemaName } from './schemas/registry.js';

/** The API root every endpoint path starts with. */
export const API_ROOT = '/api/v1';

/** What an endpoint answers with on success. */
export type ChvResponseKind = 'none' | 'ping' | 'info' | 'counters' | 'pci-device';

/**
 * One endpoint without its zod schema: the body is named by its `chvSchemas` key. The simulator's bin routes
 * with this table so that a VMM stand-in does not build zod schemas at every start.
 */
export interface ChvEndpointSpec {
  readonly name: string;
  readonly method: 'GET' | 'PUT';
  readonly response: ChvResponseKind;
  readonly body?: ChvBodySchemaName;
  readonly long?: boolean;
}

/** The `chvSchemas` entries that are request bodies. */
export type ChvBodySchemaName = Extract<
  ChvSchemaName,
  | 'VmConfig'
  | 'VmResize'
  | 'VmResizeDisk'
  | 'VmResizeZone'
  | 'DeviceConfig'
  | 'VmRemoveDevice'
  | 'DiskConfig'
  | 'FsConfig'
  | 'GenericVhostUserConfig'
  | 'PmemConfig'
  | 'NetConfig'
  | 'VsockConfig'
  | 'VdpaConfig'
  | 'VmAddUserDevice'
  | 'VmSnapshotConfig'
  | 'VmCoredumpData'
  | 'RestoreConfig'
  | 'ReceiveMigrationData'
  | 'SendMigrationData'
>;

const e = (
  name: string,
  method: 'GET' | 'PUT',
  response: ChvResponseKind,
  body?: ChvBodySchemaName,
  long?: boolean,
): ChvEndpointSpec => ({ name, method, response, ...(body ? { body } : {}), ...(long ? { long } : {}) });

/** All 31 endpoints, in the order of the official description. */
export const chvEndpointSpecs: readonly ChvEndpointSpec[] = [
  e('vmm.ping', 'GET', 'ping'),
  e('vmm.shutdown', 'PUT', 'none'),
  e('vm.info', 'GET', 'info'),
  e('vm.counters', 'GET', 'counters'),
  e('vm.create', 'PUT', 'none', 'VmConfig'),
  e('vm.delete', 'PUT', 'none'),
  e('vm.boot', 'PUT', 'none'),
  e('vm.pause', 'PUT', 'none'),
  e('vm.resume', 'PUT', 'none'),
  e('vm.shutdown', 'PUT', 'none'),
  e('vm.reboot', 'PUT', 'none'),
  e('vm.power-button', 'PUT', 'none'),
  e('vm.resize', 'PUT', 'none', 'VmResize'),
  e('vm.resize-disk', 'PUT', 'none', 'VmResizeDisk'),
  e('vm.resize-zone', 'PUT', 'none', 'VmResizeZone'),
  e('vm.add-device', 'PUT', 'pci-device', 'DeviceConfig'),
  e('vm.remove-device', 'PUT', 'none', 'VmRemoveDevice'),
  e('vm.add-disk', 'PUT', 'pci-device', 'DiskConfig'),
  e('vm.add-fs', 'PUT', 'pci-device', 'FsConfig'),
  e('vm.add-generic-vhost-user', 'PUT', 'pci-device', 'GenericVhostUserConfig'),
  e('vm.add-pmem', 'PUT', 'pci-device', 'PmemConfig'),
  e('vm.add-net', 'PUT', 'pci-device', 'NetConfig'),
  e('vm.add-vsock', 'PUT', 'pci-device', 'VsockConfig'),
  e('vm.add-vdpa', 'PUT', 'pci-device', 'VdpaConfig'),
  e('vm.add-user-device', 'PUT', 'pci-device', 'VmAddUserDevice'),
  e('vm.snapshot', 'PUT', 'none', 'VmSnapshotConfig', true),
  e('vm.coredump', 'PUT', 'none', 'VmCoredumpData', true),
  e('vm.nmi', 'PUT', 'none'),
  e('vm.restore', 'PUT', 'none', 'RestoreConfig', true),
  e('vm.receive-migration', 'PUT', 'none', 'ReceiveMigrationData', true),
  e('vm.send-migration', 'PUT', 'none', 'SendMigrationData', true),
];

const byName = new Map(chvEndpointSpecs.map((spec) => [spec.name, spec]));

/** The endpoint called `name` (`vm.boot`), or undefined. */
export function findEndpointSpec(name: string): ChvEndpointSpec | undefined {
  return byName.get(name);
}
