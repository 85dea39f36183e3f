import { MAX_INPUT_FILE_BYTES, readFileUpTo, readStreamUpTo } from './bounded-read.js';
import { parseYamlDocument } from './config.js';
import { parseEgressArg, parseIsolationArg } from './egress-arg.js';
import { invalidValue, usageError } from './errors.js';
import { parseForwardArg } from './forward-arg.js';
import { parseKeyValueArgs } from './key-value-arg.js';
import type { SpecSource } from './spec-hints.js';

/** The options of `vm create`, as commander parsed them. */
export interface CreateFlags {
  readonly file?: string;
  readonly kernel?: string;
  readonly initramfs?: string;
  /** An image in the store (`myhv image build`): its kernel and initramfs, and the guest runs our init. */
  readonly image?: string;
  /** What the image's init runs (`sh -c`). */
  readonly command?: string;
  readonly cmdline?: string;
  readonly cpus?: string;
  readonly memory?: string;
  readonly disk?: readonly string[];
  readonly share?: readonly string[];
  readonly forward?: readonly string[];
  readonly queues?: string;
  /** A network name with --network NAME; false with --no-network. */
  readonly network?: string | false;
  readonly restart?: string;
  /** `vm` or `none`. */
  readonly isolation?: string;
  /** Each `--egress` value: `allow-all`, `deny-all`, or comma-separated rules. */
  readonly egress?: readonly string[];
  readonly vmmArg?: readonly string[];
  readonly cpuLimit?: string;
  readonly memoryLimit?: string;
  readonly pidsLimit?: string;
  /** Each `--label` value: `key=value`. */
  readonly label?: readonly string[];
}

const specFlags: readonly [keyof CreateFlags, string][] = [
  ['kernel', '--kernel'],
  ['initramfs', '--initramfs'],
  ['image', '--image'],
  ['command', '--command'],
  ['cmdline', '--cmdline'],
  ['cpus', '--cpus'],
  ['memory', '--memory'],
  ['disk', '--disk'],
  ['share', '--share'],
  ['forward', '--forward'],
  ['queues', '--queues'],
  ['isolation', '--isolation'],
  ['egress', '--egress'],
  ['vmmArg', '--vmm-arg'],
  ['restart', '--restart'],
  ['cpuLimit', '--cpu-limit'],
  ['memoryLimit', '--memory-limit'],
  ['pidsLimit', '--pids-limit'],
  ['label', '--label'],
];

function wholeNumber(value: string, flag: string, hint: string): number {
  if (!/^\d{1,9}$/.test(value))
    throw invalidValue(flag, `${JSON.stringify(value)} is not a whole number`, hint);
  return Number(value);
}

/** `path[:ro|:rw]`. A path may contain colons, so any other suffix stays part of it (and must exist). */
function diskArg(value: string): { path: string; readOnly?: boolean } {
  if (value.endsWith(':ro')) return { path: value.slice(0, -3), readOnly: true };
  if (value.endsWith(':rw')) return { path: value.slice(0, -3), readOnly: false };
  return { path: value };
}

const SHARE_HINT =
  'e.g. --share /srv/data:data, /srv/data:data:ro, or /srv/data:data:ro:/data (mounted there by an image guest); a directory with a colon needs the mode (dir:tag:rw)';

/**
 * `dir:tag[:MODE][:GUESTPATH]` with MODE `ro` or `rw` and GUESTPATH absolute (where a guest made from an image
 * mounts it). A last field starting with `/` is the guest path (such a value was refused before, as a bad mode);
 * then with three or more fields the last is the mode, so `/srv/data:data:yes` is refused rather than read as a
 * tag; a directory containing colons needs the mode.
 */
export function shareArg(
  value: string,
  field = '--share',
): {
  hostPath: string;
  tag: string;
  readOnly?: boolean;
  guestPath?: string;
} {
  const fields = value.split(':');
  const guestPath = fields.length >= 3 && fields.at(-1)!.startsWith('/') ? fields.pop() : undefined;
  const mode = fields.length >= 3 ? fields.pop() : undefined;
  const tag = fields.pop() ?? '';
  const hostPath = fields.join(':');
  if (hostPath === '' || tag === '' || mode === '') {
    throw invalidValue(field, `${JSON.stringify(value)} is not dir:tag[:ro|:rw][:/guest/path]`, SHARE_HINT);
  }
  if (mode !== undefined && mode !== 'ro' && mode !== 'rw') {
    throw invalidValue(
      field,
      `${JSON.stringify(value)}: the mode ${JSON.stringify(mode)} is not ro or rw`,
      SHARE_HINT,
    );
  }
  return {
    hostPath,
    tag,
    ...(mode === undefined ? {} : { readOnly: mode === 'ro' }),
    ...(guestPath === undefined ? {} : { guestPath }),
  };
}

/** `--label key=value`: the spec schema checks keys and values (its errors point back here, spec-hints.ts). */
const LABEL_HINT =
  "e.g. --label app=web --label example.com/tier=frontend: keys are lowercase letters, digits, '.', '_', '/', '-'; values may be empty";

/**
 * The VmSpec input of `vm create`, from flags or from a spec file (never both, so nothing is silently
 * overridden). Only the syntax of flags is checked here; the spec schema (parseVmSpec) checks the values.
 */
