import {
  type DaemonHello,
  type DaemonMethodDefinition,
  type DaemonMethodName,
  type DaemonStatus,
  daemonMethodDefinitions,
  EVENT_NOTIFICATION,
  PROGRESS_NOTIFICATION,
} from '@my-hypervisor/client';
import { readFileTail } from '@my-hypervisor/host-utils';
import {
  type JsonRpcCallContext,
  type JsonRpcMethodHandler,
  JsonText,
  type OpenrpcDocument,
} from '@my-hypervisor/json-rpc';
import {
  NetworkStore,
  type OperationOptions,
  type VmInfo,
  type VmManager,
  VmManagerError,
} from '@my-hypervisor/vm-manager';
import type { z } from 'zod';
import type { KeyedQueue } from './keyed-queue.js';

/** What the handlers work with: the manager, the per-VM queue, and the daemon's own answers. */
export interface HandlerContext {
  readonly manager: VmManager;
  readonly queue: KeyedQueue;
  readonly hello: () => Promise<DaemonHello>;
  readonly status: () => Promise<DaemonStatus>;
  readonly document: OpenrpcDocument;
  /** Brings the manager up to date before calls that change VMs or the host (`DaemonOptions.refresh`). */
  readonly refresh?: () => Promise<void>;
  /** True once the daemon is stopping (a subscription then ends with reason `closing`). */
  readonly closing: () => boolean;
  /** A one-time dashboard login link (WRONG_STATE when the daemon serves no dashboard). */
  readonly dashboardLogin: () => { url: string; expiresAt: string };
}

type Params = Record<string, unknown>;
type Run = (params: Params, call: CallOptions, context: JsonRpcCallContext) => Promise<unknown>;

/** What every manager call gets: the call's signal and, when the caller asked, progress notifications. */
interface CallOptions extends OperationOptions {
  readonly signal: AbortSignal;
}

/** A method's work: read-only ones run at once; ones that change a VM queue behind that VM's earlier work. */
interface MethodImplementation {
  readonly run: Run;
  /** The VM whose queue the call waits in, for calls that change it. */
  readonly vm?: (params: Params) => string;
  /** True for calls that act on the host without a VM's queue (`host.*`): refreshed first, like VM changes. */
  readonly host?: boolean;
}

/** The `name` param, which the envelope has checked wherever a method takes one. */
const name = (params: Params) => params.name as string;
const byName = name;

