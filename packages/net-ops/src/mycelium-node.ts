import type { OperationOptions } from './capabilities.js';

/** Where a host's mycelium node tells its subnet. `MyceliumAdminApi` reads it over the admin HTTP API. */
export interface MyceliumNode {
  /** The node's subnet, e.g. `4a2:e1f0:1b3c:9d7e::/64` (a /64 inside 400::/7). */
  nodeSubnet(options?: OperationOptions): Promise<string>;
}
