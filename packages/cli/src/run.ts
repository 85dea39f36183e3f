import { type Command, CommanderError } from 'commander';
import type { CliIo } from './cli-io.js';
import { CommandContext, type GlobalFlags } from './context.js';
import { usageError } from './errors.js';
import { ExitCode } from './exit-codes.js';
import { Output } from './output.js';
import { type CommandId, createProgram } from './program.js';
import { useSerialRelay } from './serial-relay-command.js';

/** The hidden command the bundled app spawns itself with to act as the simulator VMM. */
export const SIMULATOR_COMMAND = '__chv-simulator';
/** The hidden command the bundled app runs as each VM's serial relay (`vmm.serialRelay`). */
export const SERIAL_RELAY_COMMAND = '__serial-relay';

/** A command implementation: resolves to its exit code, throws on failure (the error decides the code). */
export type CommandHandler = (ctx: CommandContext, args: readonly unknown[]) => Promise<number>;

// Each implementation is imported when its command runs, so start-up only pays for the command used.
const handlers: Record<CommandId, () => Promise<CommandHandler>> = {
  'vm create': async () => (await import('./commands/vm-create.js')).vmCreate,
  'vm start': async () => (await import('./commands/vm-lifecycle.js')).vmStart,
  'vm stop': async () => (await import('./commands/vm-lifecycle.js')).vmStop,
  'vm restart': async () => (await import('./commands/vm-lifecycle.js')).vmRestart,
  'vm pause': async () => (await import('./commands/vm-lifecycle.js')).vmPause,
  'vm resume': async () => (await import('./commands/vm-lifecycle.js')).vmResume,
  'vm rm': async () => (await import('./commands/vm-rm.js')).vmRm,
  'vm ls': async () => (await import('./commands/vm-ls.js')).vmLs,
  'vm inspect': async () => (await import('./commands/vm-inspect.js')).vmInspect,
  'vm logs': async () => (await import('./commands/vm-logs.js')).vmLogs,
  'vm console': async () => (await import('./commands/vm-console.js')).vmConsole,
  'vm resize': async () => (await import('./commands/vm-resize.js')).vmResize,
  'vm stats': async () => (await import('./commands/vm-stats.js')).vmStats,
  'vm snapshot': async () => (await import('./commands/vm-snapshot.js')).vmSnapshot,
  'vm snapshot ls': async () => (await import('./commands/vm-snapshot.js')).vmSnapshotLs,
  'vm snapshot rm': async () => (await import('./commands/vm-snapshot.js')).vmSnapshotRm,
  'vm restore': async () => (await import('./commands/vm-snapshot.js')).vmRestore,
  'vm disk add': async () => (await import('./commands/vm-devices.js')).vmDiskAdd,
  'vm disk rm': async () => (await import('./commands/vm-devices.js')).vmDiskRm,
  'vm disk ls': async () => (await import('./commands/vm-devices.js')).vmDiskLs,
  'vm share add': async () => (await import('./commands/vm-devices.js')).vmShareAdd,
  'vm share rm': async () => (await import('./commands/vm-devices.js')).vmShareRm,
  'vm share ls': async () => (await import('./commands/vm-devices.js')).vmShareLs,
  'vm nic add': async () => (await import('./commands/vm-devices.js')).vmNicAdd,
  'vm nic rm': async () => (await import('./commands/vm-devices.js')).vmNicRm,
  'vm nic ls': async () => (await import('./commands/vm-devices.js')).vmNicLs,
  'forward add': async () => (await import('./commands/forward.js')).forwardAdd,
  'forward rm': async () => (await import('./commands/forward.js')).forwardRm,
  'forward ls': async () => (await import('./commands/forward.js')).forwardLs,
  'image build': async () => (await import('./commands/image.js')).imageBuild,
  'image ls': async () => (await import('./commands/image.js')).imageLs,
  'image inspect': async () => (await import('./commands/image.js')).imageInspect,
  'image rm': async () => (await import('./commands/image.js')).imageRm,
  'net ls': async () => (await import('./commands/net.js')).netLs,
  'net ensure': async () => (await import('./commands/net.js')).netEnsure,
  'net inspect': async () => (await import('./commands/net.js')).netInspect,
  'net create': async () => (await import('./commands/net.js')).netCreate,
  'net rm': async () => (await import('./commands/net.js')).netRm,
  events: async () => (await import('./commands/events.js')).events,
  doctor: async () => (await import('./commands/doctor.js')).doctor,
  gc: async () => (await import('./commands/gc.js')).gc,
  autostart: async () => (await import('./commands/autostart.js')).autostart,
  demo: async () => (await import('./commands/demo.js')).demo,
  'daemon run': async () => (await import('./commands/daemon.js')).daemonRun,
  'daemon status': async () => (await import('./commands/daemon.js')).daemonStatus,
  'dashboard url': async () => (await import('./commands/daemon.js')).dashboardUrl,
  'cluster hosts': async () => (await import('./commands/cluster.js')).clusterHosts,
  version: async () => (await import('./commands/version.js')).version,
};

