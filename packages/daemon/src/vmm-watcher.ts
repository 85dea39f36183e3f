import type { NetworkDrift, VmManager } from '@my-hypervisor/vm-manager';
import type { DaemonLogEntry } from './daemon.js';
import type { KeyedQueue } from './keyed-queue.js';

/** What the watcher did so far. */
export interface WatcherStats {
  readonly checks: number;
  /** VMs whose VMM was found gone while their record said running or paused. */
  readonly exited: number;
  /** Of those, the ones started again because their spec says `restart: always`. */
  readonly restarted: number;
  /** Network pieces found missing (a bridge, TAP, namespace or forward someone deleted) and put back. */
  readonly drift: number;
}

/**
 * Notices VMMs that die behind the daemon's back (a crash, an OOM kill, a guest that powered off). A VM found so
 * is repaired by `reconcile()` (marked stopped, its runtime files cleaned, its forwards and address kept) and,
 * when its spec says `restart: always`, started again. Checks are cheap: the records and /proc, no VMM calls.
 * Every `driftIntervalMs` a check also asks the manager for network drift (`drift()`: the bridge, TAPs, namespaces
 * and forwards the records name, listed from the host) and, when something of a VM not in the middle of an
 * operation is missing, runs `reconcile()`, which puts it back.
 */
export class VmmWatcher {
  readonly #manager: VmManager;
  readonly #intervalMs: number;
  readonly #log: (entry: DaemonLogEntry) => void;
  readonly #queue: KeyedQueue;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  readonly #driftIntervalMs: number;
  #stopped = false;
  #checks = 0;
  #exited = 0;
  #restarted = 0;
  #drift = 0;
  /** When drift was last looked for (performance.now()); the first check looks. */
  #driftCheckedAt = Number.NEGATIVE_INFINITY;

  constructor(
    manager: VmManager,
    queue: KeyedQueue,
    intervalMs: number,
    log: (entry: DaemonLogEntry) => void,
    driftIntervalMs = 0,
  ) {
    this.#manager = manager;
    this.#queue = queue;
    this.#intervalMs = intervalMs;
    this.#log = log;
    this.#driftIntervalMs = driftIntervalMs;
  }

  get stats(): WatcherStats {
    return { checks: this.#checks, exited: this.#exited, restarted: this.#restarted, drift: this.#drift };
  }

  start(): void {
    if (this.#intervalMs === 0 || this.#stopped) return;
    this.#schedule();
  }

  /** Looks once now: what the timer does, for tests and for `daemon.status` callers who cannot wait. */
  async check(): Promise<void> {
    this.#running ??= this.#check().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
  }

  #schedule(): void {
    this.#timer = setTimeout(() => {
      void this.check().finally(() => {
        if (!this.#stopped) this.#schedule();
      });
    }, this.#intervalMs);
    // The socket keeps the daemon alive; the watcher alone must not.
    this.#timer.unref();
  }

  async #check(): Promise<void> {
    this.#checks++;
    let dead: { name: string; restart: string }[];
    let busy: Set<string>;
    try {
      const vms = await this.#manager.list();
      dead = vms
        .filter((vm) => (vm.status === 'running' || vm.status === 'paused') && !vm.vmmAlive && !vm.pending)
        .map((vm) => ({ name: vm.name, restart: vm.spec.restart }));
      busy = new Set(vms.filter((vm) => vm.pending).map((vm) => vm.name));
    } catch (error) {
      this.#log({ level: 'error', message: 'watcher: cannot list the VMs', error });
      return;
    }
    await this.#exits(dead);
    if (this.#driftIntervalMs > 0 && performance.now() - this.#driftCheckedAt >= this.#driftIntervalMs) {
      this.#driftCheckedAt = performance.now();
      await this.#repairDrift(busy);
    }
  }

  /** Looks for network drift and, for VMs not mid-operation (`busy`), has `reconcile()` put back what is missing. */
  async #repairDrift(busy: ReadonlySet<string>): Promise<void> {
    if (this.#stopped) return;
    let drift: NetworkDrift[];
    try {
      drift = (await this.#manager.drift()).filter((d) => d.vm === undefined || !busy.has(d.vm));
    } catch (error) {
      this.#log({ level: 'error', message: 'watcher: cannot look for network drift', error });
      return;
    }
    if (drift.length === 0 || this.#stopped) return;
    for (const d of drift) {
      this.#log({
        level: 'warn',
        message: `network drift: ${d.problem}`,
        ...(d.vm ? { vm: d.vm } : {}),
      });
    }
    try {
      const report = await this.#manager.reconcile();
      this.#drift += drift.length;
      this.#log({ level: 'info', message: `network drift repaired: ${report.changes.length} change(s)` });
    } catch (error) {
      this.#log({ level: 'error', message: 'watcher: reconcile failed', error });
    }
  }

  /** Marks VMs whose VMM died stopped (`reconcile()`), then starts those whose spec says `restart: always`. */
  async #exits(dead: readonly { name: string; restart: string }[]): Promise<void> {
    if (dead.length === 0 || this.#stopped) return;
    this.#exited += dead.length;
    for (const vm of dead) this.#log({ level: 'warn', message: 'its VMM exited', vm: vm.name });
    try {
      await this.#manager.reconcile();
    } catch (error) {
      this.#log({ level: 'error', message: 'watcher: reconcile failed', error });
      return;
    }
    for (const vm of dead) {
      if (vm.restart !== 'always' || this.#stopped) continue;
      try {
        // In the VM's queue: a call that came in meanwhile (a delete) goes first, and this start after it.
        await this.#queue.run(vm.name, () => this.#manager.start(vm.name));
        this.#restarted++;
        this.#log({ level: 'info', message: 'restarted (restart: always)', vm: vm.name });
      } catch (error) {
        this.#log({ level: 'error', message: 'restart failed', vm: vm.name, error });
      }
    }
  }
}
