import { CliError } from './errors.js';

/** Where a spec came from, so a hint can say which flag or file line to fix. */
export type SpecSource = { readonly kind: 'flags' } | { readonly kind: 'file'; readonly path: string };

function ordinal(n: number): string {
  const suffix =
    n % 10 === 1 && n % 100 !== 11
      ? 'st'
      : n % 10 === 2 && n % 100 !== 12
        ? 'nd'
        : n % 10 === 3 && n % 100 !== 13
          ? 'rd'
          : 'th';
  return `${n}${suffix}`;
}

const POLICY_HINT =
  'isolation and egress rules need the namespace network backend: a network made with ' +
  '`myhv net create NAME --subnet CIDR --net-backend namespace` (then --network NAME), ' +
  'or --net-backend namespace before the first VM; see --isolation and --egress in `myhv vm create --help`';

/** The fix for a bad spec field given by flags: which flag, and what it accepts. */
export function flagHint(field: string): string {
  const index = /\[(\d+)\]/.exec(field);
  const nth = index ? `the ${ordinal(Number(index[1]) + 1)} ` : '';
  if (field === 'name')
    return "VM names are 1–63 letters, digits, '_', '.', '-', starting with a letter or digit";
  if (field === 'cpus') return 'pass --cpus with a whole number from 1 to 254';
  if (field === 'memory') return 'pass --memory with a size such as 512M or 2G (whole MiB, at least 64M)';
  if (field === 'kernel') {
    return 'pass --kernel with a kernel Cloud Hypervisor boots: an x86-64 vmlinux built with CONFIG_PVH=y, or a bzImage';
  }
  if (field === 'initramfs') return 'pass --initramfs with the path of an existing file';
  if (field === 'limits.cpus') return 'pass --cpu-limit with a number of CPUs such as 1.5 (0.01 to 1024)';
  if (field === 'limits.memory') {
    return "pass --memory-limit with a size above the guest's memory, e.g. 1G (the VMM and virtiofsd need their own)";
  }
  if (field === 'limits.pids') return 'pass --pids-limit with a whole number of at least 16';
  if (field === 'cmdline') return 'pass --cmdline without newlines (at most 2048 characters)';
  if (field.startsWith('disks'))
    return `fix ${nth}--disk: an absolute path of an existing file, optionally :ro`;
  if (field.startsWith('shares') && field.endsWith('tag')) {
    return `fix ${nth}--share: tags are 1–36 letters, digits, '_', '.', '-', each used once`;
  }
  if (field.startsWith('shares'))
    return `fix ${nth}--share: dir:tag[:ro] with an absolute path of an existing directory`;
  if (field.startsWith('network.forwards')) {
    return `fix ${nth}--forward: [hostIp:]hostPort:guestPort[/tcp|udp], ports 1–65535, each host port once`;
  }
  if (field === 'network.queues')
    return 'pass --queues with a whole number from 1 to 16, at most --cpus (one queue pair per vCPU at most)';
  if (field === 'network.isolation' || field.startsWith('network.egress')) return POLICY_HINT;
  if (field === 'network.enabled') return '--no-network cannot be combined with --forward';
  if (field === 'labels' || field.startsWith('labels.')) {
    return "fix --label key=value: keys of 1–63 lowercase letters, digits, '.', '_', '/', '-', values of at most 63 letters, digits, '.', '_', '-' (each starting and ending with a letter or digit), at most 32 labels";
  }
  if (field === 'vmm.binary') return 'point vmm.binary at a cloud-hypervisor binary';
  if (field.startsWith('vmm.extraArgs['))
    return 'drop that --vmm-arg: myhv sets it itself (from --kernel, --cpus, --forward, …)';
  if (field.startsWith('vmm')) return 'fix --vmm-arg (at most 32 arguments)';
  return 'see `myhv vm create --help`';
}

/**
 * Adds the fix to an INVALID_ARGUMENT about a spec field (from parseVmSpec or the manager's host checks): the flag
 * to change, or the field in the spec file. Other errors pass through untouched.
 */
export function withSpecHint(error: unknown, source: SpecSource): unknown {
  const e = error as { code?: unknown; details?: { field?: unknown; hint?: unknown } };
  if (typeof e !== 'object' || e === null || e.code !== 'INVALID_ARGUMENT' || CliError.isInstance(error))
    return error;
  const field = typeof e.details?.field === 'string' ? e.details.field : undefined;
  if (!field) return error;
  const policy = field === 'network.isolation' || field.startsWith('network.egress');
  const hint =
    source.kind === 'flags'
      ? flagHint(field)
      : `fix \`${field}\` in ${source.path} (VmSpec fields: see docs/cli.md, "Spec files")${policy ? `; ${POLICY_HINT}` : ''}`;
  return new CliError('INVALID_ARGUMENT', (error as Error).message, {
    cause: error,
    details: { field, hint },
  });
}
