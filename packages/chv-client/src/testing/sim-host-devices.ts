// What the simulated VMM checks and opens on the host when it builds a VM: named TAPs and vhost-user sockets.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { type VmErr, vmErr } from './sim-failure.js';
import type { SimLog } from './sim-log.js';

type Json = Record<string, unknown>;

const IFF_MULTI_QUEUE = 0x100;

/**
 * A named TAP must exist and its queue mode match: the VMM opens it with IFF_MULTI_QUEUE exactly when
 * `num_queues / 2 > 1`, and reads `/sys/class/net/<tap>/tun_flags` (of its network namespace) to check.
 */
export function checkTap(
  netConfig: Json,
  options: { readonly sysClassNetDir: string; readonly strictTaps: boolean; readonly log: SimLog },
): VmErr | undefined {
  if (netConfig.vhost_user === true || typeof netConfig.tap !== 'string') return undefined;
  const tap = netConfig.tap;
  const openFailed = (chain: string[], debug: string) =>
    vmErr.deviceManager(
      'internal',
      ['Cannot create virtio-net device', 'Failed to open taps', ...chain],
      `CreateVirtioNet(OpenTap(${debug}))`,
    );
  const dir = path.join(options.sysClassNetDir, tap);
  if (!fs.existsSync(dir)) {
    if (!options.strictTaps) {
      options.log.warn(`TAP ${tap} does not exist; the real VMM would create an unattached TAP`);
      return undefined;
    }
    return openFailed(
      [
        'Open tap device failed',
        `TAP ${tap} does not exist (simulator strict mode: the real VMM, with CAP_NET_ADMIN, would create an unattached TAP)`,
      ],
      'TapOpen(TapMissing)',
    );
  }
  let flags: number;
  try {
    flags = Number.parseInt(
      fs.readFileSync(path.join(dir, 'tun_flags'), 'utf8').trim().replace(/^0x/, ''),
      16,
    );
  } catch {
    return openFailed(
      ['Open tap device failed', 'Unable to configure tap interface', 'Invalid argument (os error 22)'],
      'TapOpen(ConfigureTap(Os { code: 22, kind: InvalidInput, message: "Invalid argument" }))',
    );
  }
  const numQueues = typeof netConfig.num_queues === 'number' ? netConfig.num_queues : 2;
  const multiQueue = Math.floor(numQueues / 2) > 1;
  if (flags & IFF_MULTI_QUEUE && !multiQueue) {
    return openFailed(
      ['Error related to the multiqueue support (no support device side)'],
      'MultiQueueNoDeviceSupport',
    );
  }
  if (!(flags & IFF_MULTI_QUEUE) && multiQueue) {
    return openFailed(
      ['Error related to the multiqueue support (no support TAP side)'],
      'MultiQueueNoTapSupport',
    );
  }
  return undefined;
}

/** Connects as the vhost-user front-end would; the socket is then held until shutdown. */
export function connectVhostUser(socketPath: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    const timer = setTimeout(() => socket.destroy(new Error('connection timed out')), 2_000);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', reject);
      // The back-end closing its end (virtiofsd exiting) must not crash the VMM.
      socket.on('error', () => {});
      resolve(socket);
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

export function vhostUserError(socketPath: string, error: unknown): VmErr {
  return vmErr.deviceManager(
    'internal',
    [
      'Cannot create virtio-fs device',
      'Connection to socket failed',
      `vhost-user: can't connect to peer: ${osErrorText(error)}`,
    ],
    'CreateVirtioFs(VhostUserConnect)',
  );
}

/** The errno of a failed connect in Rust's `io::Error` words (`No such file or directory (os error 2)`). */
const osErrors: Readonly<Record<string, readonly [string, number]>> = {
  ENOENT: ['No such file or directory', 2],
  EACCES: ['Permission denied', 13],
  ECONNREFUSED: ['Connection refused', 111],
  ENOTSOCK: ['Socket operation on non-socket', 88],
};

function osErrorText(error: unknown): string {
  const known = osErrors[(error as NodeJS.ErrnoException | undefined)?.code ?? ''];
  return known ? `${known[0]} (os error ${known[1]})` : errorText(error);
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
