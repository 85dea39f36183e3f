import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { VmState } from '../schemas/primitives.js';
import { isProbeGuest, isUnloadableProbeGuest, probeGuestSerial } from './probe-guest.js';
import { deviceWithDefaults, randomLocalMac, vmConfigWithDefaults } from './sim-config-defaults.js';
import { list, validate } from './sim-config-validate.js';
import {
  apiFailure,
  noRoute,
  type SimFailure,
  type SimulatorVersion,
  type VmErr,
  versionMajor,
  vmErr,
} from './sim-failure.js';
import { checkTap, connectVhostUser, vhostUserError } from './sim-host-devices.js';
import type { SimResponse } from './sim-http.js';
import type { SimLog } from './sim-log.js';

type Json = Record<string, unknown>;

export interface SimVmmOptions {
  readonly version: SimulatorVersion;
  readonly strictTaps: boolean;
  readonly sysClassNetDir: string;
  readonly powerButton: 'poweroff' | 'ignore';
  readonly powerOffDelayMs: number;
  readonly noShutdown: boolean;
  readonly event: (source: string, event: string, properties?: Record<string, string>) => void;
  readonly log: SimLog;
  /** The VMM process would end now (vmm.shutdown, or a guest power-off without --no-shutdown). */
  readonly exit: (reason: 'vmm.shutdown' | 'guest-poweroff') => void;
}

/** A simulated VMM answer to one request: the response, or a SimFailure thrown. */
export type SimResult = SimResponse;

const DEFAULT_MEMORY_BYTES = 512 * 1024 * 1024;
const noContent: SimResult = { status: 204 };

// Device lists of VmConfig and the prefix of the ids the VMM generates for them.
const deviceLists: readonly (readonly [string, string])[] = [
  ['disks', '_disk'],
  ['net', '_net'],
  ['fs', '_fs'],
  ['pmem', '_pmem'],
  ['devices', '_vfio'],
  ['user_devices', '_vfio_user'],
  ['vdpa', '_vdpa'],
  ['generic_vhost_user', '_generic_vhost_user'],
];

/**
 * The simulated VMM: Cloud Hypervisor's VM state machine (no VM → Created → Running ⇄ Paused; shutdown →
 * Created; delete) and the checks it makes when it builds devices. No guest runs.
 */
export class SimVmm {
  readonly #o: SimVmmOptions;
  #config: Json | undefined;
  #state: 'Created' | 'Running' | 'Paused' = 'Created';
  /** The VMM holds a VM object (booted, or built and then failed to start its kernel). */
  #owned = false;
  /** After an on-demand restore: until when the guest's memory is still being loaded (a snapshot is refused). */
  #loadingUntil = 0;
  #fsConnections: net.Socket[] = [];
  /** Serial `Socket` mode: the listener the VMM binds at boot and the one client it serves. */
  #serialServer: net.Server | undefined;
  #serialClient: net.Socket | undefined;
  #deviceCounter = 0;
  #nextSlot = 3;
  readonly #bdfs = new Map<string, string>();
  /** Bytes of RAM hot-plugged since boot (the `hotplug_size` region they fill). */
  #hotplugged = 0;
  #bootIds = new Set<string>();
  #powerOffTimer: NodeJS.Timeout | undefined;

  constructor(options: SimVmmOptions) {
    this.#o = options;
  }

  /** The VM's state, or undefined when no VM is created. */
  get state(): VmState | undefined {
    return this.#config ? this.#state : undefined;
  }

  /** The stored `vm.create` body with the VMM's defaults filled in (plus hot-plugged devices and boot ids). */
  get config(): Json | undefined {
    return this.#config;
  }

  /** How many vhost-user (virtio-fs) connections the VM holds open. */
  get fsConnectionCount(): number {
    return this.#fsConnections.length;
  }

