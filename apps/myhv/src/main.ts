import { run, SERIAL_RELAY_COMMAND, SIMULATOR_COMMAND } from '@my-hypervisor/cli';

export { processStdio, type Stdio } from './stdio.js';

/**
 * The myhv entry point: argv in, exit code out. `self` is the bundle's own path; the simulator VMM is this same
 * file run with a hidden command, so the one-file bundle needs nothing else.
 */
export function main(
  argv: readonly string[],
  self: string,
  io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream } = process,
): Promise<number> {
  return run(argv, {
    stdout: io.stdout,
    stderr: io.stderr,
    simulator: { command: process.execPath, args: [self, SIMULATOR_COMMAND] },
    serialRelay: { command: process.execPath, args: [self, SERIAL_RELAY_COMMAND] },
  });
}
