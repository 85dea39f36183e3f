import { constants, type FSWatcher, promises as fs, watch } from 'node:fs';
import net from 'node:net';
import { basename, dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Wakeup } from '@my-hypervisor/host-utils';
import { VmManagerError } from './errors.js';

/** The first byte a console client receives: it is the console's one writer from now on. */
export const CONSOLE_ATTACHED = 0x06;
/** The first (and only) byte a console client receives when another client is attached: the relay closes it. */
export const CONSOLE_BUSY = 0x15;
/** How much recent output a console gets on attach, so it shows the prompt the guest printed before. */
const BACKLOG_BYTES = 16 * 1024;

export interface SerialRelayOptions {
  /** The VMM's serial socket (`serial: {mode: 'Socket'}`): the VMM listens, the relay is its one client. */
  readonly vmmSocket: string;
  /** Where console clients connect (created 0600; removed when the relay ends). */
  readonly consoleSocket: string;
  /** Everything the guest prints is appended here (created 0600 and truncated, as the VMM's `File` mode does). */
  readonly logFile: string;
  /**
   * How long to wait for the VMM's serial socket to accept. The VMM binds it at `vm.boot`, which on a loaded host can
   * come long after the relay started (measured: 17 s with 100 VMs created at once on 2 cores). Default 120 s.
   */
  readonly connectTimeoutMs?: number;
  /** Whether the VMM still runs: the wait for its serial socket ends as soon as it does not. */
  readonly vmmAlive?: () => boolean;
  readonly signal?: AbortSignal;
}

/**
 * Relays a VM's serial port: the guest's output goes to the log and to the attached console client; that client's
 * keystrokes go to the guest. One client at a time: a second is sent CONSOLE_BUSY and closed (virsh refuses a
 * second console session the same way). An attaching client first gets the last 16 KiB of output. Resolves when the VMM closes the serial socket (the VM stopped) or on
 * abort; client disconnects leave it running.
 */
export async function runSerialRelay(options: SerialRelayOptions): Promise<void> {
  const { signal } = options;
  const vmm = await connectWithRetry(
    options.vmmSocket,
    options.connectTimeoutMs ?? 120_000,
    signal,
    options.vmmAlive,
  );
  // The VMM binds its serial socket under its own umask (0700 for cloud-hypervisor); every socket of a VM is 0600.
  // Only its one client (this relay) ever connects, and its directory is closed to others anyway.
  await fs.chmod(options.vmmSocket, 0o600).catch(() => undefined);
  const log = await fs.open(
    options.logFile,
    constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_APPEND | constants.O_NOFOLLOW,
    0o600,
  );
  await log.chmod(0o600);
  let writer: net.Socket | undefined;
  let writing = Promise.resolve();
  let backlog = Buffer.alloc(0);
  const server = net.createServer((client) => {
    client.on('error', () => undefined);
    if (writer) {
      client.end(Buffer.from([CONSOLE_BUSY]));
      return;
    }
    writer = client;
    client.write(Buffer.concat([Buffer.from([CONSOLE_ATTACHED]), backlog]));
    client.on('data', (chunk) => vmm.write(chunk));
    client.on('close', () => {
      if (writer === client) writer = undefined;
    });
  });
  await fs.rm(options.consoleSocket, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.consoleSocket, () => resolve());
  });
  await fs.chmod(options.consoleSocket, 0o600);
  try {
    await new Promise<void>((resolve) => {
      vmm.on('data', (chunk: Buffer) => {
        // Ordered appends; a full disk must not stop the console.
        writing = writing.then(() => log.appendFile(chunk)).catch(() => undefined);
        writer?.write(chunk);
        backlog = Buffer.concat([backlog, chunk]);
        if (backlog.length > BACKLOG_BYTES) backlog = backlog.subarray(-BACKLOG_BYTES);
      });
      vmm.on('error', () => undefined);
      vmm.on('close', () => resolve());
      signal?.addEventListener('abort', () => resolve(), { once: true });
    });
  } finally {
    vmm.destroy();
    writer?.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await writing;
    await log.close();
  }
}

/**
 * Connects to the VMM's serial socket, which it binds when the VM is created or restored. The socket's directory is
 * watched (inotify), so a relay started beside a VMM costs nothing while it waits (a hundred relays polling every
 * 20 ms slowed a batch of creates on 2 cores); a slow poll notices a VMM that died, and covers a missed event.
 */
async function connectWithRetry(
  path: string,
  timeoutMs: number,
  signal?: AbortSignal,
  vmmAlive?: () => boolean,
): Promise<net.Socket> {
  const deadline = Date.now() + timeoutMs;
  const wakeup = new Wakeup();
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dirname(path), { persistent: false }, (_event, name) => {
      if (!name || name === basename(path)) wakeup.wake();
    });
    watcher.on('error', () => {
      watcher?.close();
      watcher = undefined;
    });
  } catch {
    // No inotify (or no directory yet): polling alone.
    watcher = undefined;
  }
  signal?.addEventListener('abort', wakeup.wake, { once: true });
  let refusals = 0;
  try {
    for (;;) {
      wakeup.take();
      try {
        return await new Promise<net.Socket>((resolve, reject) => {
          const socket = net.connect(path);
          socket.once('connect', () => {
            socket.off('error', reject);
            resolve(socket);
          });
          socket.once('error', reject);
        });
      } catch (error) {
        if (signal?.aborted) throw signal.reason;
        if (vmmAlive && !vmmAlive()) {
          throw new VmManagerError('VMM_FAILED', `the VMM exited before its serial socket ${path} accepted`, {
            cause: error,
          });
        }
        if (Date.now() > deadline) {
          throw new VmManagerError('TIMEOUT', `the VMM's serial socket ${path} did not accept`, {
            cause: error,
          });
        }
        // Bound but not yet listening: again very soon. Not there yet: when the directory changes.
        const refused = (error as NodeJS.ErrnoException).code === 'ECONNREFUSED' && ++refusals <= 100;
        await (refused ? sleep(1) : wakeup.sleep(watcher ? 250 : 20));
      }
    }
  } finally {
    signal?.removeEventListener('abort', wakeup.wake);
    watcher?.close();
  }
}

/**
 * Connects to a VM's console socket as its writer. BUSY when another console is attached. The returned socket
 * carries the guest's serial bytes both ways.
 */
export async function connectConsole(
  path: string,
  options: { signal?: AbortSignal } = {},
): Promise<net.Socket> {
  const socket = await new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect(path);
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
    options.signal?.addEventListener('abort', () => s.destroy(options.signal!.reason), { once: true });
  });
  const first = await new Promise<Buffer | undefined>((resolve) => {
    const onData = (chunk: Buffer) => {
      socket.off('close', onClose);
      socket.off('data', onData);
      socket.pause();
      resolve(chunk);
    };
    const onClose = () => resolve(undefined);
    socket.on('data', onData);
    socket.once('close', onClose);
  });
  if (first?.[0] !== CONSOLE_ATTACHED) {
    socket.destroy();
    throw new VmManagerError('BUSY', 'another console is attached to this VM; detach it first', {});
  }
  // Serial bytes that came with the status byte are put back for the caller.
  if (first.length > 1) socket.unshift(first.subarray(1));
  return socket;
}
