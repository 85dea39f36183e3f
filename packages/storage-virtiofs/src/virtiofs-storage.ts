import { chmod, open, readdir, stat, unlink } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import {
  isProcessAlive,
  listPids,
  raceSignal,
  readCmdline,
  readFileTail,
  readProcStat,
} from '@my-hypervisor/host-utils';
import {
  abortError,
  invalidArgument,
  invalidArgumentFromZod,
  type PreparedShare,
  parseShareRecord,
  parseShareSpec,
  type ReleaseResult,
  recordOf,
  resolveHostPath,
  type ShareRecord,
  type ShareSpec,
  type StorageBackend,
  StorageError,
  type StorageOperationOptions,
  throwIfAborted,
  type ValidShareSpec,
} from '@my-hypervisor/storage';
import { z } from 'zod';
import { detectVirtiofsd } from './detect-virtiofsd.js';
import { readPidFile, writePidFile } from './pid-file.js';
import { isUnixSocketListening } from './proc.js';
import { ensureRunDir, type SharePaths, sharePaths } from './run-dir.js';
import { type SpawnedDaemon, spawnDaemon } from './spawn-daemon.js';
import { stopProcess, waitForExit } from './stop-process.js';
import { buildVirtiofsdArgs } from './virtiofsd-args.js';
import type { VirtiofsdInfo, VirtiofsdSandbox } from './virtiofsd-info.js';
import { waitForListeningSocket } from './wait-for-socket.js';

/** `ShareRecord.backend` of the records this class writes. */
export const VIRTIOFSD_BACKEND = 'virtiofsd';

/** How `new VirtioFsStorage()` finds, runs and supervises virtiofsd; only `runDir` is required. */
export interface VirtioFsStorageOptions {
  /** The virtiofsd to run. Default: `virtiofsd` on PATH, then /usr/libexec/virtiofsd, then /usr/lib/qemu/virtiofsd. */
  readonly binary?: string;
  /** Absolute directory for sockets, pid files and logs; created 0700. Keep it short: socket paths have ≤ 107 bytes. */
  readonly runDir: string;
  /** Start daemons in their own session so they outlive this process (adopt them later). Default false. */
  readonly detached?: boolean;
  /** How long `prepare` waits for the socket to listen. Default 5000. */
  readonly startTimeoutMs?: number;
  /** How long `release` gives SIGTERM before SIGKILL. Default 3000. */
  readonly stopTimeoutMs?: number;
  /** virtiofsd `--thread-pool-size`; default: the daemon's own. */
  readonly threadPoolSize?: number;
  /** virtiofsd sandbox mode; default: the daemon's own (namespace). `none` needs the Rust build. */
  readonly sandbox?: VirtiofsdSandbox;
  /** Enable extended attributes. Default false. */
  readonly xattr?: boolean;
}

const optionsSchema = z.object({
  binary: z.string().min(1).optional(),
  runDir: z
    .string()
    .min(1)
    .refine((value) => isAbsolute(value), 'must be an absolute path')
    .refine((value) => !/[\0\n]/.test(value), 'must not contain NUL or newline'),
  detached: z.boolean().optional(),
  startTimeoutMs: z.number().int().positive().optional(),
  stopTimeoutMs: z.number().int().nonnegative().optional(),
  threadPoolSize: z.number().int().nonnegative().optional(),
  sandbox: z.enum(['namespace', 'chroot', 'none']).optional(),
  xattr: z.boolean().optional(),
});

/** A daemon this instance spawned: we hold its ChildProcess, so its exit is an event, not a poll. */
interface OwnedDaemon {
  readonly pid: number;
  readonly record: ShareRecord;
  readonly exited: Promise<unknown>;
  alive: boolean;
}

interface FoundDaemon {
  readonly pid: number;
  readonly startTime?: number;
  readonly owned?: OwnedDaemon;
}

interface IdentityHints {
  readonly binary?: string;
  readonly startTime?: number;
}

function hintsOf(record: ShareRecord | undefined): IdentityHints {
  const details = record?.details ?? {};
  return {
    ...(typeof details.binary === 'string' ? { binary: details.binary } : {}),
    ...(typeof details.startTime === 'number' ? { startTime: details.startTime } : {}),
  };
}

