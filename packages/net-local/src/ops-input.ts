import {
  type BridgeSpec,
  type Ipv4Cidr,
  type Ipv6Cidr,
  invalidArgument,
  type OperationOptions,
  parseIPv4Cidr,
  parseIPv6Cidr,
  type TapSpec,
  validateInterfaceName,
  validateMtu,
  validateTapOwner,
} from '@my-hypervisor/net-ops';

function requireObject(value: unknown, what: string): void {
  if (typeof value !== 'object' || value === null) throw new TypeError(`${what} must be an object`);
}

/** The caller's signal, after checking the options' shape (a wrong type is a programmer error). */
export function signalOf(options: OperationOptions | undefined): AbortSignal | undefined {
  if (options === undefined) return undefined;
  requireObject(options, 'options');
  const { signal } = options;
  if (signal !== undefined && !(signal instanceof AbortSignal))
    throw new TypeError('options.signal must be an AbortSignal');
  return signal;
}

export interface BridgeInput {
  readonly name: string;
  readonly address: Ipv4Cidr;
  readonly mtu: number | undefined;
  readonly ipv6: Ipv6Cidr | undefined;
}

/** Validates a BridgeSpec completely before any command line is formed. */
export function parseBridgeSpec(spec: BridgeSpec): BridgeInput {
  requireObject(spec, 'spec');
  return {
    name: validateInterfaceName(spec.name, 'name'),
    address: parseIPv4Cidr(spec.address, 'address'),
    mtu: spec.mtu === undefined ? undefined : validateMtu(spec.mtu, 'mtu'),
    ipv6: spec.ipv6Address === undefined ? undefined : parseIPv6Cidr(spec.ipv6Address, 'ipv6Address'),
  };
}

export interface TapInput {
  readonly name: string;
  readonly mtu: number | undefined;
  readonly multiQueue: boolean;
  readonly owner: { readonly uid: number; readonly gid: number } | undefined;
  readonly bridge: string | undefined;
}

/** Validates a TapSpec completely before any command line is formed. */
export function parseTapSpec(spec: TapSpec): TapInput {
  requireObject(spec, 'spec');
  if (spec.multiQueue !== undefined && typeof spec.multiQueue !== 'boolean')
    throw invalidArgument('multiQueue', 'must be a boolean');
  const owner: TapInput['owner'] = spec.owner === undefined ? undefined : { ...validateTapOwner(spec.owner) };
  return {
    name: validateInterfaceName(spec.name, 'name'),
    mtu: spec.mtu === undefined ? undefined : validateMtu(spec.mtu, 'mtu'),
    multiQueue: spec.multiQueue ?? false,
    owner,
    bridge: spec.bridge === undefined ? undefined : validateInterfaceName(spec.bridge, 'bridge'),
  };
}
