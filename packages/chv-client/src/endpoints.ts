import type { z } from 'zod';
import * as q from './schemas/requests.js';
import * as c from './schemas/vm-config.js';

/** The API root every endpoint path starts with. */
export const API_ROOT = '/api/v1';

/** What an endpoint answers with on success. */
export type ChvResponseKind = 'none' | 'ping' | 'info' | 'counters' | 'pci-device';

/** One endpoint of the Cloud Hypervisor REST API. */
export interface ChvEndpoint {
  /** The name in the path, e.g. `vm.add-disk` (path `/api/v1/vm.add-disk`). */
  readonly name: string;
  readonly method: 'GET' | 'PUT';
  /** The ChvClient method that calls it: the name in camelCase (`vmAddDisk`). */
  readonly clientMethod: string;
  /** The strict schema of the request body; absent when the endpoint takes none (the VMM rejects a body then). */
  readonly body?: z.ZodType;
  readonly response: ChvResponseKind;
  /** Snapshot, restore, coredump and migrations get the long default timeout. */
  readonly long?: boolean;
}

const e = (
  name: string,
  method: 'GET' | 'PUT',
  response: ChvResponseKind,
  body?: z.ZodType,
  long?: boolean,
): ChvEndpoint => ({
  name,
  method,
  clientMethod: name.replace(/[.-]([a-z])/g, (_, letter: string) => letter.toUpperCase()),
  response,
  ...(body ? { body } : {}),
  ...(long ? { long } : {}),
});

/** All 31 endpoints, in the order of the official description. */
export const chvEndpoints: readonly ChvEndpoint[] = [
  e('vmm.ping', 'GET', 'ping'),
  e('vmm.shutdown', 'PUT', 'none'),
  e('vm.info', 'GET', 'info'),
  e('vm.counters', 'GET', 'counters'),
  e('vm.create', 'PUT', 'none', c.vmConfigSchema),
  e('vm.delete', 'PUT', 'none'),
  e('vm.boot', 'PUT', 'none'),
  e('vm.pause', 'PUT', 'none'),
  e('vm.resume', 'PUT', 'none'),
  e('vm.shutdown', 'PUT', 'none'),
  e('vm.reboot', 'PUT', 'none'),
  e('vm.power-button', 'PUT', 'none'),
  e('vm.resize', 'PUT', 'none', q.vmResizeSchema),
  e('vm.resize-disk', 'PUT', 'none', q.vmResizeDiskSchema),
  e('vm.resize-zone', 'PUT', 'none', q.vmResizeZoneSchema),
  e('vm.add-device', 'PUT', 'pci-device', c.deviceConfigSchema),
  e('vm.remove-device', 'PUT', 'none', q.vmRemoveDeviceSchema),
  e('vm.add-disk', 'PUT', 'pci-device', c.diskConfigSchema),
  e('vm.add-fs', 'PUT', 'pci-device', c.fsConfigSchema),
  e('vm.add-generic-vhost-user', 'PUT', 'pci-device', c.genericVhostUserConfigSchema),
  e('vm.add-pmem', 'PUT', 'pci-device', c.pmemConfigSchema),
  e('vm.add-net', 'PUT', 'pci-device', c.netConfigSchema),
  e('vm.add-vsock', 'PUT', 'pci-device', c.vsockConfigSchema),
  e('vm.add-vdpa', 'PUT', 'pci-device', c.vdpaConfigSchema),
  e('vm.add-user-device', 'PUT', 'pci-device', q.vmAddUserDeviceSchema),
  e('vm.snapshot', 'PUT', 'none', q.vmSnapshotConfigSchema, true),
  e('vm.coredump', 'PUT', 'none', q.vmCoredumpDataSchema, true),
  e('vm.nmi', 'PUT', 'none'),
  e('vm.restore', 'PUT', 'none', q.restoreConfigSchema, true),
  e('vm.receive-migration', 'PUT', 'none', q.receiveMigrationDataSchema, true),
  e('vm.send-migration', 'PUT', 'none', q.sendMigrationDataSchema, true),
];

const byName = new Map(chvEndpoints.map((endpoint) => [endpoint.name, endpoint]));

/** The endpoint called `name` (`vm.boot`), or undefined. */
export function findEndpoint(name: string): ChvEndpoint | undefined {
  return byName.get(name);
}
