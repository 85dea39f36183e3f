import type { z } from 'zod';
import { API_ROOT, type ChvResponseKind, chvEndpointSpecs } from './endpoint-table.js';
import { chvSchemas } from './schemas/registry.js';

export { API_ROOT, type ChvResponseKind };

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

/** All 31 endpoints, in the order of the official description. */
export const chvEndpoints: readonly ChvEndpoint[] = chvEndpointSpecs.map((spec) => ({
  name: spec.name,
  method: spec.method,
  clientMethod: spec.name.replace(/[.-]([a-z])/g, (_, letter: string) => letter.toUpperCase()),
  response: spec.response,
  ...(spec.body ? { body: chvSchemas[spec.body] } : {}),
  ...(spec.long ? { long: spec.long } : {}),
}));

const byName = new Map(chvEndpoints.map((endpoint) => [endpoint.name, endpoint]));

/** The endpoint called `name` (`vm.boot`), or undefined. */
export function findEndpoint(name: string): ChvEndpoint | undefined {
  return byName.get(name);
}