/** The handlers of every daemon method, by name. */
export function createHandlers(
  context: HandlerContext,
): (method: string) => JsonRpcMethodHandler | undefined {
  const { manager } = context;
  const jsonOf = vmJson();
  const implementations: Record<DaemonMethodName, MethodImplementation> = {
    'rpc.discover': { run: async () => context.document },
    'daemon.hello': { run: () => context.hello() },
    'daemon.status': { run: () => context.status() },
    'dashboard.login': { run: async () => context.dashboardLogin() },
    'vm.list': { run: listingText(manager, jsonOf) },
    'vm.listAll': { run: () => manager.listAll() },
    'vm.get': { run: async (p) => new JsonText(jsonOf(await manager.get(name(p)))) },
    'vm.create': {
      run: (p, o) => manager.create(p.spec, o),
      vm: (p) => (p.spec as { name: string }).name,
    },
    'vm.start': { run: (p, o) => manager.start(name(p), o), vm: byName },
    'vm.stop': { run: (p, o) => manager.stop(name(p), { ...o, ...opt(p, 'gracefulMs') }), vm: byName },
    'vm.restart': { run: (p, o) => manager.restart(name(p), { ...o, ...opt(p, 'gracefulMs') }), vm: byName },
    'vm.delete': { run: (p, o) => manager.delete(name(p), { ...o, ...opt(p, 'force') }), vm: byName },
    'vm.pause': { run: (p, o) => manager.pause(name(p), o), vm: byName },
    'vm.resume': { run: (p, o) => manager.resume(name(p), o), vm: byName },
    'vm.resize': {
      run: (p, o) => manager.resize(name(p), { ...opt(p, 'cpus'), ...opt(p, 'memory') }, o),
      vm: byName,
    },
    'vm.stats': { run: (p, o) => manager.stats(name(p), { signal: o.signal }) },
    'vm.devices': { run: (p) => manager.devices(name(p)) },
    'vm.logs': { run: (p) => readLog(manager, p) },
    'vm.disk.add': {
      run: (p, o) => manager.addDisk(name(p), { path: p.path as string, ...opt(p, 'readOnly') }, o),
      vm: byName,
    },
    'vm.disk.remove': { run: (p, o) => manager.removeDisk(name(p), p.id as string, o), vm: byName },
    'vm.share.add': {
      run: (p, o) =>
        manager.addShare(
          name(p),
          {
            hostPath: p.hostPath as string,
            tag: p.tag as string,
            ...opt(p, 'readOnly'),
            ...opt(p, 'guestPath'),
          },
          o,
        ),
      vm: byName,
    },
    'vm.share.remove': { run: (p, o) => manager.removeShare(name(p), p.tag as string, o), vm: byName },
    'vm.nic.add': { run: (p, o) => manager.addNic(name(p), opt(p, 'mac'), o), vm: byName },
    'vm.nic.remove': { run: (p, o) => manager.removeNic(name(p), p.id as string, o), vm: byName },
    'vm.forward.add': { run: (p, o) => manager.addForward(name(p), p.forward, o), vm: byName },
    'vm.forward.remove': {
      run: (p, o) =>
        manager.removeForward(name(p), { hostPort: p.hostPort as number, ...opt(p, 'protocol') }, o),
      vm: byName,
    },
    'vm.snapshot.create': {
      run: (p, o) => manager.snapshot(name(p), { ...o, ...opt(p, 'to'), ...opt(p, 'leavePaused') }),
      vm: byName,
    },
    'vm.snapshot.list': { run: (p) => manager.listSnapshots(name(p)) },
    'vm.snapshot.remove': { run: (p, o) => manager.removeSnapshot(name(p), p.id as string, o), vm: byName },
    'vm.restore': { run: (p, o) => manager.restore(name(p), { ...o, ...opt(p, 'from') }), vm: byName },
    'network.list': { run: () => new NetworkStore(manager.options.stateDir).list() },
    'host.drift': { run: (_p, o) => manager.drift({ signal: o.signal }), host: true },
    'host.reconcile': { run: (_p, o) => manager.reconcile(o), host: true },
    'events.journal': { run: (p, o) => readJournal(manager, p, o.signal) },
    'events.subscribe': { run: (p, o, call) => subscribe(context, p, o.signal, call) },
  };

  const handlers = new Map<string, JsonRpcMethodHandler>();
  for (const [method, implementation] of Object.entries(implementations)) {
    const definition = daemonMethodDefinitions[method as DaemonMethodName];
    handlers.set(method, (params, call) => {
      // The envelope is checked before any work; the raw params go on, for the manager to parse its own way.
      assertParams(envelopeOf(definition), params);
      // The signal is read only by the calls that use it: the server makes a call's signal on first read, and
      // making one for every vm.get cost more than the read itself.
      const options: CallOptions = {
        get signal() {
          return call.signal;
        },
        ...(params.progress === true && {
          onProgress: (event) => call.connection.notify(PROGRESS_NOTIFICATION, { id: call.id, event }),
        }),
      };
      const { refresh } = context;
      const work =
        refresh && (implementation.vm || implementation.host)
          ? async () => {
              await refresh();
              return implementation.run(params, options, call);
            }
          : () => implementation.run(params, options, call);
      const vm = implementation.vm?.(params);
      return vm === undefined ? work() : context.queue.run(vm, work, call.signal);
    });
  }
  return (method) => handlers.get(method);
}

/**
 * A VM's JSON, kept for as long as the manager hands out the same VmInfo for it (frozen: it does while the VM is
 * unchanged), so `vm.get` and `vm.list` do not serialize an unchanged VM again.
 */
