import { readFile } from 'node:fs/promises';
import { parseYamlDocument } from './config.js';
import { invalidValue, usageError } from './errors.js';
import { parseForwardArg } from './forward-arg.js';
import type { SpecSource } from './spec-hints.js';

/** The options of `vm create`, as commander parsed them. */
export interface CreateFlags {
  readonly file?: string;
  readonly kernel?: string;
  readonly initramfs?: string;
  readonly cmdline?: string;
  readonly cpus?: string;
  readonly memory?: string;
  readonly disk?: readonly string[];
  readonly share?: readonly string[];
  readonly forward?: readonly string[];
  readonly queues?: string;
  /** False with --no-network. */
  readonly network?: boolean;
  readonly vmmArg?: readonly string[];
}

const specFlags: readonly [keyof CreateFlags, string][] = [
  ['kernel', '--kernel'],
  ['initramfs', '--initramfs'],
  ['cmdline', '--cmdline'],
  ['cpus', '--cpus'],
  ['memory', '--memory'],
  ['disk', '--disk'],
  ['share', '--share'],
  ['forward', '--forward'],
  ['queues', '--queues'],
  ['vmmArg', '--vmm-arg'],
];

function wholeNumber(value: string, flag: string, hint: string): number {
  if (!/^\d{1,9}$/.test(value))
    throw invalidValue(flag, `${JSON.stringify(value)} is not a whole number`, hint);
  return Number(value);
}

/** `path[:ro]`. */
function diskArg(value: string): { path: string; readOnly?: boolean } {
  return value.endsWith(':ro') ? { path: value.slice(0, -3), readOnly: true } : { path: value };
}

/** `dir:tag[:ro]`: the tag is after the last colon (after dropping `:ro`/`:rw`), so directories may contain colons. */
function shareArg(value: string): { hostPath: string; tag: string; readOnly?: boolean } {
  let rest = value;
  let readOnly: boolean | undefined;
  if (rest.endsWith(':ro') || rest.endsWith(':rw')) {
    readOnly = rest.endsWith(':ro');
    rest = rest.slice(0, -3);
  }
  const colon = rest.lastIndexOf(':');
  if (colon <= 0 || colon === rest.length - 1) {
    throw invalidValue(
      '--share',
      `${JSON.stringify(value)} is not dir:tag[:ro]`,
      'e.g. --share /srv/data:data or --share /srv/data:data:ro',
    );
  }
  return {
    hostPath: rest.slice(0, colon),
    tag: rest.slice(colon + 1),
    ...(readOnly === undefined ? {} : { readOnly }),
  };
}

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
  if (flags.kernel === undefined) {
    throw invalidValue(
      '--kernel',
      'missing: every VM boots a kernel image',
      'pass --kernel /path/to/vmlinux (or a bzImage)',
    );
  }
  if (flags.network === false && flags.queues !== undefined) {
    throw usageError('--queues cannot be combined with --no-network', 'drop one of them');
  }
  const network: Record<string, unknown> = { enabled: flags.network !== false };
  if (flags.queues !== undefined)
    network.queues = wholeNumber(flags.queues, '--queues', 'pass --queues 1 to 16');
  if (flags.forward?.length) network.forwards = flags.forward.map((f) => parseForwardArg(f));
  const input: Record<string, unknown> = { name, kernel: flags.kernel, network };
  if (flags.initramfs !== undefined) input.initramfs = flags.initramfs;
  if (flags.cmdline !== undefined) input.cmdline = flags.cmdline;
  if (flags.cpus !== undefined)
    input.cpus = wholeNumber(flags.cpus, '--cpus', 'pass --cpus with a whole number from 1 to 254');
  if (flags.memory !== undefined) input.memory = flags.memory;
  if (flags.disk?.length) input.disks = flags.disk.map(diskArg);
  if (flags.share?.length) input.shares = flags.share.map(shareArg);
  if (flags.vmmArg?.length) input.vmm = { extraArgs: [...flags.vmmArg] };
  return { input, source: { kind: 'flags' } };
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream)
    chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

const MAX_SPEC_BYTES = 1024 * 1024;

/** A YAML or JSON spec file (`-`: stdin) holding one mapping. */
export async function readSpecFile(
  path: string,
  stdin: NodeJS.ReadableStream | undefined,
): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = path === '-' ? await readAll(stdin ?? process.stdin) : await readFile(path, 'utf8');
  } catch (error) {
    throw invalidValue(
      '--file',
      `cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? String(error)})`,
      'pass the path of a YAML or JSON spec file, or - for stdin',
      error,
    );
  }
  if (Buffer.byteLength(text) > MAX_SPEC_BYTES) throw invalidValue('--file', `${path} is larger than 1 MiB`);
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
