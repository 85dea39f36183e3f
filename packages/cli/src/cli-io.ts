import type { SimulatorCommand } from './vmm-choice.js';

/** Where `run` reads and writes; the defaults are the process's own. Tests inject their own. */
export interface CliIo {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  /** Environment variables (default `process.env`). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Whether output goes to a terminal (default: `stdout.isTTY`). Decides tables vs tab-separated lines. */
  readonly isTTY?: boolean;
  /** Standard input, for `vm create -f -`. */
  readonly stdin?: NodeJS.ReadableStream;
  /**
   * How to spawn the simulator VMM. The bundled app passes itself (`node myhv.js __chv-simulator`); the default is
   * chv-client's simulator bin, which works from sources and from an install.
   */
  readonly simulator?: SimulatorCommand;
  /** How to spawn each VM's serial relay; the bundled app passes itself (`node myhv.js __serial-relay`). */
  readonly serialRelay?: { readonly command: string; readonly args: readonly string[] };
  /**
   * Interrupts long commands (demo, logs --follow) like Ctrl-C does. Without it they listen to SIGINT and SIGTERM
   * themselves while they run.
   */
  readonly signal?: AbortSignal;
}
