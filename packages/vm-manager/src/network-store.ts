import { randomBytes } from 'node:crypto';
import { constants, promises as fs, lstatSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { syncDirectory } from '@my-hypervisor/host-utils';
import { parseVmSubnet, validateInterfaceName } from '@my-hypervisor/net-ops';
import { assertTrustedDir, ensurePrivateDir, unsafePermission, unsafePermissionsError } from './dir-trust.js';
import { invalidSpec, VmManagerError } from './errors.js';

/** The network VMs join unless their spec names another (`network.name`). */
export const DEFAULT_NETWORK = 'default';

/**
 * A network as it was made: the desired state every later operation uses, so a changed `--subnet` or `--bridge`
 * can be refused instead of readdressing the bridge under running VMs.
 */
export interface NetworkRecord {
  readonly schema: 1;
  readonly name: string;
  readonly bridge: string;
  /** Normalised IPv4 CIDR, e.g. `10.62.0.0/24`. */
  readonly subnet: string;
  /** The bridge's address: network + 1. */
  readonly gateway: string;
  /** Which network backend made it (`local`, `mosnet`, …); opaque to the manager. */
  readonly backend: string;
  /** The port-forward driver (`nft`, `iptables`), where the backend has one. */
  readonly nat?: string;
  /** The network namespace it lives in, if not the host's. */
  readonly netns?: string;
  readonly createdAt: string;
}

/** A network name: like a VM name, but short enough to derive a bridge name from (`myhv-<name>`). */
export function validateNetworkName(name: unknown, field = 'network'): string {
  if (typeof name !== 'string' || !/^[a-z][a-z0-9-]{0,14}$/.test(name)) {
    throw invalidSpec(
      field,
      `${JSON.stringify(name)} is not a network name: use 1–15 lowercase letters, digits and '-', starting with a letter`,
    );
  }
  return name;
}

function parseRecord(raw: string, path: string): NetworkRecord {
  let data: unknown;
  try {
    data = JSON.parse(raw);
  } catch (error) {
    throw new VmManagerError('CORRUPT_STATE', `${path} is not valid JSON`, {
      cause: error,
      details: { path },
    });
  }
  const r = data as Partial<NetworkRecord> | null;
  if (
    r?.schema !== 1 ||
    typeof r.name !== 'string' ||
    typeof r.bridge !== 'string' ||
    typeof r.subnet !== 'string' ||
    typeof r.gateway !== 'string' ||
    typeof r.backend !== 'string'
  ) {
    throw new VmManagerError('CORRUPT_STATE', `${path} is not a network record`, { details: { path } });
  }
  return r as NetworkRecord;
}

/**
 * A record's text, opened without following a link and checked on the open file: a record another user could have
 * written decides which bridge and subnet root configures, so it is refused (UNSAFE_PERMISSIONS) rather than read.
 */
async function readTrusted(path: string): Promise<string | undefined> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') {
      const found = unsafePermission(path, lstatSync(path));
      if (found) throw unsafePermissionsError(found, 'a network record');
      throw new VmManagerError('CORRUPT_STATE', `${path} is a symbolic link, not a network record`, {
        details: { path },
      });
    }
    throw error;
  }
  try {
    const found = unsafePermission(path, await handle.stat());
    if (found) throw unsafePermissionsError(found, 'a network record');
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

/**
 * Network records, one file per network under `<stateDir>/networks/`. A record is created exclusively (two
 * processes making the same network: exactly one wins) and never rewritten: a network's settings do not change.
 */
export class NetworkStore {
  readonly root: string;
  readonly #stateDir: string;

  constructor(stateDir: string) {
    this.#stateDir = resolve(stateDir);
    this.root = join(this.#stateDir, 'networks');
  }

  /** The state directory first (as the VM manager checks it, with the same fix), then the records' own. */
  #assertTrusted(): void {
    assertTrustedDir(this.#stateDir, 'the state directory');
    assertTrustedDir(this.root, 'the network records');
  }

  path(name: string): string {
    return join(this.root, `${validateNetworkName(name)}.json`);
  }

  /** Where IP reservations live: one directory for every network (the allocator keeps one subdirectory per subnet). */
  ipamDir(): string {
    return join(this.#stateDir, 'ipam');
  }

  async read(name: string): Promise<NetworkRecord | undefined> {
    const path = this.path(name);
    this.#assertTrusted();
    const raw = await readTrusted(path);
    return raw === undefined ? undefined : parseRecord(raw, path);
  }

  /** Every network, sorted by name (the default first). Unreadable records throw CORRUPT_STATE, naming the file. */
  async list(): Promise<NetworkRecord[]> {
    this.#assertTrusted();
    let entries: string[];
    try {
      entries = await fs.readdir(this.root);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    const records: NetworkRecord[] = [];
    for (const entry of entries.sort()) {
      if (!entry.endsWith('.json') || entry.startsWith('.')) continue;
      const path = join(this.root, entry);
      const raw = await readTrusted(path);
      if (raw !== undefined) records.push(parseRecord(raw, path));
    }
    return records.sort((a, b) =>
      a.name === DEFAULT_NETWORK ? -1 : b.name === DEFAULT_NETWORK ? 1 : a.name.localeCompare(b.name),
    );
  }

  /**
   * Records a new network: ALREADY_EXISTS if one of that name exists. Written to a temp file, then linked into
   * place, which fails atomically when the name is taken.
   */
  async create(input: Omit<NetworkRecord, 'schema' | 'gateway' | 'createdAt'>): Promise<NetworkRecord> {
    const name = validateNetworkName(input.name, 'name');
    const bridge = validateInterfaceName(input.bridge, 'bridge');
    const cidr = parseVmSubnet(input.subnet, 'subnet');
    const record: NetworkRecord = {
      schema: 1,
      name,
      bridge,
      subnet: `${cidr.network}/${cidr.prefixLength}`,
      gateway: cidr.gateway,
      backend: input.backend,
      ...(input.nat ? { nat: input.nat } : {}),
      ...(input.netns ? { netns: input.netns } : {}),
      createdAt: new Date().toISOString(),
    };
    ensurePrivateDir(this.root, 'the network records');
    const tmp = join(this.root, `.${randomBytes(6).toString('hex')}.tmp`);
    const handle = await fs.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    try {
      await handle.writeFile(`${JSON.stringify(record, null, 2)}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await fs.link(tmp, this.path(name));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new VmManagerError('ALREADY_EXISTS', `a network named ${name} already exists`, {
          details: { field: 'name', network: name },
        });
      }
      throw error;
    } finally {
      await fs.rm(tmp, { force: true });
    }
    await syncDirectory(this.root);
    return record;
  }

  /** Removes the record (its VMs, and so its reservations, are gone first: the caller checks). */
  async remove(name: string): Promise<void> {
    await fs.rm(this.path(name), { force: true });
    await syncDirectory(this.root).catch(() => undefined);
  }
}
