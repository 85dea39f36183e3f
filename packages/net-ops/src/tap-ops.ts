import type { NetOpsCapabilities, OperationOptions } from './capabilities.js';

/** The TAP `TapOps.createTap` makes: name, MTU, queue mode, owner and bridge. */
export interface TapSpec {
  /** Interface name, 1–15 bytes of `[A-Za-z0-9_.-]`. */
  readonly name: string;
  readonly mtu?: number;
  /**
   * Create with IFF_MULTI_QUEUE. Cloud Hypervisor opens a named TAP multi-queue only when `num_queues / 2 > 1`;
   * the TAP must match or the boot fails.
   */
  readonly multiQueue?: boolean;
  /**
   * Restrict who may open the TAP (where `capabilities.tapOwner`). With `capabilities.reownsTap` an adopted TAP of
   * another owner is given this one too.
   */
  readonly owner?: { readonly uid: number; readonly gid: number };
  /**
   * When given, the TAP ends attached to this bridge and up. Backends with `capabilities.atomicTap` do that in one
   * step and require it; others do it as three steps. A missing bridge is NOT_FOUND, and a failed call leaves no
   * TAP it created behind.
   */
  readonly bridge?: string;
}

/** What `TapOps.createTap` did: the TAP name and whether it was created or adopted. */
export interface CreateTapResult {
  readonly name: string;
  /** False when a TAP of that name and queue mode existed and was adopted (also when made again for its owner). */
  readonly created: boolean;
}

/** What `TapOps.deleteTap` did: the TAP name and whether it existed. */
export interface DeleteTapResult {
  readonly name: string;
  /** False when there was nothing to delete (which is not an error). */
  readonly existed: boolean;
}

/** TAP devices. Contract v1. */
export interface TapOps {
  readonly specificationVersion: 'v1';
  readonly capabilities: NetOpsCapabilities;
  /**
   * Creates the TAP. An existing TAP with the same queue mode is adopted (`created: false`); an existing
   * interface that is not a TAP, or a TAP with the other queue mode, is CONFLICT.
   */
  createTap(spec: TapSpec, options?: OperationOptions): Promise<CreateTapResult>;
  /** Attaches the TAP to the bridge (MTU set to the bridge's first). NOT_FOUND if either is missing. */
  addToBridge(tap: string, bridge: string, options?: OperationOptions): Promise<void>;
  /** Sets the TAP up. NOT_FOUND if it is missing. */
  bringUp(tap: string, options?: OperationOptions): Promise<void>;
  /** Deletes the TAP; a missing TAP is reported as `existed: false`, not an error. */
  deleteTap(name: string, options?: OperationOptions): Promise<DeleteTapResult>;
}