export async function createSpecInput(
  name: string | undefined,
  flags: CreateFlags,
  stdin: NodeJS.ReadableStream | undefined,
): Promise<{ input: Record<string, unknown>; source: SpecSource }> {
  if (flags.file !== undefined) {
    const conflicting = specFlags.filter(([key]) => flags[key] !== undefined).map(([, flag]) => flag);
    if (flags.network === false) conflicting.push('--no-network');
    if (typeof flags.network === 'string') conflicting.push('--network');
    if (name !== undefined) conflicting.push('the NAME argument');
    if (conflicting.length > 0) {
      throw usageError(
        `--file cannot be combined with ${conflicting.join(', ')}`,
        'put every setting in the spec file, or use flags only',
      );
    }
    return { input: await readSpecFile(flags.file, stdin), source: { kind: 'file', path: flags.file } };
  }
  if (name === undefined)
    throw usageError('missing the VM name', 'myhv vm create NAME --kernel PATH [options], or -f spec.yaml');
  if (flags.image !== undefined) {
    for (const [key, flag] of [
      ['kernel', '--kernel'],
      ['initramfs', '--initramfs'],
    ] as const) {
      if (flags[key] !== undefined)
        throw usageError(
          `--image cannot be combined with ${flag}`,
          'the image brings its kernel and initramfs',
        );
    }
  } else if (flags.kernel === undefined) {
    throw invalidValue(
      '--kernel',
      'missing: every VM boots a kernel image',
      'pass --kernel /path/to/vmlinux (or a bzImage), or --image NAME (`myhv image build`)',
    );
  }
  if (flags.command !== undefined && flags.image === undefined) {
    throw usageError('--command needs --image', 'only the init of a myhv image runs the command');
  }
  if (flags.network === false && flags.queues !== undefined) {
    throw usageError('--queues cannot be combined with --no-network', 'drop one of them');
  }
  for (const [key, flag] of [
    ['isolation', '--isolation'],
    ['egress', '--egress'],
  ] as const) {
    if (flags.network === false && flags[key] !== undefined)
      throw usageError(`${flag} cannot be combined with --no-network`, 'a network policy needs a network');
  }
  const network: Record<string, unknown> = { enabled: flags.network !== false };
  if (typeof flags.network === 'string') network.name = flags.network;
  if (flags.queues !== undefined)
    network.queues = wholeNumber(flags.queues, '--queues', 'pass --queues 1 to 16');
  if (flags.forward?.length) network.forwards = flags.forward.map((f) => parseForwardArg(f));
  if (flags.isolation !== undefined) network.isolation = parseIsolationArg(flags.isolation);
  if (flags.egress !== undefined) network.egress = parseEgressArg(flags.egress);
  // With --image, the caller fills kernel and initramfs from the store (applyImage).
  const input: Record<string, unknown> =
    flags.image === undefined
      ? { name, kernel: flags.kernel, network }
      : { name, image: flags.image, network };
  if (flags.initramfs !== undefined) input.initramfs = flags.initramfs;
  if (flags.command !== undefined) input.command = flags.command;
  if (flags.cmdline !== undefined) input.cmdline = flags.cmdline;
  if (flags.cpus !== undefined)
    input.cpus = wholeNumber(flags.cpus, '--cpus', 'pass --cpus with a whole number from 1 to 254');
  if (flags.memory !== undefined) input.memory = flags.memory;
  if (flags.disk?.length) input.disks = flags.disk.map(diskArg);
  if (flags.share?.length) input.shares = flags.share.map((value) => shareArg(value));
  if (flags.vmmArg?.length) input.vmm = { extraArgs: [...flags.vmmArg] };
  if (flags.restart !== undefined) input.restart = flags.restart;
  if (flags.label?.length)
    input.labels = parseKeyValueArgs(flags.label, { flag: '--label', hint: LABEL_HINT });
  const limits: Record<string, unknown> = {};
  if (flags.cpuLimit !== undefined) {
    if (!/^\d{1,4}(\.\d{1,2})?$/.test(flags.cpuLimit))
      throw invalidValue(
        '--cpu-limit',
        `${JSON.stringify(flags.cpuLimit)} is not a number of CPUs`,
        'e.g. --cpu-limit 1.5',
      );
    limits.cpus = Number(flags.cpuLimit);
  }
  if (flags.memoryLimit !== undefined) limits.memory = flags.memoryLimit;
  if (flags.pidsLimit !== undefined)
    limits.pids = wholeNumber(
      flags.pidsLimit,
      '--pids-limit',
      'pass --pids-limit with a whole number of at least 16',
    );
  if (Object.keys(limits).length > 0) input.limits = limits;
  return { input, source: { kind: 'flags' } };
}

/** A YAML or JSON spec file (`-`: stdin) holding one mapping, of at most 1 MiB: reading stops past that. */
export async function readSpecFile(
  path: string,
  stdin: NodeJS.ReadableStream | undefined,
): Promise<Record<string, unknown>> {
  let text: string | undefined;
  try {
    text =
      path === '-'
        ? await readStreamUpTo(stdin ?? process.stdin, MAX_INPUT_FILE_BYTES)
        : await readFileUpTo(path, MAX_INPUT_FILE_BYTES);
  } catch (error) {
    throw invalidValue(
      '--file',
      `cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? String(error)})`,
      'pass the path of a YAML or JSON spec file, or - for stdin',
      error,
    );
  }
  if (text === undefined) {
    throw invalidValue(
      '--file',
      `${path === '-' ? 'stdin' : path} is larger than 1 MiB`,
      'a spec file holds one VmSpec: a few hundred bytes (see "Spec files" in docs/cli.md)',
    );
  }
  const data = await parseYamlDocument(text, `--file ${path}`);
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw invalidValue(
      `--file ${path}`,
      'must hold one mapping (a VmSpec)',
      'see "Spec files" in docs/cli.md',
    );
  }
  return data as Record<string, unknown>;
}