async function removeIfExists(path: string): Promise<boolean> {
  try {
    await unlink(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new StorageError('STOP_FAILED', `cannot remove ${path}`, { cause: error, details: { path } });
  }
}

/** How much of virtiofsd's log an error quotes: the last 4 KiB, from a line start. */
const LOG_TAIL = { maxBytes: 4096, fromLineStart: true };

const shareFilePattern = /^([A-Za-z0-9_.-]{1,64})\.(sock|pid|log)$/;

/**
 * One virtiofsd per share. Detects the binary and its flavour once, builds its argv, starts it, waits until its
 * socket listens (directory watch plus /proc/net/unix, never a connection), and stops it with SIGTERM, a bounded
 * wait and SIGKILL. `close()` releases the daemons it started unless they are detached.
 */
export class VirtioFsStorage implements StorageBackend, AsyncDisposable {
  readonly specificationVersion = 'v1' as const;
  readonly runDir: string;
  readonly detached: boolean;
  readonly #options: z.infer<typeof optionsSchema>;
  readonly #startTimeoutMs: number;
  readonly #stopTimeoutMs: number;
  readonly #owned = new Map<string, OwnedDaemon>();
  readonly #locks = new Map<string, Promise<void>>();
  readonly #closeController = new AbortController();
  #detection: Promise<VirtiofsdInfo> | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: VirtioFsStorageOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new TypeError('VirtioFsStorage needs an options object with runDir');
    }
    const parsed = optionsSchema.safeParse(options);
    if (!parsed.success) throw invalidArgumentFromZod(parsed.error);
    this.#options = parsed.data;
    this.runDir = parsed.data.runDir.replace(/(.)\/+$/, '$1');
    this.detached = parsed.data.detached ?? false;
    this.#startTimeoutMs = parsed.data.startTimeoutMs ?? 5_000;
    this.#stopTimeoutMs = parsed.data.stopTimeoutMs ?? 3_000;
  }

  /** Finds virtiofsd and tells its flavour; done once per instance (a failure is retried on the next call). */
  detect(options: StorageOperationOptions = {}): Promise<VirtiofsdInfo> {
    throwIfAborted(options.signal);
    if (!this.#detection) {
      const detection = detectVirtiofsd(this.#options.binary);
      this.#detection = detection;
      detection.catch(() => {
        if (this.#detection === detection) this.#detection = undefined;
      });
    }
    return raceSignal(this.#detection, options.signal, (signal) => abortError(signal));
  }

  async prepare(share: ShareSpec, options: StorageOperationOptions = {}): Promise<PreparedShare> {
    throwIfAborted(options.signal);
    const spec = parseShareSpec(share);
    const paths = sharePaths(this.runDir, spec.id);
    const signal = AbortSignal.any([
      this.#closeController.signal,
      ...(options.signal ? [options.signal] : []),
    ]);
    throwIfAborted(signal);
    return this.#withIdLock(spec.id, () => this.#prepareLocked(spec, paths, signal));
  }

  async release(
    share: PreparedShare | ShareRecord,
    options: StorageOperationOptions = {},
  ): Promise<ReleaseResult> {
    const { signal } = options;
    throwIfAborted(signal);
    const record = this.#parseOwnRecord(recordOf(share));
    const paths = sharePaths(this.runDir, record.id);
    return this.#withIdLock(record.id, async () => {
      const result = await this.#releaseLocked(record, paths, signal);
      if (signal?.aborted) throw abortError(signal, { id: record.id, result });
      return result;
    });
  }

  async adopt(record: ShareRecord, options: StorageOperationOptions = {}): Promise<PreparedShare> {
    throwIfAborted(options.signal);
    const parsed = this.#parseOwnRecord(record);
    const paths = sharePaths(this.runDir, parsed.id);
    return this.#withIdLock(parsed.id, async () => {
      const daemon = await this.#findDaemon(parsed.id, paths, parsed);
      if (!daemon) {
        throw new StorageError('NOT_FOUND', `virtiofsd of share ${parsed.id} is not running`, {
          details: { id: parsed.id, ...(parsed.pid ? { pid: parsed.pid } : {}) },
        });
      }
      const adopted: ShareRecord = {
        ...parsed,
        pid: daemon.pid,
        details: {
          ...parsed.details,
          ...(daemon.startTime !== undefined ? { startTime: daemon.startTime } : {}),
        },
      };
      // Put back a pid file someone removed, so list() keeps seeing the share.
      if ((await readPidFile(paths.pidFile))?.pid !== daemon.pid) {
        await writePidFile(paths.pidFile, daemon.pid, adopted);
      }
      return toPrepared(adopted);
    });
  }

  async list(options: StorageOperationOptions = {}): Promise<ShareRecord[]> {
    throwIfAborted(options.signal);
    let names: string[];
    try {
      names = await readdir(this.runDir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw invalidArgument('runDir', `cannot read ${JSON.stringify(this.runDir)}`, error);
    }
    const ids = new Set<string>();
    for (const name of names) {
      const match = shareFilePattern.exec(name);
      if (match) ids.add(match[1]!);
    }
    const running = await this.#scanDaemons();
    for (const id of running.keys()) ids.add(id);
    const records: ShareRecord[] = [];
    for (const id of [...ids].sort()) {
      throwIfAborted(options.signal);
      // A stray file whose name would not fit a socket path was never one of ours.
      const record = await this.#recordFromDisk(id, running.get(id)).catch(() => undefined);
      if (record) records.push(record);
    }
    return records;
  }

  /** Releases the daemons this instance started (detached ones are left running) and aborts pending prepares. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closeController.abort(new StorageError('ABORTED', 'VirtioFsStorage was closed'));
      if (this.detached) return;
      const owned = [...this.#owned.values()];
      await Promise.allSettled(owned.map((daemon) => this.release(daemon.record)));
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #prepareLocked(spec: ValidShareSpec, paths: SharePaths, signal: AbortSignal): Promise<PreparedShare> {
    await ensureRunDir(this.runDir);
    const info = await this.detect({ signal });
    const hostPath = await resolveHostPath(spec.hostPath);
    const args = buildVirtiofsdArgs(info, {
      socketPath: paths.socketPath,
      hostPath,
      cache: spec.cache,
      readOnly: spec.readOnly,
      ...(this.#options.sandbox !== undefined ? { sandbox: this.#options.sandbox } : {}),
      ...(this.#options.threadPoolSize !== undefined ? { threadPoolSize: this.#options.threadPoolSize } : {}),
      ...(this.#options.xattr ? { xattr: true } : {}),
    });
    throwIfAborted(signal);
    await this.#clearLeftovers(spec.id, paths);
    throwIfAborted(signal);

    const startTimeout = AbortSignal.timeout(this.#startTimeoutMs);
    const stopWaiting = new AbortController();
    const waitSignal = AbortSignal.any([signal, startTimeout, stopWaiting.signal]);
    try {
      return await this.#startDaemon(spec, paths, info, args, hostPath, { signal, startTimeout, waitSignal });
    } finally {
      // Ends the directory watch on every path out, including early failures.
      stopWaiting.abort();
    }
  }

  async #startDaemon(
    spec: ValidShareSpec,
    paths: SharePaths,
    info: VirtiofsdInfo,
    args: string[],
    hostPath: string,
    {
      signal,
      startTimeout,
      waitSignal,
    }: { signal: AbortSignal; startTimeout: AbortSignal; waitSignal: AbortSignal },
  ): Promise<PreparedShare> {
    const command = [info.binary, ...args];
    // Watch before spawning so the socket's creation cannot be missed.
    const ready = waitForListeningSocket(paths.socketPath, { signal: waitSignal });
    ready.catch(() => {});

    const log = await open(paths.logFile, 'w', 0o600).catch((error: unknown) => {
      throw new StorageError('START_FAILED', `cannot create ${paths.logFile}`, { cause: error });
    });
    let daemon: SpawnedDaemon;
    try {
      daemon = spawnDaemon(info.binary, args, { detached: this.detached, logFd: log.fd });
    } finally {
      await log.close();
    }
    const { child, pid, exited } = daemon;
    if (pid === undefined) {
      const { error } = await exited;
      await this.#removeFiles(paths);
      const missing = error?.code === 'ENOENT' || error?.code === 'EACCES';
      throw new StorageError(
        missing ? 'BINARY_MISSING' : 'START_FAILED',
        `cannot start ${info.binary}: ${error?.code ?? error?.message ?? 'unknown error'}`,
        { cause: error, details: { command } },
      );
    }

    const startTime = readProcStat(pid)?.startTime;
    const record: ShareRecord = {
      backend: VIRTIOFSD_BACKEND,
      id: spec.id,
      tag: spec.tag,
      socketPath: paths.socketPath,
      hostPath,
      readOnly: spec.readOnly,
      cache: spec.cache,
      pid,
      preparedAt: new Date().toISOString(),
      details: {
        binary: info.binary,
        flavour: info.flavour,
        ...(info.version ? { version: info.version } : {}),
        detached: this.detached,
        ...(startTime !== undefined ? { startTime } : {}),
      },
    };
    const owned: OwnedDaemon = { pid, record, exited, alive: true };
    this.#owned.set(spec.id, owned);
    void exited.then(() => {
      owned.alive = false;
    });

    type Outcome =
      | { kind: 'ready' }
      | { kind: 'exited'; exitCode: number | null; signal: string | null }
      | { kind: 'waitFailed'; error: unknown };
    let outcome: Outcome;
    try {
      await writePidFile(paths.pidFile, pid, record);
      outcome = await Promise.race<Outcome>([
        ready.then(
          () => ({ kind: 'ready' }),
          (error: unknown) => ({ kind: 'waitFailed', error }),
        ),
        exited.then(({ exitCode, signal }) => ({ kind: 'exited', exitCode, signal })),
      ]);
    } catch (error) {
      await this.#abandon(spec.id, pid, exited, paths);
      throw new StorageError('START_FAILED', `cannot write ${paths.pidFile}`, {
        cause: error,
        details: { command },
      });
    }

    if (outcome.kind === 'ready') {
      try {
        // virtiofsd made its socket under its umask (in our 0700 run directory, out of others' reach meanwhile).
        await chmod(paths.socketPath, 0o600);
      } catch (error) {
        await this.#abandon(spec.id, pid, exited, paths);
        throw new StorageError('START_FAILED', `cannot make ${paths.socketPath} private (mode 600)`, {
          cause: error,
          details: { id: spec.id, command, pid },
        });
      }
      // The ChildProcess must not keep this process alive: detached daemons outlive us, attached ones die with us.
      child.unref();
      return toPrepared(record);
    }
    if (outcome.kind === 'exited') {
      const stderr = await readFileTail(paths.logFile, LOG_TAIL);
      await this.#abandon(spec.id, pid, exited, paths);
      const { exitCode, signal: exitSignal } = outcome;
      throw new StorageError(
        'START_FAILED',
        `virtiofsd exited before listening (${exitSignal ? `signal ${exitSignal}` : `exit code ${exitCode}`})`,
        {
          details: { id: spec.id, command, pid, exitCode, signal: exitSignal, stderr },
        },
      );
    }
    const stderr = await readFileTail(paths.logFile, LOG_TAIL);
    await this.#abandon(spec.id, pid, exited, paths);
    if (signal.aborted) throw abortError(signal, { id: spec.id, command, pid, stderr });
    if (!startTimeout.aborted) {
      throw new StorageError('START_FAILED', `cannot watch for ${paths.socketPath}`, {
        cause: outcome.error,
        details: { id: spec.id, command, pid, stderr },
      });
    }
    throw new StorageError(
      'TIMEOUT',
      `virtiofsd did not listen on ${paths.socketPath} within ${this.#startTimeoutMs} ms`,
      { cause: startTimeout.reason, details: { id: spec.id, command, pid, stderr } },
    );
  }

  /** Kills a daemon that failed to start and removes its files, so a failed prepare leaves nothing behind. */
  async #abandon(id: string, pid: number, exited: Promise<unknown>, paths: SharePaths): Promise<void> {
    // A detached daemon leads its own process group: take any sandbox child with it.
    for (const target of this.detached ? [-pid, pid] : [pid]) {
      try {
        process.kill(target, 'SIGKILL');
        break;
      } catch {
        // Already gone (or no such group): try the next target.
      }
    }
    // Wait for the exit so the daemon cannot recreate its socket after we removed it.
    await waitForExit(pid, 5_000, { exited });
    await this.#removeFiles(paths).catch(() => {});
    this.#owned.delete(id);
  }

  async #releaseLocked(
    record: ShareRecord,
    paths: SharePaths,
    signal: AbortSignal | undefined,
  ): Promise<ReleaseResult> {
    const daemon = await this.#findDaemon(record.id, paths, record);
    const stop = daemon
      ? await stopProcess(daemon.pid, {
          graceMs: this.#stopTimeoutMs,
          group: record.details?.detached === true,
          ...(daemon.owned ? { exited: daemon.owned.exited } : {}),
          ...(signal ? { signal } : {}),
        })
      : { stopped: false, killed: false };
    const files = await this.#removeFiles(paths);
    this.#owned.delete(record.id);
    return { ...stop, ...files };
  }

  /** Refuses to start over a live share; removes what a dead one left behind. */
  async #clearLeftovers(id: string, paths: SharePaths): Promise<void> {
    const live = await this.#findDaemon(id, paths, undefined);
    if (live) {
      throw new StorageError('ALREADY_EXISTS', `share ${id} is already served by virtiofsd pid ${live.pid}`, {
        details: { field: 'id', id, pid: live.pid },
      });
    }
    if (await isUnixSocketListening(paths.socketPath)) {
      throw new StorageError('ALREADY_EXISTS', `another process listens on ${paths.socketPath}`, {
        details: { field: 'id', id },
      });
    }
    await this.#removeFiles(paths);
    this.#owned.delete(id);
  }

  async #removeFiles(
    paths: SharePaths,
  ): Promise<Pick<ReleaseResult, 'socketRemoved' | 'pidFileRemoved' | 'logRemoved'>> {
    const [socketRemoved, pidFileRemoved, logRemoved] = await Promise.all([
      removeIfExists(paths.socketPath),
      removeIfExists(paths.pidFile),
      removeIfExists(paths.logFile),
      // Only ever called once no daemon serves this socket, so the C build's lock is stale.
      removeIfExists(paths.daemonLockFile).catch(() => false),
    ]);
    return { socketRemoved, pidFileRemoved, logRemoved };
  }

  /**
   * The live daemon of share `id`: the child we spawned, else the pid in the record or the pid file, accepted only
   * if /proc says it is our binary serving our socket path (and started when the record says), so a recycled pid
   * is never signalled.
   */
  async #findDaemon(
    id: string,
    paths: SharePaths,
    record: ShareRecord | undefined,
  ): Promise<FoundDaemon | undefined> {
    const owned = this.#owned.get(id);
    if (owned?.alive && isProcessAlive(owned.pid)) {
      const startTime = owned.record.details?.startTime;
      return { pid: owned.pid, owned, ...(typeof startTime === 'number' ? { startTime } : {}) };
    }
    const candidates: { pid: number; hints: IdentityHints }[] = [];
    if (record?.pid !== undefined) candidates.push({ pid: record.pid, hints: hintsOf(record) });
    const fromFile = await readPidFile(paths.pidFile).catch(() => undefined);
    if (fromFile?.pid !== undefined) {
      candidates.push({ pid: fromFile.pid, hints: hintsOf(this.#tryOwnRecord(fromFile.record, id)) });
    }
    for (const { pid, hints } of candidates) {
      const startTime = await this.#identify(pid, paths.socketPath, hints);
      if (startTime !== undefined) return { pid, startTime };
    }
    return undefined;
  }

  /** The process start time if `pid` is alive and is our daemon for `socketPath`, else undefined. */
  async #identify(pid: number, socketPath: string, hints: IdentityHints): Promise<number | undefined> {
    const info = readProcStat(pid);
    if (!info || info.state === 'Z' || info.state === 'X') return undefined;
    if (hints.startTime !== undefined && info.startTime !== hints.startTime) return undefined;
    const argv = readCmdline(pid);
    if (!argv?.includes(`--socket-path=${socketPath}`)) return undefined;
    // argv[1] is the binary when it is a script run through its interpreter.
    if (hints.binary !== undefined && argv[0] !== hints.binary && argv[1] !== hints.binary) return undefined;
    return info.startTime;
  }

  /** Processes whose argv serves a socket in runDir, by share id (the oldest one when a sandbox forked). */
  async #scanDaemons(): Promise<Map<string, number>> {
    const prefix = `--socket-path=${this.runDir}/`;
    const found = new Map<string, { pid: number; startTime: number }>();
    for (const pid of listPids()) {
      const argv = readCmdline(pid);
      const arg = argv?.find((a) => a.startsWith(prefix));
      if (!arg) continue;
      const socketPath = arg.slice('--socket-path='.length);
      const match = shareFilePattern.exec(socketPath.slice(this.runDir.length + 1));
      if (match?.[2] !== 'sock' || dirname(socketPath) !== this.runDir) continue;
      const info = readProcStat(pid);
      if (!info || info.state === 'Z') continue;
      const id = match[1]!;
      const previous = found.get(id);
      if (!previous || info.startTime < previous.startTime) {
        found.set(id, { pid, startTime: info.startTime });
      }
    }
    return new Map([...found].map(([id, { pid }]) => [id, pid]));
  }

  /** The record in the pid file, or one rebuilt from what is on disk (tag unknown) for leftovers without it. */
  async #recordFromDisk(id: string, runningPid: number | undefined): Promise<ShareRecord> {
    const paths = sharePaths(this.runDir, id);
    const fromFile = await readPidFile(paths.pidFile).catch(() => undefined);
    const record = this.#tryOwnRecord(fromFile?.record, id);
    if (record) return record.pid === undefined && fromFile?.pid ? { ...record, pid: fromFile.pid } : record;
    const pid = fromFile?.pid ?? runningPid;
    const times = await Promise.all(
      [paths.pidFile, paths.socketPath, paths.logFile].map((p) =>
        stat(p).then(
          (s) => s.mtime,
          () => undefined,
        ),
      ),
    );
    const preparedAt = times.find((t) => t !== undefined) ?? new Date();
    return {
      backend: VIRTIOFSD_BACKEND,
      id,
      tag: '',
      socketPath: paths.socketPath,
      hostPath: '',
      readOnly: false,
      cache: 'never',
      ...(pid !== undefined ? { pid } : {}),
      preparedAt: preparedAt.toISOString(),
    };
  }

  #tryOwnRecord(input: unknown, id: string): ShareRecord | undefined {
    if (input === undefined) return undefined;
    try {
      const record = this.#parseOwnRecord(input);
      return record.id === id ? record : undefined;
    } catch {
      return undefined;
    }
  }

  #parseOwnRecord(input: unknown): ShareRecord {
    const record = parseShareRecord(input);
    if (record.backend !== VIRTIOFSD_BACKEND) {
      throw invalidArgument('record.backend', `${JSON.stringify(record.backend)} is not a virtiofsd record`);
    }
    const expected = join(this.runDir, `${record.id}.sock`);
    if (record.socketPath !== expected) {
      throw invalidArgument(
        'record.socketPath',
        `is not ${JSON.stringify(expected)}: the record belongs to another runDir`,
      );
    }
    return record;
  }

  /** Runs `fn` after every earlier operation on the same share id has settled. */
  async #withIdLock<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#locks.get(id) ?? Promise.resolve();
    let unlock!: () => void;
    const current = new Promise<void>((resolve) => {
      unlock = resolve;
    });
    const tail = previous.then(() => current);
    this.#locks.set(id, tail);
    await previous;
    try {
      return await fn();
    } finally {
      unlock();
      if (this.#locks.get(id) === tail) this.#locks.delete(id);
    }
  }
}

function toPrepared(record: ShareRecord): PreparedShare {
  return {
    id: record.id,
    tag: record.tag,
    socketPath: record.socketPath,
    requiresSharedMemory: true,
    ...(record.pid !== undefined ? { pid: record.pid } : {}),
    record,
  };
}
