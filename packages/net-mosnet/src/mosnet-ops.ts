import {
  type AddPortForwardResult,
  type BridgeOps,
  type BridgePort,
  type BridgeSpec,
  type CreateTapResult,
  type DeleteTapResult,
  type EnsureBridgeResult,
  invalidArgument,
  type NatOps,
  type NetOpsCapabilities,
  NetOpsError,
  type OperationOptions,
  type PortForwardRule,
  parsePortForwardRule,
  type RemovePortForwardResult,
  type TapOps,
  type TapSpec,
  throwIfAborted,
  validateInterfaceName,
} from '@my-hypervisor/net-ops';
import type { z } from 'zod';
import { defaultMosnetCapabilities, discoveryFromDocument, type MosnetDiscovery } from './discovery.js';
import {
  addForwardResultSchema,
  bridgeAddParamsSchema,
  bridgeAddResultSchema,
  createTapParamsSchema,
  createTapResultSchema,
  DISCOVER_METHOD,
  deleteTapParamsSchema,
  deleteTapResultSchema,
  forwardParamsSchema,
  listBridgePortsResultSchema,
  listForwardsResultSchema,
  mosnetMethods,
  removeForwardResultSchema,
} from './methods.js';
import { MosnetClient, type MosnetClientOptions } from './mosnet-client.js';
import { mosnetErrorCodes } from './rpc-errors.js';
import {
  apiFieldName,
  bridgeSpecToParams,
  forwardParamsToRule,
  parseWireParams,
  ruleToForwardParams,
  tapSpecToParams,
} from './wire.js';

/** Either the options of the client `MosnetOps` creates and owns, or a client you own. */
export type MosnetOpsOptions = MosnetClientOptions | { readonly client: MosnetClient };

/**
 * `BridgeOps`, `TapOps` and `NatOps` over mosnetd's JSON-RPC API. `createTap` creates, attaches and brings up the
 * TAP in one call (`capabilities.atomicTap`), so it requires `bridge`, and `addToBridge`/`bringUp` only check
 * their input. Listing works only when the daemon's `rpc.discover` lists a method for it: call `discover()` (or
 * create with `MosnetOps.connect()`) to learn the capabilities; until then they are `defaultMosnetCapabilities`
 * (no listing).
 */
export class MosnetOps implements BridgeOps, TapOps, NatOps, AsyncDisposable {
  readonly specificationVersion = 'v1' as const;
  readonly client: MosnetClient;
  readonly #ownsClient: boolean;
  // Discovery belongs to the connection it was made on: a restarted daemon may be another version.
  #discovery: { readonly result: MosnetDiscovery; readonly connection: number } | undefined;
  #discovering: Promise<MosnetDiscovery> | undefined;

  constructor(options: MosnetOpsOptions = {}) {
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
    if ('client' in options) {
      if (!(options.client instanceof MosnetClient)) throw new TypeError('client must be a MosnetClient');
      this.client = options.client;
      this.#ownsClient = false;
    } else {
      this.client = new MosnetClient(options);
      this.#ownsClient = true;
    }
  }

  /** Creates the ops and runs `discover()`, so `capabilities` describe the daemon from the start. */
  static async connect(
    options: MosnetOpsOptions = {},
    callOptions: OperationOptions = {},
  ): Promise<MosnetOps> {
    const ops = new MosnetOps(options);
    try {
      await ops.discover(callOptions);
      return ops;
    } catch (error) {
      await ops.close();
      throw error;
    }
  }

  /** The daemon's capabilities as last discovered; `defaultMosnetCapabilities` before `discover()`. */
  get capabilities(): NetOpsCapabilities {
    return this.#discovery?.result.capabilities ?? defaultMosnetCapabilities;
  }