  get #booted(): boolean {
    return this.#config !== undefined && this.#owned;
  }

  async handle(endpoint: string, body: Json | undefined): Promise<SimResult> {
    const fail = (error: VmErr) => apiFailure(endpoint, error);
    switch (endpoint) {
      case 'vmm.ping':
        return json(this.#ping());
      case 'vmm.shutdown':
        this.#delete();
        this.#o.event('vmm', 'shutdown');
        this.#o.exit('vmm.shutdown');
        // The VMM answers 200 with an empty body here, not the documented 204.
        return { status: 200 };
      case 'vm.create':
        if (this.#config) throw fail(vmErr.alreadyCreated());
        this.#config = vmConfigWithDefaults(body!);
        this.#state = 'Created';
        this.#owned = false;
        return noContent;
      case 'vm.boot':
        return this.#boot();
      case 'vm.delete':
        this.#delete();
        return noContent;
      case 'vm.info':
        if (!this.#config) throw fail(vmErr.notCreated());
        return json(this.#info());
      case 'vm.counters':
        if (!this.#booted) throw fail(vmErr.notRunning());
        return json(this.#counters());
      case 'vm.pause':
        if (!this.#booted) throw fail(vmErr.notRunning());
        this.#o.event('vm', 'pausing');
        if (this.#state === 'Paused') throw fail(vmErr.migratable('pause', this.#state, 'Paused'));
        this.#state = 'Paused';
        this.#o.event('vm', 'paused');
        return noContent;
      case 'vm.resume':
        if (!this.#booted) throw fail(vmErr.notRunning());
        this.#o.event('vm', 'resuming');
        if (this.#state === 'Running') throw fail(vmErr.migratable('resume', this.#state, 'Running'));
        this.#state = 'Running';
        this.#o.event('vm', 'resumed');
        return noContent;
      case 'vm.shutdown':
        if (!this.#booted) throw fail(vmErr.notRunning());
        this.#shutdown();
        return noContent;
      case 'vm.reboot':
        // The VMM takes the running VM or fails with "not created", even when a config exists.
        this.#o.event('vm', 'rebooting');
        if (!this.#booted) throw fail(vmErr.notCreated());
        this.#state = 'Running';
        this.#o.event('vm', 'rebooted');
        return noContent;
      case 'vm.power-button':
        if (!this.#booted) throw fail(vmErr.notRunning());
        this.#powerButton();
        return noContent;
      case 'vm.nmi':
        if (!this.#booted) throw fail(vmErr.notRunning());
        return noContent;
      case 'vm.resize':
        return this.#resize(body ?? {});
      case 'vm.resize-disk':
        return this.#resizeDisk(body ?? {});
      case 'vm.resize-zone':
        return this.#resizeZone(body ?? {});
      case 'vm.remove-device':
        return this.#removeDevice(String(body?.id ?? ''));
      case 'vm.add-disk':
      case 'vm.add-net':
      case 'vm.add-fs':
      case 'vm.add-pmem':
      case 'vm.add-device':
      case 'vm.add-user-device':
      case 'vm.add-vdpa':
      case 'vm.add-generic-vhost-user':
      case 'vm.add-vsock':
        return this.#addDevice(endpoint, body ?? {});
      case 'vm.snapshot':
        return this.#snapshot(String(body?.destination_url ?? ''));
      case 'vm.restore':
        return this.#restore(body ?? {});
      case 'vm.coredump':
        return this.#coredump(String(body?.destination_url ?? ''));
      case 'vm.send-migration':
      case 'vm.receive-migration':
        return this.#migration(endpoint, body ?? {});
      default:
        throw noRoute();
    }
  }

  /** What the VMM does when it exits (SIGTERM, guest power-off): shut the VM down and forget it. */
  exitCleanup(): void {
    clearTimeout(this.#powerOffTimer);
    this.#delete();
  }

  #ping() {
    const major = versionMajor(this.#o.version);
    return {
      build_version: `v${major}.0 (@my-hypervisor/chv-client simulator, no guest runs)`,
      version: `${major}.0.0`,
      pid: process.pid,
      features: ['kvm', 'io_uring', 'guest_debug', 'simulator'],
    };
  }

  #info() {
    const config = this.#config!;
    const memory = (config.memory as Json | undefined) ?? {};
    const size =
      (typeof memory.size === 'number' ? memory.size : DEFAULT_MEMORY_BYTES) -
      (typeof memory.hotplugged_size === 'number' ? memory.hotplugged_size : 0);
    return {
      config,
      state: this.#state,
      memory_actual_size: size,
      ...(this.#booted ? { device_tree: this.#deviceTree() } : {}),
    };
  }

  #deviceTree() {
    const tree: Record<string, Json> = {};
    for (const [id, bdf] of this.#bdfs) tree[id] = { id, resources: [], children: [], pci_bdf: bdf };
    return tree;
  }

  #counters() {
    const counters: Record<string, Record<string, number>> = {};
    // Only virtio-net and virtio-block devices have counters (virtio-devices/src/{net,block}.rs `counters()`).
    const config = this.#config!;
    for (const net of list(config, 'net')) {
      if (typeof net.id === 'string')
        counters[net.id] = { rx_bytes: 0, rx_frames: 0, tx_bytes: 0, tx_frames: 0 };
    }
    for (const disk of list(config, 'disks')) {
      if (typeof disk.id !== 'string') continue;
      counters[disk.id] = {
        read_bytes: 0,
        write_bytes: 0,
        read_ops: 0,
        write_ops: 0,
        write_latency_min: 0,
        write_latency_max: 0,
        write_latency_avg: 0,
        read_latency_min: 0,
        read_latency_max: 0,
        read_latency_avg: 0,
      };
    }
    return counters;
  }

  async #boot(): Promise<SimResult> {
    const fail = (error: VmErr) => apiFailure('vm.boot', error);
    if (this.#booted) throw fail(vmErr.alreadyCreated());
    this.#o.event('vm', 'booting');
    if (!this.#config) throw fail(vmErr.missingConfig());
    const error = await this.#openDevices(this.#config);
    if (error) throw fail(error);
    // The kernel is opened by the payload loader after the VM object exists (vmm/src/vm.rs:1748, joined in
    // Vm::boot): a missing kernel leaves the VM built but Created, and a second vm.boot says "already created".
    this.#owned = true;
    const kernel = (this.#config.payload as Json | undefined)?.kernel;
    if (typeof kernel === 'string' && !fs.existsSync(kernel)) {
      throw fail(
        vmErr.other(
          'internal',
          ['Cannot open kernel file', 'No such file or directory (os error 2)'],
          'KernelFile(Os { code: 2, kind: NotFound, message: "No such file or directory" })',
        ),
      );
    }
    if (typeof kernel === 'string' && isUnloadable(kernel)) {
      throw fail(
        vmErr.other(
          'internal',
          [
            'Cannot load the kernel into memory',
            'Kernel Loader: failed to load bzImage kernel image: Kernel Loader: Invalid bzImage',
            'Kernel Loader: Invalid bzImage',
          ],
          'KernelLoad(Bzimage(InvalidBzImage))',
        ),
      );
    }
    this.#state = 'Running';
    await this.#playSerial(this.#config);
    this.#o.event('vm', 'booted');
    return noContent;
  }

  /**
   * The serial file is created at boot, as the VMM does. No guest runs here, with one exception: for the probe
   * guest the simulator writes what that guest prints (checked on a real CPU by probe-guest.test.ts), so tests
   * of what reaches a guest (its command line) run on the simulator too.
   */
  async #playSerial(config: Json) {
    const serial = config.serial as Json | undefined;
    if (serial?.mode === 'Socket' && typeof serial.socket === 'string') {
      await this.#listenSerial(serial.socket, this.#guestSerial(config));
      return;
    }
    if (serial?.mode !== 'File' || typeof serial.file !== 'string') return;
    try {
      fs.writeFileSync(serial.file, this.#guestSerial(config));
    } catch (error) {
      this.#o.log.info(`serial file ${serial.file}: ${(error as Error).message}`);
    }
  }

  /** What the guest prints on its serial port: the probe guest's lines, nothing for any other kernel. */
  #guestSerial(config: Json): string {
    const payload = config.payload as Json | undefined;
    const kernel = typeof payload?.kernel === 'string' ? payload.kernel : undefined;
    const cmdline = typeof payload?.cmdline === 'string' ? payload.cmdline : '';
    try {
      const isProbe =
        kernel !== undefined && fs.statSync(kernel).size < 4096 && isProbeGuest(fs.readFileSync(kernel));
      return isProbe ? probeGuestSerial(cmdline) : '';
    } catch {
      return '';
    }
  }

  /**
   * Serial `Socket` mode as Cloud Hypervisor does it (vmm/src/serial_manager.rs): the VMM binds the path when the
   * VM boots and serves one client at a time; a second connection is dropped; input goes to the guest (which
   * ignores it here). Simplification: the guest's lines are sent to the first client when it attaches, since
   * the simulator has no guest clock (a real guest's output with nobody attached is lost).
   */
  async #listenSerial(socketPath: string, output: string): Promise<void> {
    let pending = output;
    const server = net.createServer((client) => {
      if (this.#serialClient) {
        client.destroy();
        return;
      }
      this.#serialClient = client;
      client.on('data', () => undefined);
      client.on('error', () => undefined);
      client.on('close', () => {
        if (this.#serialClient === client) this.#serialClient = undefined;
      });
      if (pending) client.write(pending);
      pending = '';
    });
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(socketPath, () => resolve());
      });
      fs.chmodSync(socketPath, 0o600);
      this.#serialServer = server;
    } catch (error) {
      this.#o.log.info(`serial socket ${socketPath}: ${(error as Error).message}`);
    }
  }

  /** What building the VM checks and opens: config validation, kernel, TAPs, vhost-user sockets. */
  async #openDevices(config: Json): Promise<VmErr | undefined> {
    const invalid = validate(config);
    if (invalid) return invalid;
    for (const netConfig of list(config, 'net')) {
      const error = checkTap(netConfig, this.#o);
      if (error) return error;
    }
    const connections: net.Socket[] = [];
    for (const fsConfig of list(config, 'fs')) {
      try {
        connections.push(await connectVhostUser(String(fsConfig.socket)));
      } catch (error) {
        for (const socket of connections) socket.destroy();
        return vhostUserError(String(fsConfig.socket), error);
      }
    }
    this.#fsConnections = connections;
    this.#assignDevices(config);
    this.#o.log.info(
      `VM built (simulated: no guest runs); ${connections.length} vhost-user connection(s) held`,
    );
    return undefined;
  }

  /**
   * Ids and PCI slots as the device manager hands them out at boot: the virtio console first (unless Off), then
   * disks, nets, rng, generic vhost-user, fs, pmem, vsock, balloon, vDPA, then VFIO and user devices, on
   * segment 0 from slot 1 (slot 0 is the host bridge). Generated ids share one counter and are written back
   * into the config (vmm/src/device_manager.rs `make_virtio_devices`, `next_device_name`).
   */
  #assignDevices(config: Json) {
    this.#bdfs.clear();
    this.#deviceCounter = 0;
    this.#hotplugged = 0;
    this.#nextSlot = 1;
    this.#bootIds = new Set(
      [
        ...deviceLists.flatMap(([key]) => list(config, key).map((d) => d.id)),
        (config.vsock as Json | undefined)?.id,
      ].filter((id): id is string => typeof id === 'string'),
    );
    const slotOnly = () => this.#bdf();
    if ((config.console as Json | undefined)?.mode !== 'Off') slotOnly();
    const named = (key: string, prefix: string) => {
      for (const device of list(config, key)) {
        const id = this.#deviceId(device, prefix);
        device.id = id;
        openedFacts(key, device);
        this.#bdfs.set(id, this.#bdf());
      }
    };
    named('disks', '_disk');
    named('net', '_net');
    slotOnly(); // virtio-rng: id __rng, not written back into the config
    named('generic_vhost_user', '_generic_vhost_user');
    named('fs', '_fs');
    named('pmem', '_pmem');
    const vsock = config.vsock as Json | undefined;
    if (vsock) {
      vsock.id = this.#deviceId(vsock, '_vsock');
      this.#bdfs.set(vsock.id as string, this.#bdf());
    }
    if (config.balloon) slotOnly();
    named('vdpa', '_vdpa');
    named('devices', '_vfio');
    named('user_devices', '_vfio_user');
  }

  #shutdown() {
    clearTimeout(this.#powerOffTimer);
    for (const socket of this.#fsConnections) socket.destroy();
    this.#fsConnections = [];
    this.#serialClient?.destroy();
    this.#serialClient = undefined;
    this.#serialServer?.close();
    this.#serialServer = undefined;
    this.#bdfs.clear();
    this.#state = 'Created';
    this.#owned = false;
    this.#o.event('vm', 'shutdown');
  }

  #delete() {
    if (!this.#config) return;
    if (this.#booted) this.#shutdown();
    this.#config = undefined;
    this.#state = 'Created';
    this.#owned = false;
    this.#o.event('vm', 'deleted');
  }

  #powerButton() {
    if (this.#o.powerButton === 'ignore') {
      this.#o.log.info('power button pressed; the simulated guest ignores it (MYHV_SIM_POWER_BUTTON=ignore)');
      return;
    }
    clearTimeout(this.#powerOffTimer);
    // A cooperative guest powers off shortly after the ACPI event; the VMM then ends unless --no-shutdown.
    this.#powerOffTimer = setTimeout(() => {
      if (this.#state !== 'Running') return;
      this.#o.log.info('simulated guest powered off');
      if (this.#o.noShutdown) {
        this.#shutdown();
        return;
      }
      this.#delete();
      this.#o.event('vmm', 'shutdown');
      this.#o.exit('guest-poweroff');
    }, this.#o.powerOffDelayMs);
  }

  #resize(body: Json): SimResult {
    const fail = (error: VmErr) => apiFailure('vm.resize', error);
    if (!this.#config) throw fail(vmErr.notCreated());
    const config = this.#config;
    const cpus = (config.cpus as Json | undefined) ?? { boot_vcpus: 1, max_vcpus: 1 };
    if (typeof body.desired_vcpus === 'number') {
      const max = typeof cpus.max_vcpus === 'number' ? cpus.max_vcpus : 1;
      if (this.#booted && body.desired_vcpus > max) {
        throw fail(
          vmErr.other(
            'internal',
            ['Error from CPU manager', 'Requested vCPUs exceed maximum'],
            'CpuManager(DesiredVCpuCountExceedsMax)',
          ),
        );
      }
      config.cpus = { ...cpus, boot_vcpus: body.desired_vcpus };
    }
    if (typeof body.desired_ram === 'number') {
      const memory = (config.memory as Json | undefined) ?? {};
      if (this.#booted) this.#checkRamHotplug(memory, body.desired_ram, fail);
      config.memory = { ...memory, size: body.desired_ram };
    }
    if (typeof body.desired_balloon === 'number' && config.balloon) {
      config.balloon = { ...(config.balloon as Json), size: body.desired_balloon };
    }
    return noContent;
  }

  /**
   * ACPI memory hot-plug of a running VM (vmm/src/memory_manager.rs `hotplug_ram_region`): each added DIMM is a
   * multiple of 128 MiB and must fit the `hotplug_size` region; shrinking is not done this way and is ignored.
   */
  #checkRamHotplug(memory: Json, desired: number, fail: (error: VmErr) => SimFailure) {
    const size = typeof memory.size === 'number' ? memory.size : 512 * 1024 * 1024;
    if (desired <= size || memory.hotplug_method === 'VirtioMem') return;
    const memoryError = (text: string, debug: string) =>
      fail(vmErr.other('internal', ['Memory manager error', text], `MemoryManager(${debug})`));
    if ((desired - size) % (128 << 20) !== 0)
      throw memoryError('The requested hotplug memory addition is not a valid size', 'InvalidSize');
    const room = typeof memory.hotplug_size === 'number' ? memory.hotplug_size : 0;
    if (this.#hotplugged + (desired - size) > room)
      throw memoryError('Not enough space in the hotplug RAM region', 'InsufficientHotplugRam');
    this.#hotplugged += desired - size;
  }

  #resizeDisk(body: Json): SimResult {
    const fail = (error: VmErr) => apiFailure('vm.resize-disk', error);
    if (!this.#config) throw fail(vmErr.notCreated());
    if (!this.#booted) throw fail(vmErr.other('internal', ['Cannot resize disk'], 'ResizeDisk'));
    const id = String(body.id ?? '');
    if (!this.#bdfs.has(id) || !id.length) {
      throw fail(
        vmErr.other(
          'not-found',
          [`No disk with id ${JSON.stringify(id)}`],
          `UnknownDevice(${JSON.stringify(id)})`,
        ),
      );
    }
    return noContent;
  }

  #resizeZone(body: Json): SimResult {
    const fail = (error: VmErr) => apiFailure('vm.resize-zone', error);
    if (!this.#config) throw fail(vmErr.notCreated());
    const memory = (this.#config.memory as Json | undefined) ?? {};
    const zone = (Array.isArray(memory.zones) ? (memory.zones as Json[]) : []).find((z) => z.id === body.id);
    if (!zone) {
      throw fail(
        vmErr.other(
          'not-found',
          [`Could not find the memory zone ${String(body.id)} for the resize`],
          'ResizeZone',
        ),
      );
    }
    if (typeof body.desired_ram === 'number') zone.size = body.desired_ram;
    return noContent;
  }

  async #addDevice(endpoint: string, device: Json): Promise<SimResult> {
    const fail = (error: VmErr) => apiFailure(endpoint, error);
    if (!this.#config) throw fail(vmErr.notCreated());
    const config = this.#config;
    const key = endpoint === 'vm.add-vsock' ? 'vsock' : addTargets[endpoint]!;
    if (key === 'vsock' && config.vsock) {
      throw fail(vmErr.other('duplicate', ['Too many vsock devices'], 'TooManyVsockDevices'));
    }
    device = key === 'vsock' ? { pci_segment: 0, ...device } : deviceWithDefaults(key, device);
    const candidate = structuredClone(config);
    if (key === 'vsock') candidate.vsock = device;
    else candidate[key] = [...list(candidate, key), device];
    const invalid = validate(candidate);
    if (invalid) throw fail(invalid);
    if (!this.#booted) {
      if (key === 'vsock') config.vsock = device;
      else config[key] = [...list(config, key), device];
      return noContent;
    }
    if (key === 'net') {
      const error = checkTap(device, this.#o);
      if (error) throw fail(error);
    }
    if (key === 'fs') {
      try {
        this.#fsConnections.push(await connectVhostUser(String(device.socket)));
      } catch (error) {
        throw fail(vhostUserError(String(device.socket), error));
      }
    }
    const prefix = key === 'vsock' ? '_vsock' : (deviceLists.find(([k]) => k === key)?.[1] ?? '_device');
    const id = this.#deviceId(device, prefix);
    const stored = { ...device, id };
    openedFacts(key, stored);
    if (key === 'vsock') config.vsock = stored;
    else config[key] = [...list(config, key), stored];
    const bdf = this.#bdf();
    this.#bdfs.set(id, bdf);
    return json({ id, bdf });
  }

  #removeDevice(id: string): SimResult {
    const fail = (error: VmErr) => apiFailure('vm.remove-device', error);
    if (!this.#config) throw fail(vmErr.notCreated());
    const config = this.#config;
    for (const [key] of deviceLists) {
      const devices = list(config, key);
      const index = devices.findIndex((d) => d.id === id);
      if (index >= 0) {
        config[key] = devices.filter((_, i) => i !== index);
        this.#removed(id);
        return noContent;
      }
    }
    if ((config.vsock as Json | undefined)?.id === id) {
      delete config.vsock;
      this.#removed(id);
      return noContent;
    }
    // Booted VMs also know the ids they generated for devices that came without one.
    if (this.#booted && this.#bdfs.has(id)) {
      this.#removed(id);
      return noContent;
    }
    // A running VM asks its device manager; only an unbooted one edits the config (recorded from v53.0.0).
    if (this.#booted) {
      throw fail(
        vmErr.deviceManager(
          'not-found',
          [`Failed to find device corresponding to the given identifier: ${id}`],
          `UnknownDeviceId(${JSON.stringify(id)})`,
        ),
      );
    }
    throw fail(vmErr.noDeviceToRemove(id));
  }

  #removed(id: string) {
    if (!this.#booted) return;
    this.#bdfs.delete(id);
    this.#o.event('vm', 'device-removed', { id });
  }

  #snapshot(url: string): SimResult {
    const fail = (error: VmErr) => apiFailure('vm.snapshot', error);
    if (!this.#booted) throw fail(vmErr.notRunning());
    // Checked first, paused or not (recorded from v53.0.0).
    if (performance.now() < this.#loadingUntil) {
      throw fail(
        vmErr.other(
          'wrong-state',
          ['VM on-demand memory restore is still in progress'],
          'OnDemandRestoreInProgress',
        ),
      );
    }
    if (this.#state !== 'Paused') {
      throw fail(
        vmErr.other(
          'wrong-state',
          [
            'Cannot snapshot VM',
            'Failed to snapshot migratable component',
            'Trying to snapshot while VM is running',
          ],
          'Snapshot(Snapshot("Trying to snapshot while VM is running"))',
        ),
      );
    }
    const dir = fileUrlPath(url);
    this.#o.event('vm', 'snapshotting');
    try {
      fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(this.#config));
      fs.writeFileSync(path.join(dir, 'state.json'), JSON.stringify({ simulator: true, state: this.#state }));
    } catch (error) {
      throw fail(
        vmErr.other(
          'internal',
          ['Error sending snapshot', `Failed to create the snapshot files: ${errorText(error)}`],
          'SnapshotSend',
        ),
      );
    }
    this.#o.event('vm', 'snapshotted');
    return noContent;
  }

  async #restore(body: Json): Promise<SimResult> {
    const fail = (error: VmErr) => apiFailure('vm.restore', error);
    if (this.#config) throw fail(vmErr.alreadyCreated());
    const dir = fileUrlPath(String(body.source_url ?? ''));
    // The real VMM checks the source first, in the words of its migration code (recorded from v53.0.0).
    if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
      throw fail(
        vmErr.other(
          'internal',
          [
            'Cannot restore VM',
            'Failed to send migratable component snapshot',
            `Destination is not a directory: ${JSON.stringify(dir)}`,
          ],
          'Restore(MigrateSend)',
        ),
      );
    }
    this.#o.event('vm', 'restoring');
    let config: Json;
    try {
      config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Json;
    } catch (error) {
      throw fail(
        vmErr.other(
          'internal',
          ['Error restoring VM', `Failed to read the snapshot: ${errorText(error)}`],
          'Restore',
        ),
      );
    }
    const error = await this.#openDevices(config);
    if (error) throw fail(error);
    this.#config = config;
    this.#owned = true;
    this.#state = body.resume === true ? 'Running' : 'Paused';
    // On demand, the real VMM answers at once and loads the memory in the background: about 400 ms for 64 MiB on
    // the machine it was measured on; modelled as 6 ms per MiB, at most 3 s.
    if (body.memory_restore_mode === 'OnDemand') {
      const mib = Number((config.memory as Json | undefined)?.size ?? 0) / 2 ** 20;
      this.#loadingUntil = performance.now() + Math.min(3_000, 6 * mib);
    }
    // Restore rebuilds the devices, so a `Socket` serial port is bound again (a restored guest prints nothing new).
    const serial = config.serial as Json | undefined;
    if (serial?.mode === 'Socket' && typeof serial.socket === 'string')
      await this.#listenSerial(serial.socket, '');
    this.#o.event('vm', 'restored');
    return noContent;
  }

  #coredump(url: string): SimResult {
    const fail = (error: VmErr) => apiFailure('vm.coredump', error);
    if (!this.#booted) throw fail(vmErr.notRunning());
    try {
      // An ELF magic and nothing else: there is no guest memory to dump.
      fs.writeFileSync(fileUrlPath(url), Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
    } catch (error) {
      throw fail(vmErr.other('internal', ['Failed to write the coredump', errorText(error)], 'Coredump'));
    }
    return noContent;
  }

  #migration(endpoint: string, body: Json): SimResult {
    const fail = (error: VmErr) => apiFailure(endpoint, error);
    if (endpoint === 'vm.send-migration') {
      if (!this.#booted) throw fail(vmErr.notRunning());
      const url = String(body.destination_url ?? '');
      if (!/^(tcp:.+:\d+|unix:.+)$/.test(url)) {
        throw fail(
          vmErr.other(
            'invalid-config',
            [
              'Error validating send migration parameters',
              'destination_url must use tcp:<host>:<port> or unix:<path>.',
            ],
            'ValidationError',
          ),
        );
      }
    } else if (this.#config) {
      throw fail(vmErr.alreadyCreated());
    }
    throw fail(
      vmErr.other('internal', ['Live migration is not simulated (no guest runs)'], 'MigrationNotSimulated'),
    );
  }

  #deviceId(device: Json, prefix: string): string {
    if (typeof device.id === 'string' && device.id !== '') return device.id;
    // One counter for every prefix; a name already taken (by the config or an earlier device) is skipped.
    for (;;) {
      const name = `${prefix}${this.#deviceCounter++}`;
      if (!this.#bootIds.has(name) && !this.#bdfs.has(name)) return name;
    }
  }

  #bdf(): string {
    return `0000:00:${(this.#nextSlot++).toString(16).padStart(2, '0')}.0`;
  }
}

const addTargets: Record<string, string> = {
  'vm.add-disk': 'disks',
  'vm.add-net': 'net',
  'vm.add-fs': 'fs',
  'vm.add-pmem': 'pmem',
  'vm.add-device': 'devices',
  'vm.add-user-device': 'user_devices',
  'vm.add-vdpa': 'vdpa',
  'vm.add-generic-vhost-user': 'generic_vhost_user',
};

function json(value: unknown): SimResult {
  return { status: 200, body: JSON.stringify(value) };
}

function fileUrlPath(url: string): string {
  return url.startsWith('file://') ? fileURLToPath(url) : url;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * What the real VMM writes back into a device's config once it has opened it (recorded from v53.0.0): a net's
 * TAP MAC as `host_mac`, a disk's detected `image_type` (QCOW2 by its magic, else raw).
 */
function openedFacts(key: string, device: Json) {
  if (key === 'net' && device.vhost_user !== true) device.host_mac = randomLocalMac();
  if (key === 'disks' && device.image_type === 'Unknown' && typeof device.path === 'string') {
    device.image_type = diskMagic(device.path) === 'QFI\xfb' ? 'Qcow2' : 'Raw';
  }
}

function diskMagic(file: string): string {
  try {
    const fd = fs.openSync(file, 'r');
    try {
      const head = Buffer.alloc(4);
      fs.readSync(fd, head, 0, 4, 0);
      return head.toString('latin1');
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return '';
  }
}

/** Whether `kernel` is the probe guest built to fail loading (a small file: read only when it could be). */
function isUnloadable(kernel: string): boolean {
  try {
    return fs.statSync(kernel).size < 4096 && isUnloadableProbeGuest(fs.readFileSync(kernel));
  } catch {
    return false;
  }
}