/** The commands that work fleet-wide when a cluster is configured (`--cluster`, MYHV_CLUSTER or the config file). */
const clusterHandlers: Partial<Record<CommandId, () => Promise<CommandHandler>>> = {
  'vm create': async () => (await import('./commands/cluster.js')).clusterVmCreate,
  'vm ls': async () => (await import('./commands/cluster.js')).clusterVmLs,
  'vm inspect': async () => (await import('./commands/cluster.js')).clusterVmInspect,
  'vm rm': async () => (await import('./commands/cluster.js')).clusterVmRm,
  'vm start': async () => (await import('./commands/cluster.js')).clusterVmStart,
  'vm stop': async () => (await import('./commands/cluster.js')).clusterVmStop,
};

/**
 * The fleet-wide handler of a command when a cluster is configured; undefined to run it on this host. `--cluster`
 * given on the command line to a command that works on one host only is a usage error (exit 2), not ignored.
 */
async function clusterHandler(
  ctx: CommandContext,
  id: CommandId,
): Promise<(() => Promise<CommandHandler>) | undefined> {
  const fleet = clusterHandlers[id];
  if (id === 'daemon run' || id === 'cluster hosts') return undefined;
  if (!fleet) {
    if (ctx.flags.cluster !== undefined) {
      throw usageError(
        `myhv ${id} works on one host: it does not take --cluster`,
        "run it on the VM's host (`myhv --cluster URL vm ls` shows which) without --cluster",
      );
    }
    return undefined;
  }
  return (await ctx.config()).cluster ? fleet : undefined;
}

function eachCommand(command: Command, fn: (c: Command) => void): void {
  fn(command);
  for (const sub of command.commands) eachCommand(sub, fn);
}

/**
 * Runs the myhv command line with `argv` (without node and the script) and resolves to the exit code:
 * 0 ok, 1 failed (or not found), 2 bad input, 130 interrupted. Never calls `process.exit`.
 */
export async function run(argv: readonly string[], io: CliIo = process): Promise<number> {
  if (argv[0] === SIMULATOR_COMMAND) {
    const { runSimulatorCli } = await import('@my-hypervisor/chv-client/testing');
    return runSimulatorCli(argv.slice(1));
  }
  if (argv[0] === SERIAL_RELAY_COMMAND) {
    const { runSerialRelayCli } = await import('@my-hypervisor/vm-manager');
    return runSerialRelayCli(argv.slice(1));
  }
  if (io.serialRelay) useSerialRelay(io.serialRelay);
  const env = io.env ?? process.env;
  const tty = io.isTTY ?? (io.stdout as { isTTY?: boolean }).isTTY === true;
  const color = tty && !env.NO_COLOR;
  // Until commander has parsed, errors follow the raw flags.
  const optionArgs = argv.slice(0, argv.includes('--') ? argv.indexOf('--') : argv.length);
  const debug = optionArgs.includes('--debug');
  let out = new Output(io.stdout, io.stderr, { json: optionArgs.includes('--json'), tty, color });
  let ctx: CommandContext | undefined;
  let exitCode: number = ExitCode.OK;

  const program = createProgram(async (id, args, command) => {
    const flags = command.optsWithGlobals<GlobalFlags>();
    out = new Output(io.stdout, io.stderr, { json: flags.json === true, tty, color });
    ctx = new CommandContext({ io, env, out, flags, options: command.opts() });
    const handler = await ((await clusterHandler(ctx, id)) ?? handlers[id])();
    exitCode = await handler(ctx, args);
  });
  eachCommand(program, (c) => {
    c.exitOverride();
    // In JSON mode stderr carries the one error line only.
    if (!out.json) c.showHelpAfterError('(add --help for usage)');
    c.configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
      outputError: (text, write) => {
        if (!out.json) return write(text);
        const message = text.replace(/^error: /, '').trim();
        const error = {
          source: 'CommanderError',
          code: 'USAGE',
          message,
          field: null,
          hint: 'see --help',
          exitCode: 2,
        };
        write(`${JSON.stringify({ error })}\n`);
      },
    });
  });

  if (argv.length === 0) {
    io.stdout.write(program.helpInformation());
    return ExitCode.OK;
  }
  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version') return ExitCode.OK;
      if (error.code === 'commander.help') return error.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
      return ExitCode.USAGE;
    }
    // Loaded only on failure: it pulls in every package's error class.
    const { debugLines, describeError } = await import('./describe-error.js');
    const report = describeError(error);
    out.error(report, debug || ctx?.flags.debug === true ? debugLines(error) : []);
    exitCode = report.exitCode;
  } finally {
    await ctx?.close();
  }
  return exitCode;
}
