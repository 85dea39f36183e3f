// The simulated VMM's config validation, in the real VMM's order and words.
import { type VmErr, vmErr } from './sim-failure.js';

type Json = Record<string, unknown>;

/** The array under `key` of a VM config (absent or not an array: empty). */
export function list(config: Json, key: string): Json[] {
  const value = config[key];
  return Array.isArray(value) ? (value as Json[]) : [];
}

/**
 * The checks of `VmConfig::validate` the simulator makes, in the VMM's order (vmm/src/config.rs, v53.0:
 * payload ~3077, cpus ~3153, disks ~3175, nets ~3210 and `NetConfig::validate` ~1866, fs ~3228). The VMM runs
 * them at boot and on every hot-plug.
 */
export function validate(config: Json): VmErr | undefined {
  const payload = config.payload as Json | undefined;
  if (!payload || (!payload.kernel && !payload.firmware && !payload.igvm)) {
    return vmErr.validation(
      'invalid-config',
      ['Payload configuration is not bootable', 'No bootitem provided: neither firmware nor kernel'],
      'PayloadError(MissingBootitem)',
    );
  }
  const cpus = (config.cpus as Json | undefined) ?? {};
  const boot = typeof cpus.boot_vcpus === 'number' ? cpus.boot_vcpus : 1;
  const max = typeof cpus.max_vcpus === 'number' ? cpus.max_vcpus : 1;
  if (max < boot) {
    return vmErr.validation(
      'invalid-config',
      `Max CPUs (${max}) lower than boot CPUs (${boot})`,
      `CpusMaxLowerThanBoot(${max}, ${boot})`,
    );
  }
  const memory = (config.memory as Json | undefined) ?? {};
  const shared = memory.shared === true || memory.hugepages === true;
  const needsShared = () =>
    vmErr.validation(
      'invalid-config',
      'Using vhost-user requires using shared memory or huge pages',
      'VhostUserRequiresSharedMemory',
    );
  const tooManyQueues = (queues: number) =>
    vmErr.validation(
      'invalid-config',
      `Queue count (${queues}) must not exceed boot vCPUs (${boot})`,
      `TooManyQueues(${queues}, ${boot})`,
    );
  const seen = new Set<string>();
  const identifier = (id: unknown): VmErr | undefined => {
    if (typeof id !== 'string') return undefined;
    if (seen.has(id)) {
      return vmErr.validation(
        'duplicate',
        `Identifier ${id} is not unique`,
        `IdentifierNotUnique(${JSON.stringify(id)})`,
      );
    }
    seen.add(id);
    return undefined;
  };
  for (const disk of list(config, 'disks')) {
    if (disk.vhost_user === true && !shared) return needsShared();
    const queues = typeof disk.num_queues === 'number' ? disk.num_queues : 1;
    if (queues > boot) return tooManyQueues(queues);
    const error = identifier(disk.id);
    if (error) return error;
  }
  for (const net of list(config, 'net')) {
    if (net.vhost_user === true && !shared) return needsShared();
    const queues = typeof net.num_queues === 'number' ? net.num_queues : 2;
    if (Math.floor(queues / 2) > boot) return tooManyQueues(queues);
    const error = identifier(net.id);
    if (error) return error;
  }
  const fses = list(config, 'fs');
  if (fses.length > 0 && !shared) return needsShared();
  for (const fsConfig of fses) {
    const queues = typeof fsConfig.num_queues === 'number' ? fsConfig.num_queues : 1;
    if (queues > boot) return tooManyQueues(queues);
    const error = identifier(fsConfig.id);
    if (error) return error;
  }
  if (list(config, 'generic_vhost_user').length > 0 && !shared) return needsShared();
  const rest = [
    ...['generic_vhost_user', 'pmem', 'devices', 'user_devices', 'vdpa'].flatMap((key) =>
      list(config, key).map((d) => d.id),
    ),
    (config.vsock as Json | undefined)?.id,
  ];
  for (const id of rest) {
    const error = identifier(id);
    if (error) return error;
  }
  return undefined;
}
