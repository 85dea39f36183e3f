import { EventEmitter, on } from 'node:events';
import type { VmOperation, VmStatus } from './state-store.js';

/** Progress of one pipeline step. `ms` is set on `done`, `failed` and `undone`. */
export interface StepEvent {
  readonly type: 'step';
  readonly vm: string;
  readonly op: VmOperation | 'reconcile';
  readonly step: string;
  readonly phase: 'start' | 'done' | 'failed' | 'undo' | 'undone';
  readonly ms?: number;
  readonly error?: string;
}

/** A VM changed status (or disappeared). */
export interface StatusEvent {
  readonly type: 'status';
  readonly vm: string;
  readonly status: VmStatus | 'deleted';
}

/**
 * An event of the VM's own VMM (Cloud Hypervisor's `--event-monitor`): `vm` `booting`, `booted`, `paused`,
 * `resumed`, `shutdown`, `device-removed`, … and `vmm` `starting`, `shutdown`. The VM's serial relay copies them
 * into the journal as the VMM writes them, so they appear whichever process (or none) drove the VM.
 */
export interface VmmEvent {
  readonly type: 'vmm';
  readonly vm: string;
  /** Who in the VMM reports it: `vmm`, `vm`, `cpu_manager`, `virtio-device`, … */
  readonly source: string;
  readonly event: string;
  /** What the VMM says with it (`id` of a removed device, …); absent when it says nothing. */
  readonly properties?: Readonly<Record<string, string>>;
}

/**
 * What `VmManager.events()` yields: a step of an operation or a status change. The journal (`journal()`) also
 * holds the VMMs' own events (`VmmEvent`).
 */
export type VmEvent = StepEvent | StatusEvent;

/** An event as the journal holds it: the manager's, or a VMM's. */
export type JournalEntry = VmEvent | VmmEvent;

/** Fan-out of manager events to listeners and to `events()` iterators. */
export class VmEventHub {
  readonly #emitter = new EventEmitter({ captureRejections: false });
  readonly #sink: ((event: VmEvent) => void) | undefined;

  /** `sink` sees every event first (the manager's journal); it must not throw. */
  constructor(sink?: (event: VmEvent) => void) {
    this.#sink = sink;
  }

  emit(event: VmEvent): void {
    this.#sink?.(event);
    this.#emitter.emit('event', event);
  }

  /** An endless feed of events from now on; stop it with `break` or the signal. */
  async *events({ signal }: { signal?: AbortSignal } = {}): AsyncGenerator<VmEvent> {
    try {
      for await (const [event] of on(this.#emitter, 'event', signal ? { signal } : {}))
        yield event as VmEvent;
    } catch (error) {
      if ((error as Error).name !== 'AbortError') throw error;
    }
  }
}
