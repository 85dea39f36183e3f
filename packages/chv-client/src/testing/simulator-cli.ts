import { type SimulatorVersion, simulatorVersions, versionMajor } from './sim-failure.js';
import { type SimulatorOptions, SimulatorStartError, startSimulator } from './simulator.js';

/** Where `runSimulatorCli` reads its environment and writes its output, and the signal that stops it. */
export interface SimulatorCliIo {
  readonly env?: NodeJS.ProcessEnv;
  readonly stdout?: (text: string) => void;
  readonly stderr?: (text: string) => void;
  /** Ends the simulator like SIGTERM; the CLI bin wires SIGTERM and SIGINT to it. */
  readonly signal?: AbortSignal;
}

class UsageError extends Error {}

const usage = `Usage: cloud-hypervisor --api-socket <path=PATH|fd=FD> [OPTIONS]

A simulator of the Cloud Hypervisor VMM (@my-hypervisor/chv-client): it serves the REST API, keeps the VM
state machine and writes events, but no guest runs.

Options:
  --api-socket <path=PATH|fd=FD|PATH>   API socket (required)
  --event-monitor <path=PATH|fd=FD>     write events there
  --log-file <PATH>                     log there instead of stderr
  -v, -vv                               more log output
  --no-shutdown                         keep running after the guest powers off (v52+)
  --seccomp <VALUE>, --landlock         accepted and ignored
  -V, --version                         print the version
  -h, --help                            print this help

Environment: MYHV_SIM_VERSION (v46|v50|v53), MYHV_SIM_FAIL, MYHV_SIM_DELAY_MS, MYHV_SIM_STRICT_TAPS,
MYHV_SIM_HANG, MYHV_SIM_POWER_BUTTON, MYHV_SIM_POWEROFF_MS (see the package README).
`;

/**
 * The `chv-simulator` bin: accepts cloud-hypervisor's own flags, so anything that spawns the real binary can
 * spawn this instead. Resolves with the exit code once the simulated VMM ends (vmm.shutdown, a guest
 * power-off, or the signal), like the VMM's process would.
 */
export async function runSimulatorCli(argv: readonly string[], io: SimulatorCliIo = {}): Promise<number> {
  const env = io.env ?? process.env;
  const out = io.stdout ?? ((text: string) => process.stdout.write(text));
  const err = io.stderr ?? ((text: string) => process.stderr.write(text));
  let parsed: { options: SimulatorOptions; print?: 'version' | 'help' };
  try {
    parsed = parseArgs(argv, env);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    // clap's wording and exit code for a bad command line.
    err(`error: ${error.message}\n\nFor more information, try '--help'.\n`);
    return 2;
  }
  const version = parsed.options.version ?? 'v53';
  if (parsed.print === 'version') {
    out(`cloud-hypervisor v${versionMajor(version)}.0 (simulator, no guest runs)\n`);
    return 0;
  }
  if (parsed.print === 'help') {
    out(usage);
    return 0;
  }
  let simulator: Awaited<ReturnType<typeof startSimulator>>;
  try {
    simulator = await startSimulator(parsed.options);
  } catch (error) {
    if (!(error instanceof SimulatorStartError)) throw error;
    err(
      `Error: Cloud Hypervisor exited with the following chain of errors:\n${error.chain
        .map((message, i) => `  ${i}: ${message}\n`)
        .join('')}`,
    );
    return 1;
  }
  const onAbort = () => void simulator.close();
  if (io.signal?.aborted) onAbort();
  io.signal?.addEventListener('abort', onAbort, { once: true });
  await simulator.closed;
  io.signal?.removeEventListener('abort', onAbort);
  return 0;
}

