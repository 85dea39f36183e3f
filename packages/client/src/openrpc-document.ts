import {
  jsonRpcErrorCodes,
  type OpenrpcDocument,
  type OpenrpcMethod,
  paramsOf,
} from '@my-hypervisor/json-rpc';
import { daemonErrorCodes } from './error-codes.js';
import { type DaemonMethodDefinition, DEFAULT_DAEMON_SOCKET, daemonMethodDefinitions } from './methods.js';

/** The API's version: changes only when methods, params or error codes change. */
export const DAEMON_API_VERSION = '1.0.0';

const errors = [
  {
    code: jsonRpcErrorCodes.INVALID_PARAMS,
    message: 'Invalid params (INVALID_ARGUMENT; data.details.field names it)',
  },
  ...Object.entries(daemonErrorCodes)
    .filter(([name]) => name !== 'INVALID_ARGUMENT')
    .map(([name, code]) => ({ code, message: name })),
  { code: jsonRpcErrorCodes.INTERNAL_ERROR, message: 'Internal error' },
  { code: jsonRpcErrorCodes.RATE_LIMITED, message: 'Rate limited' },
];

function methodOf(definition: DaemonMethodDefinition): OpenrpcMethod {
  return {
    name: definition.name,
    summary: definition.summary,
    paramStructure: 'by-name',
    params: paramsOf(definition.params),
    result: {
      name: definition.result.name,
      description: `${definition.result.type}, as ${definingPackage(definition.result.type)} defines it.`,
      schema: {},
    },
    errors,
  };
}

/** The OpenRPC document of the daemon's API; `openrpc.json` in this package is it, written out. */
export function buildDaemonOpenrpcDocument(): OpenrpcDocument {
  return {
    openrpc: '1.3.2',
    info: {
      title: 'myhvd: the my-hypervisor daemon',
      version: DAEMON_API_VERSION,
      description:
        'Newline-delimited JSON-RPC 2.0 over a Unix socket, params by name. Errors carry the VmManagerError ' +
        'code in data.code and its details in data.details. `$/cancel {id}` cancels a call in flight on the same ' +
        'connection; closing the connection cancels all of its calls. Calls made with `progress: true` are ' +
        'preceded by `vm.progress {id, event}` notifications; `events.subscribe` starts `events.event ' +
        '{subscription, event}` notifications.',
    },
    servers: [{ name: 'myhvd', url: `unix://${DEFAULT_DAEMON_SOCKET}` }],
    methods: Object.values(daemonMethodDefinitions).map(methodOf),
  };
}

/** Result types not the manager's: the daemon's own answers (this package's) and the OpenRPC document. */
const RESULT_TYPE_PACKAGES: Readonly<Record<string, string>> = {
  DaemonHello: '@my-hypervisor/client',
  DaemonStatus: '@my-hypervisor/client',
  DashboardLogin: '@my-hypervisor/client',
  OpenrpcDocument: '@my-hypervisor/json-rpc',
};

function definingPackage(type: string): string {
  return RESULT_TYPE_PACKAGES[type] ?? '@my-hypervisor/vm-manager';
}
