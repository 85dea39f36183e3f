import { randomBytes } from 'node:crypto';
import { promises as fs, linkSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Ipv4Cidr, ipv4ToNumber, isIPv4, numberToIPv4, parseVmSubnet } from '@my-hypervisor/net-ops';
import { assertTrustedDir, ensurePrivateDir } from './dir-trust.js';
import { invalidSpec, throwIfAborted, VmManagerError } from './errors.js';

const LAST_RESERVED = 'last_reserved_ip';

export interface IpReservation {
  readonly address: string;
  readonly owner: string;
}

/**
 * IPv4 allocation the CNI host-local way: one file per reserved address, named after it and holding the owner's
 * id, claimed atomically with link(2) so that any number of processes can allocate at once without a shared lock
 * and a crash never leaves a reservation without its owner. Network, gateway (network + 1) and broadcast are
 * never handed out.
 */
export class IpAllocator {
  readonly dir: string;
  readonly subnet: Ipv4Cidr;
  /** The directory of all subnets' reservations (`<stateDir>/ipam`). */
  readonly #base: string;
  /**
   * Allocations in this process run one at a time: concurrent ones would all start from the same hint and race
   * for the same addresses (link(2) keeps that correct, but O(n²)). Other processes still race safely.
   */
  #queue: Promise<unknown> = Promise.resolve();

  constructor({ dir, subnet }: { dir: string; subnet: string }) {
    this.subnet = parseVmSubnet(subnet, 'subnet');
    this.#base = dir;
    this.dir = join(dir, `${this.subnet.network}_${this.subnet.prefixLength}`);
  }

  /** Every reservation in this subnet. */
  async list(): Promise<IpReservation[]> {
    return this.#listSync();
  }

  /**
   * Synchronous on purpose: a few hundred tiny reads finish in a millisecond or two on the event loop, while the
   * same reads as promises queue behind every fsync in libuv's four-thread pool when many VMs are created at once.
   */
  #listSync(): IpReservation[] {
    // Whoever could write here could take addresses from VMs, or hand theirs to ours.
    assertTrustedDir(this.#base, 'the IP reservations directory');
    assertTrustedDir(this.dir, 'the IP reservations directory');
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    const reservations: IpReservation[] = [];
    for (const address of names) {
      if (!isIPv4(address)) continue;
      try {
        reservations.push({ address, owner: readFileSync(join(this.dir, address), 'utf8').trim() });
      } catch {
        // Released between readdir and read.
      }
    }
    return reservations;
  }

  /**
   * The address reserved for `owner`: the one it already holds, else the next free one after the last handed out.
   * Throws EXHAUSTED when the subnet is full.
   */
  allocate(owner: string, { signal }: { signal?: AbortSignal } = {}): Promise<string> {
    if (!/^[A-Za-z0-9_.:-]{1,128}$/.test(owner)) {
      return Promise.reject(invalidSpec('owner', 'must be 1–128 safe characters'));
    }
    const run = this.#queue.then(() => this.#allocate(owner, signal));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #allocate(owner: string, signal: AbortSignal | undefined): Promise<string> {
    throwIfAborted(signal);
    ensurePrivateDir(this.#base, 'the IP reservations directory');
    ensurePrivateDir(this.dir, 'the IP reservations directory');
    const existing = this.#listSync();
    const mine = existing.find((r) => r.owner === owner);
    if (mine) return mine.address;
    const taken = new Set(existing.map((r) => r.address));
    const first = ipv4ToNumber(this.subnet.network) + 2;
    const last = ipv4ToNumber(this.subnet.broadcast) - 1;
    const size = last - first + 1;
    let lastReserved = '';
    try {
      lastReserved = readFileSync(join(this.dir, LAST_RESERVED), 'utf8');
    } catch {}
    const lastNumber = isIPv4(lastReserved.trim()) ? ipv4ToNumber(lastReserved.trim()) : first - 1;
    const start = lastNumber >= first && lastNumber <= last ? lastNumber + 1 - first : 0;
    for (let i = 0; i < size; i++) {
      throwIfAborted(signal);
      const address = numberToIPv4(first + ((start + i) % size));
      if (taken.has(address)) continue;
      if (this.#claim(address, owner)) {
        // Only a hint for where the next search starts: a torn write is ignored on read, so no fsync.
        try {
          writeFileSync(join(this.dir, LAST_RESERVED), address, { mode: 0o600 });
        } catch {}
        return address;
      }
    }
    throw new VmManagerError(
      'EXHAUSTED',
      `no free address left in ${this.subnet.network}/${this.subnet.prefixLength}`,
      {
        details: { subnet: `${this.subnet.network}/${this.subnet.prefixLength}` },
      },
    );
  }

  /** Claims one address: the owner is written first, then link(2) publishes it or fails with EEXIST. */
  #claim(address: string, owner: string): boolean {
    const tmp = join(this.dir, `.${randomBytes(6).toString('hex')}.tmp`);
    writeFileSync(tmp, owner, { mode: 0o600 });
    try {
      linkSync(tmp, join(this.dir, address));
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw error;
    } finally {
      rmSync(tmp, { force: true });
    }
  }

  /** Releases every address `owner` holds; returns them. */
  async release(owner: string): Promise<string[]> {
    const released: string[] = [];
    for (const r of await this.list()) {
      if (r.owner !== owner) continue;
      await fs.rm(join(this.dir, r.address), { force: true });
      released.push(r.address);
    }
    return released;
  }
}

/**
 * Reserves an address for `owner` in `subnet` under `dir` (one file per address): the one it holds already, or the
 * next free one. Safe when many processes allocate at once.
 */
export function allocateBridgeIp({
  dir,
  subnet,
  owner,
  signal,
}: {
  dir: string;
  subnet: string;
  owner: string;
  signal?: AbortSignal;
}): Promise<string> {
  return new IpAllocator({ dir, subnet }).allocate(owner, signal ? { signal } : {});
}