  /**
   * Asks the daemon (`rpc.discover`) which methods and params it has and updates `capabilities`. A daemon without
   * `rpc.discover` gets the defaults. Done again automatically before listing after a reconnect.
   */
  async discover(options: OperationOptions = {}): Promise<NetOpsCapabilities> {
    return (await this.#discoveryNow(options)).capabilities;
  }

  ensureBridge(spec: BridgeSpec, options: OperationOptions = {}): Promise<EnsureBridgeResult> {
    return rejecting(() => {
      requireObject(spec, 'spec');
      if (spec.ipv6Address !== undefined) this.#require('ipv6', 'ipv6Address');
      const params = parseWireParams(bridgeAddParamsSchema, bridgeSpecToParams(spec), (path) =>
        apiFieldName(path),
      );
      throwIfAborted(options.signal);
      return this.#call(mosnetMethods.bridgeAdd, params, bridgeAddResultSchema, options, createdResult);
    });
  }

  async listBridgePorts(bridge: string, options: OperationOptions = {}): Promise<BridgePort[]> {
    validateInterfaceName(bridge, 'bridge');
    throwIfAborted(options.signal);
    await this.#requireMethod(mosnetMethods.listBridgePorts, 'listing bridge ports', options);
    return this.#call(
      mosnetMethods.listBridgePorts,
      { bridge },
      listBridgePortsResultSchema,
      options,
      (result) => result.ports.map((port) => ({ name: port.name })),
    );
  }

  createTap(spec: TapSpec, options: OperationOptions = {}): Promise<CreateTapResult> {
    return rejecting(() => {
      requireObject(spec, 'spec');
      if (spec.bridge === undefined) {
        throw invalidArgument(
          'bridge',
          'mosnet creates, attaches and brings up a TAP in one step, so createTap needs the bridge',
        );
      }
      if (spec.multiQueue === true) this.#require('multiQueue', 'multiQueue');
      if (spec.owner !== undefined) this.#require('tapOwner', 'owner');
      const params = parseWireParams(createTapParamsSchema, tapSpecToParams(spec), (path) =>
        apiFieldName(path),
      );
      throwIfAborted(options.signal);
      return this.#call(mosnetMethods.createTap, params, createTapResultSchema, options, createdResult);
    });
  }

  /** A no-op: `createTap` already attached the TAP (mosnet has no method to check). Validates the names only. */
  async addToBridge(tap: string, bridge: string, options: OperationOptions = {}): Promise<void> {
    validateInterfaceName(tap, 'tap');
    validateInterfaceName(bridge, 'bridge');
    throwIfAborted(options.signal);
  }

  /** A no-op: `createTap` already brought the TAP up. Validates the name only. */
  async bringUp(tap: string, options: OperationOptions = {}): Promise<void> {
    validateInterfaceName(tap, 'tap');
    throwIfAborted(options.signal);
  }

  deleteTap(name: string, options: OperationOptions = {}): Promise<DeleteTapResult> {
    return rejecting(() => {
      const params = parseWireParams(deleteTapParamsSchema, { name }, (path) => apiFieldName(path));
      return this.#call(mosnetMethods.deleteTap, params, deleteTapResultSchema, options, deletedResult);
    });
  }

  addPortForward(rule: PortForwardRule, options: OperationOptions = {}): Promise<AddPortForwardResult> {
    return rejecting(() =>
      this.#call(mosnetMethods.addForward, forwardParams(rule), addForwardResultSchema, options, addedResult),
    );
  }