function parseArgs(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
): { options: SimulatorOptions; print?: 'version' | 'help' } {
  const version = parseVersion(env.MYHV_SIM_VERSION);
  const options: {
    -readonly [K in keyof SimulatorOptions]: SimulatorOptions[K];
  } = { version, logToStderr: true, ...envKnobs(env) };
  let verbose = 0;
  const args = [...argv];
  const value = (flag: string, inline: string | undefined): string => {
    const v = inline ?? args.shift();
    if (v === undefined || v === '')
      throw new UsageError(
        `a value is required for '${flag} <${flag.slice(2).toUpperCase()}>' but none was supplied`,
      );
    return v;
  };
  while (args.length > 0) {
    const arg = args.shift()!;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const inline = eq > 0 ? arg.slice(eq + 1) : undefined;
    switch (flag) {
      case '-h':
      case '--help':
        return { options, print: 'help' };
      case '-V':
      case '--version':
        return { options, print: 'version' };
      case '--api-socket': {
        const target = parseTarget(value(flag, inline), flag, true);
        if ('fd' in target) options.socketFd = target.fd;
        else options.socketPath = target.path;
        break;
      }
      case '--event-monitor': {
        const target = parseTarget(value(flag, inline), flag, false);
        options.eventMonitor = 'fd' in target ? target.fd : target.path;
        break;
      }
      case '--log-file':
        options.logFile = value(flag, inline);
        break;
      case '--no-shutdown':
        if (versionMajor(version) < 52) throw new UsageError(`unexpected argument '--no-shutdown' found`);
        options.noShutdown = true;
        break;
      case '--seccomp':
        value(flag, inline);
        break;
      case '--landlock':
        break;
      default:
        if (/^-v+$/.test(arg)) {
          verbose += arg.length - 1;
          break;
        }
        throw new UsageError(`unexpected argument '${arg}' found`);
    }
  }
  if (options.socketPath === undefined && options.socketFd === undefined) {
    throw new UsageError('the simulator needs --api-socket (it only runs in API mode)');
  }
  options.verbose = verbose;
  return { options };
}

/** `path=/x`, `fd=3`, or a bare path (the old `--api-socket` syntax). */
function parseTarget(
  text: string,
  flag: string,
  barePathAllowed: boolean,
): { path: string } | { fd: number } {
  for (const part of text.split(',')) {
    const [key, val] = [part.slice(0, part.indexOf('=')), part.slice(part.indexOf('=') + 1)];
    if (part.includes('=') && key === 'path' && val) return { path: val };
    if (part.includes('=') && key === 'fd' && /^\d+$/.test(val)) return { fd: Number(val) };
  }
  if (barePathAllowed && !text.includes('=')) return { path: text };
  throw new UsageError(`invalid value '${text}' for '${flag}': expected path=<PATH> or fd=<FD>`);
}

function parseVersion(text: string | undefined): SimulatorVersion {
  if (text === undefined || text === '') return 'v53';
  const normalised = text.startsWith('v') ? text : `v${text}`;
  if ((simulatorVersions as readonly string[]).includes(normalised)) return normalised as SimulatorVersion;
  throw new UsageError(`MYHV_SIM_VERSION=${text} is not one of ${simulatorVersions.join(', ')}`);
}

/** The MYHV_SIM_* environment knobs, for tests of packages that spawn the VMM as a process. */
function envKnobs(env: NodeJS.ProcessEnv): Partial<SimulatorOptions> {
  const knobs: { -readonly [K in keyof SimulatorOptions]: SimulatorOptions[K] } = {};
  if (env.MYHV_SIM_FAIL)
    knobs.fail = env.MYHV_SIM_FAIL.split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  if (env.MYHV_SIM_DELAY_MS) knobs.delayMs = parseDelays(env.MYHV_SIM_DELAY_MS);
  if (env.MYHV_SIM_STRICT_TAPS !== undefined)
    knobs.strictTaps = !/^(0|false|no|off)$/i.test(env.MYHV_SIM_STRICT_TAPS);
  if (env.MYHV_SIM_HANG && !/^(0|false|no|off)$/i.test(env.MYHV_SIM_HANG)) knobs.hang = true;
  if (env.MYHV_SIM_POWER_BUTTON) {
    if (env.MYHV_SIM_POWER_BUTTON !== 'poweroff' && env.MYHV_SIM_POWER_BUTTON !== 'ignore') {
      throw new UsageError(`MYHV_SIM_POWER_BUTTON=${env.MYHV_SIM_POWER_BUTTON} is not poweroff or ignore`);
    }
    knobs.powerButton = env.MYHV_SIM_POWER_BUTTON;
  }
  if (env.MYHV_SIM_POWEROFF_MS)
    knobs.powerOffDelayMs = parseMs(env.MYHV_SIM_POWEROFF_MS, 'MYHV_SIM_POWEROFF_MS');
  return knobs;
}

/** `250` for every endpoint, or `vm.boot:500,vm.info:20` per endpoint. */
function parseDelays(text: string): number | Record<string, number> {
  if (/^\d+$/.test(text.trim())) return Number(text.trim());
  const delays: Record<string, number> = {};
  for (const part of text.split(',')) {
    const [name, ms] = part.split(':');
    if (!name || ms === undefined)
      throw new UsageError(`MYHV_SIM_DELAY_MS: '${part}' is not <endpoint>:<ms>`);
    delays[name.trim()] = parseMs(ms, 'MYHV_SIM_DELAY_MS');
  }
  return delays;
}

function parseMs(text: string, name: string): number {
  if (!/^\d+$/.test(text.trim())) throw new UsageError(`${name}: '${text}' is not a number of milliseconds`);
  return Number(text.trim());
}
