/** Options every async operation takes, last. */
export interface OperationOptions {
  readonly signal?: AbortSignal;
}

/**
 * What a backend can do beyond the required minimum. Callers branch on these, never on the class. One backend that
 * implements several ops contracts shares one capabilities object between them.
 */
export interface NetOpsCapabilities {
  /** `listBridgePorts` works (otherwise it rejects with UNSUPPORTED). */
  readonly listBridgePorts: boolean;
  /** `listPortForwards` works (otherwise it rejects with UNSUPPORTED). */
  readonly listPortForwards: boolean;
  /**
   * `createTap` with a `bridge` creates, attaches and brings the TAP up as one step of the backend; `addToBridge` and
   * `bringUp` are then no-ops that only check the TAP exists. Such backends require `bridge` in `createTap`.
   */
  readonly atomicTap: boolean;
  /** `createTap({ multiQueue: true })` works. */
  readonly multiQueue: boolean;
  /** `createTap({ owner })` works (TAP opened by that uid/gid only). */
  readonly tapOwner: boolean;
  /**
   * `createTap({ owner })` also leaves an adopted TAP of another owner with that owner (made again, so it must not
   * be in use). Without it a TAP is owned as asked only when `createTap` creates it.
   */
  readonly reownsTap?: boolean;
  /** `ensureBridge({ ipv6Address })` works. */
  readonly ipv6: boolean;
}

/** Capabilities with every optional behaviour off, to spread and override. */
export const noCapabilities: NetOpsCapabilities = Object.freeze({
  listBridgePorts: false,
  listPortForwards: false,
  atomicTap: false,
  multiQueue: false,
  tapOwner: false,
  ipv6: false,
});
