import { gunzip } from 'node:zlib';
import { abortError, GuestImageError, throwIfAborted } from './errors.js';
import { checkKernelBytes } from './kernel-image.js';
import { runTool } from './run-tool.js';

/** The compressions a Linux bzImage payload may use (arch/x86/boot/compressed/Makefile). */
export type PayloadCompression = 'gzip' | 'xz' | 'zstd' | 'lz4' | 'bzip2' | 'lzma' | 'lzo';

/** Options of `extractVmlinux`. */
export interface ExtractVmlinuxOptions {
  readonly signal?: AbortSignal;
  /** The most bytes the decompressed vmlinux may have (default 512 MiB): a bound against a hostile payload. */
  readonly maxBytes?: number;
}

const DEFAULT_MAX_BYTES = 512 * 1024 * 1024;
const SETUP_SECTS = 0x1f1;
const HEADER_MAGIC = 0x202;
const PROTOCOL_VERSION = 0x206;
const PAYLOAD_OFFSET = 0x248;
const PAYLOAD_LENGTH = 0x24c;
const HDRS = 0x5372_6448; // "HdrS"
/** payload_offset/payload_length exist from boot protocol 2.08 on; PVH kernels are far newer. */
const PAYLOAD_PROTOCOL = 0x208;

const MAGICS: readonly { readonly compression: PayloadCompression; readonly magic: readonly number[] }[] = [
  { compression: 'gzip', magic: [0x1f, 0x8b, 0x08] },
  { compression: 'xz', magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00] },
  { compression: 'zstd', magic: [0x28, 0xb5, 0x2f, 0xfd] },
  { compression: 'lz4', magic: [0x02, 0x21, 0x4c, 0x18] },
  { compression: 'bzip2', magic: [0x42, 0x5a, 0x68] },
  { compression: 'lzma', magic: [0x5d, 0x00, 0x00] },
  { compression: 'lzo', magic: [0x89, 0x4c, 0x5a, 0x4f] },
];

/** Where a bzImage keeps its compressed kernel, and how it is compressed. */
export interface BzImagePayload {
  readonly compression: PayloadCompression;
  /** The compressed bytes, without the 4-byte uncompressed size the kernel build appends. */
  readonly data: Uint8Array;
  /** The vmlinux size the build recorded (modulo 2^32). */
  readonly size: number;
}

/**
 * Finds the compressed kernel in a bzImage: the setup header ("HdrS" at 0x202) says where the protected-mode code
 * starts (`(setup_sects + 1) * 512`) and where in it the payload lies (`payload_offset`, `payload_length`).
 */
export function findPayload(bzImage: Uint8Array): BzImagePayload {
  if (bzImage.length < PAYLOAD_LENGTH + 4) {
    if (bzImage.length > HEADER_MAGIC + 4 && readU32(bzImage, HEADER_MAGIC) === HDRS) {
      throw new GuestImageError(
        'TRUNCATED',
        `the bzImage is truncated: ${bzImage.length} bytes, less than its setup header`,
      );
    }
    throw new GuestImageError('NO_PAYLOAD', 'not a bzImage: no "HdrS" setup header at 0x202');
  }
  if (readU32(bzImage, HEADER_MAGIC) !== HDRS) {
    throw new GuestImageError('NO_PAYLOAD', 'not a bzImage: no "HdrS" setup header at 0x202');
  }
  const version = readU16(bzImage, PROTOCOL_VERSION);
  const payloadOffset = readU32(bzImage, PAYLOAD_OFFSET);
  const payloadLength = readU32(bzImage, PAYLOAD_LENGTH);
  if (version < PAYLOAD_PROTOCOL || payloadLength === 0) {
    throw new GuestImageError(
      'NO_PAYLOAD',
      `the bzImage names no payload (boot protocol ${protocol(version)}, payload_length ${payloadLength}); ` +
        'only kernels with boot protocol 2.08 or later can be unpacked',
    );
  }
  const setupSects = bzImage[SETUP_SECTS] || 4; // 0 means 4, for ancient boot loaders
  const start = (setupSects + 1) * 512 + payloadOffset;
  const end = start + payloadLength;
  if (end > bzImage.length) {
    throw new GuestImageError(
      'TRUNCATED',
      `the bzImage is truncated: its payload ends at byte ${end}, past the end of the image (${bzImage.length} bytes)`,
    );
  }
  const payload = bzImage.subarray(start, end);
  const found = MAGICS.find(({ magic }) => magic.every((byte, i) => payload[i] === byte));
  if (found === undefined) {
    const head = Array.from(payload.subarray(0, 6), (b) => b.toString(16).padStart(2, '0')).join(' ');
    throw new GuestImageError(
      'UNSUPPORTED_COMPRESSION',
      `the bzImage payload starts with ${head || 'nothing'}, the magic of no compression a kernel uses`,
    );
  }
  if (payload.length < found.magic.length + 4) {
    throw new GuestImageError('TRUNCATED', `the bzImage payload is only ${payload.length} bytes`);
  }
  const size = readU32(payload, payload.length - 4);
  // gzip's own trailer ends in the size; every other compressor has it appended (scripts/Makefile.lib size_append).
  const data = found.compression === 'gzip' ? payload : payload.subarray(0, payload.length - 4);
  return { compression: found.compression, data, size };
}

