import { useEffect, useState } from 'preact/hooks';
import { errorText, RpcError, rpc } from './api';
import { followEvents } from './live-events';
import type { VmInfo } from './types';

/** Events for one VM arriving within this many ms make one `vm.get`. */
const COALESCE_MS = 75;

export interface VmListState {
  /** Sorted by name. A live update replaces one element, so rows of unchanged VMs keep their object. */
  readonly vms: readonly VmInfo[];
  readonly loaded: boolean;
  readonly error: string | undefined;
  /** The event stream is open. */
  readonly live: boolean;
}

const byName = (a: VmInfo, b: VmInfo) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** Index of `name` in `vms` (sorted by name), or of where it would go: `found` says which. */
function search(vms: readonly VmInfo[], name: string): { index: number; found: boolean } {
  let lo = 0;
  let hi = vms.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const other = vms[mid]!.name;
    if (other === name) return { index: mid, found: true };
    if (other < name) lo = mid + 1;
    else hi = mid;
  }
  return { index: lo, found: false };
}

/**
 * Every VM, kept current from `/events`: an event for VM X refetches `vm.get X` (bursts coalesced) and patches
 * that one entry; a `deleted` status (or NOT_FOUND) drops it; an unknown VM is inserted. Each (re)open of the
 * stream refetches `vm.list`, since events may have been missed meanwhile.
 */
class VmListStore {
  #state: VmListState = { vms: [], loaded: false, error: undefined, live: false };
  readonly #listeners = new Set<(state: VmListState) => void>();
  readonly #timers = new Map<string, ReturnType<typeof setTimeout>>();
  #stop: (() => void) | undefined;
  #listGeneration = 0;
  /** While `vm.list` is in flight: what live updates changed meanwhile (null: removed), laid over its answer. */
  #sinceList: Map<string, VmInfo | null> | undefined;

  get state(): VmListState {
    return this.#state;
  }

  subscribe(listener: (state: VmListState) => void): () => void {
    this.#listeners.add(listener);
    if (this.#listeners.size === 1) this.#start();
    listener(this.#state);
    return () => {
      this.#listeners.delete(listener);
      if (this.#listeners.size === 0) this.#halt();
    };
  }

  #set(patch: Partial<VmListState>): void {
    this.#state = { ...this.#state, ...patch };
    for (const listener of this.#listeners) listener(this.#state);
  }

  #start(): void {
    this.#stop = followEvents(undefined, {
      onOpen: () => void this.#loadList(),
      onLive: (live) => {
        if (live !== this.#state.live) this.#set({ live });
      },
      onEvent: (event) => {
        if (event.type === 'status' && event.status === 'deleted') {
          this.#cancel(event.vm);
          this.#remove(event.vm);
        } else {
          this.#schedule(event.vm);
        }
      },
    });
    // The list is shown before the stream opens (it may take a moment, or never open behind some proxies).
    void this.#loadList();
  }

  #halt(): void {
    this.#stop?.();
    this.#stop = undefined;
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
    // Nobody follows the events now, so what is held goes stale: the next user starts from a fresh vm.list.
    this.#listGeneration++;
    this.#sinceList = undefined;
    this.#state = { vms: [], loaded: false, error: undefined, live: false };
  }

  async #loadList(): Promise<void> {
    const generation = ++this.#listGeneration;
    const changed = new Map<string, VmInfo | null>();
    this.#sinceList = changed;
    try {
      const listed = await rpc('vm.list', {});
      if (generation !== this.#listGeneration) return;
      const vms = listed.filter((vm) => !changed.has(vm.name));
      for (const vm of changed.values()) if (vm) vms.push(vm);
      this.#set({ vms: vms.sort(byName), loaded: true, error: undefined });
    } catch (error) {
      if (generation !== this.#listGeneration) return;
      this.#set({ error: errorText(error), loaded: true });
    } finally {
      if (generation === this.#listGeneration) this.#sinceList = undefined;
    }
  }

  #cancel(name: string): void {
    const timer = this.#timers.get(name);
    if (timer !== undefined) clearTimeout(timer);
    this.#timers.delete(name);
  }

  #schedule(name: string): void {
    if (this.#timers.has(name)) return;
    this.#timers.set(
      name,
      setTimeout(() => {
        this.#timers.delete(name);
        void this.#refresh(name);
      }, COALESCE_MS),
    );
  }

  async #refresh(name: string): Promise<void> {
    try {
      this.#upsert(await rpc('vm.get', { name }));
    } catch (error) {
      if (error instanceof RpcError && error.code === 'NOT_FOUND') this.#remove(name);
    }
  }

  #upsert(vm: VmInfo): void {
    if (!this.#stop) return;
    this.#sinceList?.set(vm.name, vm);
    const vms = this.#state.vms;
    const { index, found } = search(vms, vm.name);
    const next = [...vms];
    if (found) next[index] = vm;
    else next.splice(index, 0, vm);
    this.#set({ vms: next });
  }

  #remove(name: string): void {
    this.#sinceList?.set(name, null);
    const vms = this.#state.vms;
    const { index, found } = search(vms, name);
    if (!found) return;
    const next = [...vms];
    next.splice(index, 1);
    this.#set({ vms: next });
  }
}

const store = new VmListStore();

/** The live VM list; following starts with the first user and stops with the last. */
export function useVmList(): VmListState {
  const [state, setState] = useState(store.state);
  useEffect(() => store.subscribe(setState), []);
  return state;
}