function vmJson(): (vm: VmInfo) => string {
  const kept = new WeakMap<VmInfo, string>();
  return (vm) => {
    let json = kept.get(vm);
    if (json === undefined) {
      json = JSON.stringify(vm);
      if (Object.isFrozen(vm)) kept.set(vm, json);
    }
    return json;
  };
}

/** `vm.list` as JSON text from each VM's JSON; an unchanged listing is the very text of the last one. */
function listingText(manager: VmManager, jsonOf: (vm: VmInfo) => string): () => Promise<JsonText> {
  let last: { readonly vms: readonly VmInfo[]; readonly text: JsonText } | undefined;
  return async () => {
    const vms = await manager.list();
    if (last?.vms.length === vms.length && vms.every((vm, i) => vm === last!.vms[i])) return last.text;
    last = { vms, text: new JsonText(`[${vms.map(jsonOf).join(',')}]`) };
    return last.text;
  };
}

function envelopeOf(definition: DaemonMethodDefinition): z.ZodType {
  return definition.envelope ?? definition.params;
}

/** `{ [key]: value }` when the param was given, else `{}`: options the manager treats as absent stay absent. */
function opt(params: Params, key: string): Record<string, never> {
  return (params[key] === undefined ? {} : { [key]: params[key] }) as Record<string, never>;
}

/** INVALID_ARGUMENT naming the first param at fault (`spec.cpus`, `hostPort`). */
function assertParams(schema: z.ZodType, params: Params): void {
  const result = schema.safeParse(params);
  if (result.success) return;
  const issue = result.error.issues[0]!;
  const field = issue.path.length === 0 ? 'params' : issue.path.map(String).join('.');
  const keys = issue.code === 'unrecognized_keys' ? ` (${issue.keys.join(', ')})` : '';
  throw new VmManagerError('INVALID_ARGUMENT', `${field}: ${issue.message}${keys}`, {
    cause: result.error,
    details: { field },
  });
}

/** The end of a VM's serial or VMM log, from a line start; empty when it has none yet. */
async function readLog(
  manager: VmManager,
  params: Params,
): Promise<{ vm: string; log: 'serial' | 'vmm'; path: string; text: string }> {
  const info = await manager.get(params.name as string);
  const log = params.log === 'vmm' ? 'vmm' : 'serial';
  const path = log === 'vmm' ? info.paths.vmmLog : info.paths.serialLog;
  const maxBytes = typeof params.maxBytes === 'number' ? params.maxBytes : 64 * 1024;
  return { vm: info.name, log, path, text: await readFileTail(path, { maxBytes, fromLineStart: true }) };
}

async function readJournal(manager: VmManager, params: Params, signal: AbortSignal): Promise<unknown[]> {
  const limit = typeof params.limit === 'number' ? params.limit : undefined;
  const events: unknown[] = [];
  for await (const event of manager.journal({
    ...(typeof params.vm === 'string' ? { vm: params.vm } : {}),
    ...(typeof params.since === 'string' ? { since: new Date(params.since) } : {}),
    signal,
  })) {
    events.push(event);
    if (limit !== undefined && events.length > limit) events.shift();
  }
  return events;
}

/**
 * Follows the journal from now on and notifies each event until the call is cancelled or its connection closes.
 * Events a slow reader cannot take are dropped (the connection's buffer limit), never queued without bound.
 */
async function subscribe(
  { manager, closing }: HandlerContext,
  params: Params,
  signal: AbortSignal,
  call: JsonRpcCallContext,
): Promise<{ reason: 'cancelled' | 'closing' }> {
  try {
    for await (const event of manager.journal({
      ...(typeof params.vm === 'string' ? { vm: params.vm } : {}),
      since: new Date(),
      follow: true,
      signal,
    })) {
      call.connection.notify(EVENT_NOTIFICATION, { subscription: call.id, event });
    }
  } catch (error) {
    if (!signal.aborted) throw error;
  }
  return { reason: closing() ? 'closing' : 'cancelled' };
}
