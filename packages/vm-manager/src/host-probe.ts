import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { throwIfAborted, VmManagerError } from './errors.js';

/**
 * What the manager asks about the host a VM's forwards live on (the network namespace of `vmm.netns`, else this
 * process's): its addresses and the ports sockets listen on. Asked only for specs with forwards.
 */
export interface HostProbe {
  /** The host's IPv4 addresses. */
  localAddresses(options?: { signal?: AbortSignal }): Promise<string[]>;
  /** Ports held by a socket: for tcp a listening one, for udp any bound one (IPv4 and IPv6). */
  listening(protocol: 'tcp' | 'udp', options?: { signal?: AbortSignal }): Promise<Set<number>>;
}

/** A probe answers in milliseconds, but 50 creates at once on two busy cores queue their `ip` processes for seconds. */
const PROBE_TIMEOUT_MS = 30_000;

const TCP_LISTEN = '0A';

/**
 * The ports in the text of /proc/net/{tcp,tcp6,udp,udp6} (several files concatenated): tcp sockets in state
 * LISTEN, udp sockets bound to a port.
 */
export function parseProcNetPorts(text: string, protocol: 'tcp' | 'udp'): Set<number> {
  const ports = new Set<number>();
  for (const line of text.split('\n')) {
    // "  0: 0100007F:1F90 00000000:0000 0A …": slot, local address:port, remote, state.
    const [slot, local, , state] = line.trim().split(/\s+/);
    if (!slot?.endsWith(':') || !local || !state) continue;
    const port = Number.parseInt(local.slice(local.lastIndexOf(':') + 1), 16);
    if (!Number.isInteger(port) || port === 0) continue;
    if (protocol === 'udp' || state === TCP_LISTEN) ports.add(port);
  }
  return ports;
}

/** The IPv4 addresses in `ip -j -4 addr show` output. */
export function parseIpAddrJson(text: string): string[] {
  const links = JSON.parse(text || '[]') as { addr_info?: { family?: string; local?: string }[] }[];
  return links.flatMap((l) =>
    (l.addr_info ?? [])
      .filter((a) => a.family === 'inet' && typeof a.local === 'string')
      .map((a) => a.local!),
  );
}

function procFiles(protocol: 'tcp' | 'udp'): string[] {
  return [`/proc/net/${protocol}`, `/proc/net/${protocol}6`];
}

function probeFailed(what: string, cause: unknown, netns?: string): VmManagerError {
  const where = netns ? ` of network namespace ${netns}` : '';
  const why = cause instanceof Error ? cause.message : String(cause);
  return new VmManagerError('NETWORK_FAILED', `cannot read the ${what}${where}: ${why}`, {
    cause,
    details: { step: 'check', ...(netns ? { netns } : {}) },
  });
}

function withTimeout(signal: AbortSignal | undefined): AbortSignal {
  const timeout = AbortSignal.timeout(PROBE_TIMEOUT_MS);
  return signal ? AbortSignal.any([signal, timeout]) : timeout;
}

/** This process's network namespace: os.networkInterfaces() and /proc/net. Spawns nothing. */
export function localHostProbe(): HostProbe {
  return {
    async localAddresses({ signal } = {}) {
      throwIfAborted(signal);
      return Object.values(networkInterfaces()).flatMap((list) =>
        (list ?? []).filter((a) => a.family === 'IPv4').map((a) => a.address),
      );
    },
    async listening(protocol, { signal } = {}) {
      throwIfAborted(signal);
      let text = '';
      for (const file of procFiles(protocol)) {
        try {
          text += await readFile(file, 'utf8');
        } catch (error) {
          // No IPv6 on this host: no tcp6/udp6 file.
          if ((error as NodeJS.ErrnoException).code === 'ENOENT' && file.endsWith('6')) continue;
          throw probeFailed(`${protocol} sockets`, error);
        }
      }
      return parseProcNetPorts(text, protocol);
    },
  };
}

/** Runs `ip` with `args`; resolves to stdout and stderr, and the exit code when it failed. */
function runIp(
  args: readonly string[],
  signal: AbortSignal | undefined,
): Promise<{ stdout: string; stderr: string; error?: Error }> {
  return new Promise((resolve) => {
    execFile(
      'ip',
      [...args],
      { signal: withTimeout(signal), maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
      (error, stdout, stderr) => resolve({ stdout, stderr, ...(error ? { error } : {}) }),
    );
  });
}

// A leading letter or digit: the name is an argument of `ip`, and must never read as an option.
const NETNS_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$/;

/**
 * A named network namespace: `ip -n NAME -j -4 addr show` and `ip netns exec NAME cat /proc/net/…` (a process's
 * /proc/net is its own namespace's). One spawn per question.
 */
export function netnsHostProbe(netns: string): HostProbe {
  if (!NETNS_NAME.test(netns)) {
    throw new TypeError(`netnsHostProbe: ${JSON.stringify(netns)} is not a network namespace name`);
  }
  return {
    async localAddresses({ signal } = {}) {
      throwIfAborted(signal);
      const result = await runIp(['-n', netns, '-j', '-4', 'addr', 'show'], signal);
      throwIfAborted(signal);
      if (result.error) throw probeFailed('addresses', withStderr(result.error, result.stderr), netns);
      try {
        return parseIpAddrJson(result.stdout);
      } catch (error) {
        throw probeFailed('addresses', error, netns);
      }
    },
    async listening(protocol, { signal } = {}) {
      throwIfAborted(signal);
      const result = await runIp(['netns', 'exec', netns, 'cat', ...procFiles(protocol)], signal);
      throwIfAborted(signal);
      // cat reads what exists and fails for the rest: only a missing tcp6/udp6 (no IPv6) is fine.
      const onlyNoIpv6 =
        result.stdout.length > 0 &&
        result.stderr
          .trim()
          .split('\n')
          .every((line) => new RegExp(`/proc/net/${protocol}6: No such file`).test(line));
      if (result.error && !onlyNoIpv6) {
        throw probeFailed(`${protocol} sockets`, withStderr(result.error, result.stderr), netns);
      }
      return parseProcNetPorts(result.stdout, protocol);
    },
  };
}

function withStderr(error: Error, stderr: string): Error {
  const said = stderr.trim().split('\n').at(-1);
  return said ? new Error(said, { cause: error }) : error;
}

/** The probe for a manager whose VMs live in `netns` (undefined: this process's namespace). */
export function defaultHostProbe(netns: string | undefined): HostProbe {
  return netns ? netnsHostProbe(netns) : localHostProbe();
}
