import type { BridgeOps, NatOps, TapOps } from '@my-hypervisor/net-ops';
import {
  bridgeAddParamsSchema,
  createTapParamsSchema,
  DISCOVER_METHOD,
  deleteTapParamsSchema,
  forwardParamsSchema,
  listBridgePortsParamsSchema,
  listForwardsParamsSchema,
  mosnetMethods,
} from '../methods.js';
import { documentForCapabilities } from '../openrpc-document.js';
import {
  bridgeParamsToSpec,
  forwardParamsToRule,
  parseWireParams,
  ruleToForwardParams,
  tapParamsToSpec,
  wireFieldName,
} from '../wire.js';

/** Every ops contract the server exposes. */
export type MosnetServerOps = BridgeOps & TapOps & NatOps;

/**
 * Serves one method: params by name in, result out; throws (synchronously, for bad params) or rejects with a
 * NetOpsError. Plain promise chains, not async functions: see the server's #respond.
 */
export type MethodHandler = (
  params: Readonly<Record<string, unknown>>,
  signal: AbortSignal,
) => Promise<unknown>;

/**
 * The handlers for `ops`, by method name. Listing methods are answered only while the ops have the capability
 * (checked per call: capabilities may change after discovery), otherwise they are unknown methods.
 */
export function createMethodHandlers(ops: MosnetServerOps): (method: string) => MethodHandler | undefined {
  const handlers: Record<string, MethodHandler> = {
    [DISCOVER_METHOD]: () => Promise.resolve(documentForCapabilities(ops.capabilities)),

    [mosnetMethods.bridgeAdd]: (params, signal) => {
      const spec = bridgeParamsToSpec(parseWireParams(bridgeAddParamsSchema, params, wireFieldName));
      return ops.ensureBridge(spec, { signal }).then((r) => ({ name: r.name, created: r.created }));
    },

    [mosnetMethods.createTap]: (params, signal) => {
      const spec = tapParamsToSpec(parseWireParams(createTapParamsSchema, params, wireFieldName));
      // A TapSpec with `bridge` ends attached and up on every backend, atomic or not.
      return ops.createTap(spec, { signal }).then((r) => ({ name: r.name, created: r.created }));
    },

    [mosnetMethods.deleteTap]: (params, signal) => {
      const { name } = parseWireParams(deleteTapParamsSchema, params, wireFieldName);
      return ops.deleteTap(name, { signal }).then((r) => ({ name: r.name, existed: r.existed }));
    },

    [mosnetMethods.addForward]: (params, signal) => {
      const rule = forwardParamsToRule(parseWireParams(forwardParamsSchema, params, wireFieldName));
      return ops.addPortForward(rule, { signal }).then((r) => ({ created: r.created }));
    },

    [mosnetMethods.removeForward]: (params, signal) => {
      const rule = forwardParamsToRule(parseWireParams(forwardParamsSchema, params, wireFieldName));
      return ops.removePortForward(rule, { signal }).then((r) => ({ existed: r.existed }));
    },

    [mosnetMethods.listBridgePorts]: (params, signal) => {
      const { bridge } = parseWireParams(listBridgePortsParamsSchema, params, wireFieldName);
      return ops
        .listBridgePorts(bridge, { signal })
        .then((ports) => ({ ports: ports.map((port) => ({ name: port.name })) }));
    },

    [mosnetMethods.listForwards]: (params, signal) => {
      parseWireParams(listForwardsParamsSchema, params, wireFieldName);
      return ops.listPortForwards({ signal }).then((rules) => ({ forwards: rules.map(ruleToForwardParams) }));
    },
  };
  return (method) => {
    if (!Object.hasOwn(handlers, method)) return undefined;
    if (method === mosnetMethods.listBridgePorts && !ops.capabilities.listBridgePorts) return undefined;
    if (method === mosnetMethods.listForwards && !ops.capabilities.listPortForwards) return undefined;
    return handlers[method];
  };
}