  removePortForward(rule: PortForwardRule, options: OperationOptions = {}): Promise<RemovePortForwardResult> {
    return rejecting(() =>
      this.#call(
        mosnetMethods.removeForward,
        forwardParams(rule),
        removeForwardResultSchema,
        options,
        removedResult,
      ),
    );
  }

  async listPortForwards(options: OperationOptions = {}): Promise<PortForwardRule[]> {
    throwIfAborted(options.signal);
    await this.#requireMethod(mosnetMethods.listForwards, 'listing port forwards', options);
    return this.#call(mosnetMethods.listForwards, {}, listForwardsResultSchema, options, (result) =>
      result.forwards.map(forwardParamsToRule),
    );
  }

  /** Closes the client if these ops created it. Idempotent. */
  async close(): Promise<void> {
    if (this.#ownsClient) await this.client.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #runDiscovery(options: OperationOptions): Promise<MosnetDiscovery> {
    let result: MosnetDiscovery;
    try {
      const document = await this.client.call(DISCOVER_METHOD, {}, { signal: options.signal });
      result = discoveryFromDocument(document);
    } catch (error) {
      // A daemon without rpc.discover has the required methods only.
      if (!(NetOpsError.isInstance(error) && error.details.rpcCode === mosnetErrorCodes.METHOD_NOT_FOUND))
        throw error;
      result = { methods: new Set(), capabilities: defaultMosnetCapabilities };
    }
    this.#discovery = { result, connection: this.client.connectionCount };
    return result;
  }

  /**
   * Rejects with UNSUPPORTED unless discovery lists `method`. Never discovering on its own keeps the call in line
   * with `capabilities`; a discovery from an earlier connection is renewed first (the daemon may have changed).
   */
  async #requireMethod(method: string, what: string, options: OperationOptions): Promise<void> {
    const known = this.#discovery;
    if (known === undefined) {
      throw new NetOpsError(
        'UNSUPPORTED',
        `${what} needs a mosnet method that only rpc.discover can reveal: call discover() (or create the ops with MosnetOps.connect()) first`,
        { details: { command: method } },
      );
    }
    const fresh = this.client.connected && known.connection === this.client.connectionCount;
    const discovery = fresh ? known.result : await this.#discoveryNow(options);
    if (!discovery.methods.has(method)) {
      throw new NetOpsError(
        'UNSUPPORTED',
        `mosnetd has no method for ${what}: rpc.discover does not list ${method}`,
        {
          details: { command: method },
        },
      );
    }
  }

  /** Shares one rpc.discover among concurrent callers. */
  async #discoveryNow(options: OperationOptions): Promise<MosnetDiscovery> {
    this.#discovering ??= this.#runDiscovery(options).finally(() => {
      this.#discovering = undefined;
    });
    return this.#discovering;
  }

  /** Rejects an option the discovered daemon does not take, before anything is sent. */
  #require(capability: 'multiQueue' | 'tapOwner' | 'ipv6', field: string): void {
    if (!this.capabilities[capability]) {
      throw new NetOpsError('UNSUPPORTED', `${field}: this mosnetd does not support it (per rpc.discover)`, {
        details: { field },
      });
    }
  }

  /** Calls `method`, checks the answer against `resultSchema`, and returns it as `shape` makes it. */
  #call<T, R>(
    method: string,
    params: Readonly<Record<string, unknown>>,
    resultSchema: z.ZodType<T>,
    options: OperationOptions,
    shape: (result: T) => R,
  ): Promise<R> {
    return this.client.call(method, params, options).then((answer) => {
      const parsed = resultSchema.safeParse(answer);
      if (parsed.success) return shape(parsed.data);
      throw new NetOpsError('BACKEND_FAILURE', `${method}: mosnetd answered with an unexpected result`, {
        cause: parsed.error,
        details: { command: method, result: answer },
      });
    });
  }
}

// The results as the contracts type them (only the fields they name, whatever else the daemon sent).
const createdResult = (r: { name: string; created: boolean }) => ({ name: r.name, created: r.created });
const deletedResult = (r: { name: string; existed: boolean }) => ({ name: r.name, existed: r.existed });
const addedResult = (r: { created: boolean }) => ({ created: r.created });
const removedResult = (r: { existed: boolean }) => ({ existed: r.existed });

/**
 * Runs `start`, turning a synchronous throw (bad input) into a rejection. The hot operations use it instead of
 * `async`: with thousands of calls in flight, a suspended async frame per call is measurable garbage.
 */
function rejecting<T>(start: () => Promise<T>): Promise<T> {
  try {
    return start();
  } catch (error) {
    return Promise.reject(error);
  }
}

function requireObject(value: unknown, name: string): void {
  if (typeof value !== 'object' || value === null) throw new TypeError(`${name} must be an object`);
}

/** A rule checked with the shared net-ops schema (so fields are named `rule.hostPort`, …), then put on the wire. */
function forwardParams(rule: PortForwardRule) {
  const parsed = parsePortForwardRule(rule);
  return parseWireParams(forwardParamsSchema, ruleToForwardParams(parsed), (path) =>
    apiFieldName(path, 'rule'),
  );
}
