import { type NetOpsCapabilities, NetOpsError } from '@my-hypervisor/net-ops';
import { DISCOVER_METHOD, mosnetMethods } from './methods.js';

/** What `rpc.discover` told us about a daemon. */
export interface MosnetDiscovery {
  /** Every method name the daemon's document lists. */
  readonly methods: ReadonlySet<string>;
  readonly capabilities: NetOpsCapabilities;
}

/**
 * What `MosnetOps` assumes before (or without) discovery: the required methods with all their params, and no
 * listing, since no mosnet method for listing is known.
 */
export const defaultMosnetCapabilities: NetOpsCapabilities = Object.freeze({
  listBridgePorts: false,
  listPortForwards: false,
  atomicTap: true,
  multiQueue: true,
  tapOwner: true,
  ipv6: true,
});

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A content descriptor's name, following a `#/components/contentDescriptors/<key>` reference. */
function paramName(document: Json, param: unknown): string | undefined {
  if (!isObject(param)) return undefined;
  if (typeof param.name === 'string') return param.name;
  const ref = param.$ref;
  const prefix = '#/components/contentDescriptors/';
  if (typeof ref !== 'string' || !ref.startsWith(prefix)) return undefined;
  const components = isObject(document.components) ? document.components : {};
  const descriptors = isObject(components.contentDescriptors) ? components.contentDescriptors : {};
  const target = descriptors[ref.slice(prefix.length)];
  return isObject(target) && typeof target.name === 'string' ? target.name : undefined;
}

/**
 * Reads a daemon's OpenRPC document: the optional methods it lists turn the listing capabilities on, and the
 * params its required methods accept decide `multiQueue`, `tapOwner` and `ipv6`. Throws BACKEND_FAILURE when the
 * answer is not an OpenRPC document.
 */
export function discoveryFromDocument(document: unknown): MosnetDiscovery {
  if (!isObject(document) || !Array.isArray(document.methods)) {
    throw new NetOpsError('BACKEND_FAILURE', `${DISCOVER_METHOD}: the answer is not an OpenRPC document`, {
      details: { command: DISCOVER_METHOD },
    });
  }
  const params = new Map<string, Set<string>>();
  for (const method of document.methods) {
    if (!isObject(method) || typeof method.name !== 'string') continue;
    const names = new Set<string>();
    if (Array.isArray(method.params)) {
      for (const param of method.params) {
        const name = paramName(document, param);
        if (name !== undefined) names.add(name);
      }
    }
    params.set(method.name, names);
  }
  const accepts = (method: string, param: string) => params.get(method)?.has(param) === true;
  return {
    methods: new Set(params.keys()),
    capabilities: Object.freeze({
      listBridgePorts: params.has(mosnetMethods.listBridgePorts),
      listPortForwards: params.has(mosnetMethods.listForwards),
      atomicTap: true,
      multiQueue: accepts(mosnetMethods.createTap, 'multi_queue'),
      tapOwner: accepts(mosnetMethods.createTap, 'owner'),
      ipv6: accepts(mosnetMethods.bridgeAdd, 'ipv6_address'),
    }),
  };
}
