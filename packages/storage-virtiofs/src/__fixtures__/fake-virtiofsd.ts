import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Help texts trimmed from the real builds: detection keys on `--shared-dir` (Rust) and `-o source=PATH` (C). */
export const RUST_HELP = `virtiofsd backend
Launch a virtiofsd backend.

USAGE:
    virtiofsd [FLAGS] [OPTIONS] --shared-dir <shared-dir> --socket-path <socket-path>

OPTIONS:
        --cache <cache>                          The caching policy the file system should use (auto, always, never) [default: auto]
        --sandbox <sandbox>                      Sandbox mechanism to isolate the daemon process (namespace, chroot, none) [default: namespace]
        --shared-dir <shared-dir>                Shared directory path
        --socket-path <socket-path>              vhost-user socket path
        --thread-pool-size <thread-pool-size>    Maximum thread pool size. A value of "0" disables the pool [default: 0]
        --xattr                                  Enable support for extended attributes
`;
export const RUST_READONLY_LINE =
  '        --readonly                               Disallow any writes to the shared directory\n';
export const RUST_VERSION = 'virtiofsd 1.13.1\n';
export const RUST_OLD_VERSION = 'virtiofsd backend 1.1.0\n';

export const C_HELP = `usage: /usr/lib/qemu/virtiofsd [options]

    -h   --help                print help
    -V   --version             print version
    -o cache=<mode>            cache mode. could be one of "auto, always, none"
    -o sandbox=namespace|chroot
                               sandboxing mode:
    -o xattr|no_xattr          enable/disable xattr
    -o source=PATH             shared directory tree
    --socket-path=PATH         path for the vhost-user socket
    --thread-pool-size=NUM     thread pool size limit (default 0)
`;
export const C_VERSION = `virtiofsd version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)
Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers
using FUSE kernel interface version 7.36
`;

export type FakeBehaviour =
  /** Listens on --socket-path and exits when its one front-end disconnects, like virtiofsd. */
  | 'listen'
  /** Like `listen`, but ignores SIGTERM. */
  | 'stubborn'
  /** Writes to stderr and exits 3 before listening. */
  | 'crash'
  /** Never listens. */
  | 'silent';

export interface FakeVirtiofsdOptions {
  readonly flavour: 'c' | 'rust';
  readonly behaviour: FakeBehaviour;
  /** Rust only: advertise and accept `--readonly`. */
  readonly readonly?: boolean;
  readonly name?: string;
}

/**
 * Writes an executable Node script that answers `--version`/`--help` like the chosen flavour, checks its argv the way
 * that flavour parses it (exit 2 on anything else), then behaves as asked. For tests that need no root.
 */
export async function writeFakeVirtiofsd(dir: string, options: FakeVirtiofsdOptions): Promise<string> {
  const { flavour, behaviour, readonly = false, name = `fake-${flavour}-${behaviour}` } = options;
  const help = flavour === 'rust' ? RUST_HELP + (readonly ? RUST_READONLY_LINE : '') : C_HELP;
  const version = flavour === 'rust' ? RUST_VERSION : C_VERSION;
  const path = join(dir, name);
  const script = `#!${process.execPath}
const net = require('node:net');
const args = process.argv.slice(2);
if (args.includes('--version')) { process.stdout.write(${JSON.stringify(version)}); process.exit(0); }
if (args.includes('--help')) { process.stdout.write(${JSON.stringify(help)}); process.exit(0); }
const fail = (why) => { process.stderr.write('fake-virtiofsd: ' + why + '\\n'); process.exit(2); };
let socketPath;
let shared;
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a.startsWith('--socket-path=')) socketPath = a.slice(14);
  else if (${JSON.stringify(flavour)} === 'rust') {
    if (a.startsWith('--shared-dir=')) shared = a.slice(13);
    else if (/^--cache=(never|auto|always)$/.test(a)) {}
    else if (/^--sandbox=(namespace|chroot|none)$/.test(a)) {}
    else if (/^--thread-pool-size=\\d+$/.test(a)) {}
    else if (a === '--xattr') {}
    else if (a === '--readonly' && ${readonly}) {}
    else fail('unknown argument ' + a);
  } else {
    if (a === '-o') {
      const o = args[++i] ?? '';
      if (o.startsWith('source=')) shared = o.slice(7);
      else if (!/^(cache=(none|auto|always)|sandbox=(namespace|chroot)|xattr)$/.test(o)) fail('unknown option ' + o);
    } else if (/^--thread-pool-size=\\d+$/.test(a)) {}
    else fail('unknown argument ' + a);
  }
}
if (!socketPath || !shared) fail('missing socket path or shared directory');
const behaviour = ${JSON.stringify(behaviour)};
if (behaviour === 'crash') { process.stderr.write('fake-virtiofsd: cannot start: bad things happened\\n'); process.exit(3); }
if (behaviour === 'silent') { setInterval(() => {}, 1000); }
else {
  process.on('SIGTERM', () => { if (behaviour !== 'stubborn') process.exit(0); });
  const server = net.createServer((socket) => {
    server.close();
    socket.on('close', () => process.exit(0));
  });
  server.listen(socketPath);
}
`;
  await writeFile(path, script);
  await chmod(path, 0o755);
  return path;
}