/**
 * The ELF `vmlinux` inside a bzImage, checked to be ELF64 x86-64 with the PVH entry note Cloud Hypervisor boots.
 * gzip is decompressed in-process; the others with the `xz`, `zstd`, `lz4` or `bzip2` tools (fed on stdin,
 * output bounded by `maxBytes`).
 */
export async function extractVmlinux(
  bzImage: Uint8Array,
  options: ExtractVmlinuxOptions = {},
): Promise<Uint8Array> {
  throwIfAborted(options.signal);
  const payload = findPayload(bzImage);
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  const vmlinux = await decompress(payload, maxBytes, options.signal);
  if (vmlinux.length % 2 ** 32 !== payload.size) {
    throw new GuestImageError(
      'DECOMPRESS_FAILED',
      `the ${payload.compression} payload unpacked to ${vmlinux.length} bytes, but the bzImage records ${payload.size}`,
    );
  }
  await assertPvhElf(vmlinux);
  return vmlinux;
}

/** Throws NOT_ELF, TRUNCATED or NO_PVH_NOTE unless `bytes` are an ELF64 x86-64 kernel with the PVH note. */
export async function assertPvhElf(bytes: Uint8Array): Promise<void> {
  if (!(bytes[0] === 0x7f && bytes[1] === 0x45 && bytes[2] === 0x4c && bytes[3] === 0x46)) {
    throw new GuestImageError('NOT_ELF', 'the bzImage payload is not an ELF vmlinux');
  }
  const check = await checkKernelBytes(
    async (offset, length) => bytes.subarray(offset, offset + length),
    bytes.length,
  );
  if (check.ok) {
    if (check.format === 'pvh-elf') return;
    throw new GuestImageError('NOT_ELF', 'the bzImage payload is not an ELF vmlinux');
  }
  const code =
    check.reason === 'no-pvh-note' ? 'NO_PVH_NOTE' : check.reason === 'truncated' ? 'TRUNCATED' : 'NOT_ELF';
  throw new GuestImageError(code, `the vmlinux in the bzImage ${check.problem}`, {
    details: { reason: check.reason },
  });
}

async function decompress(payload: BzImagePayload, maxBytes: number, signal: AbortSignal | undefined) {
  const { compression, data } = payload;
  if (compression === 'gzip') return gunzipBounded(data, maxBytes, signal);
  const tool = TOOLS[compression];
  if (tool === undefined) {
    throw new GuestImageError(
      'UNSUPPORTED_COMPRESSION',
      `the bzImage payload is ${compression}-compressed, which this package cannot unpack yet`,
    );
  }
  return runTool(tool[0], tool.slice(1), {
    input: data,
    maxOutputBytes: maxBytes,
    signal,
    failCode: 'DECOMPRESS_FAILED',
    doing: `unpacking the ${compression} kernel payload`,
  });
}

/** argv per compression; `--single-stream` and `-q` keep xz from reading padding as a second stream. */
const TOOLS: Partial<Record<PayloadCompression, readonly [string, ...string[]]>> = {
  xz: ['xz', '--decompress', '--stdout', '--single-stream', '-q'],
  lzma: ['xz', '--decompress', '--stdout', '--format=lzma', '-q'],
  zstd: ['zstd', '--decompress', '--stdout', '-q'],
  lz4: ['lz4', '--decompress', '--stdout', '-q'],
  bzip2: ['bzip2', '--decompress', '--stdout', '-q'],
};

function gunzipBounded(
  data: Uint8Array,
  maxBytes: number,
  signal: AbortSignal | undefined,
): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    gunzip(data, { maxOutputLength: maxBytes }, (error, result) => {
      if (signal?.aborted) return reject(abortError(signal));
      if (error === null) return resolve(new Uint8Array(result.buffer, result.byteOffset, result.byteLength));
      const tooLarge = (error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
      reject(
        new GuestImageError(
          tooLarge ? 'TOO_LARGE' : 'DECOMPRESS_FAILED',
          tooLarge
            ? `the gzip kernel payload unpacks to more than ${maxBytes} bytes`
            : `the gzip kernel payload is corrupt: ${error.message}`,
          { cause: error },
        ),
      );
    });
  });
}

function readU16(bytes: Uint8Array, at: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint16(at, true);
}

function readU32(bytes: Uint8Array, at: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(at, true);
}

function protocol(version: number): string {
  return `${version >> 8}.${(version & 0xff).toString().padStart(2, '0')}`;
}
